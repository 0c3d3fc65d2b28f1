"""Cancellation through a real worker and the client."""

from __future__ import annotations

from sync_worker import client, keys
from sync_worker.broker import get_broker
from sync_worker.simulator import steam_id_for
from sync_worker.sync.pending import claim_pending, pending_message
from tests.conftest import fetch_all, library_status, wait_for


def test_a_queued_sync_of_a_cancelled_library_is_skipped(runtime, register, worker, sim):
    """Cancel before a worker takes the message: it is skipped, nothing is fetched or written."""
    library_id = register(steam_id_for(30, seed=81))
    message = client.sync_message(library_id)
    claim_pending(runtime.redis, library_id, message.message_id, ttl_s=60, force=False)
    get_broker().enqueue(message, delay=1500)  # still queued when we cancel

    assert client.cancel_sync(library_id) is True

    wait_for(lambda: library_status(runtime, library_id) == "cancelled", 30, "the skip")
    assert sim.calls() == 0 and fetch_all(runtime, "SELECT 1 FROM sync_runs") == []
    wait_for(
        lambda: client.get_status(library_id)["status"] == "cancelled", 10, "the cancelled event"
    )
    assert not runtime.redis.exists(keys.cancel_key(library_id))  # consumed
    wait_for(lambda: pending_message(runtime.redis, library_id) is None, 10, "the slot to be freed")
    assert client.request_sync(library_id) != message.message_id
    wait_for(lambda: library_status(runtime, library_id) == "completed", 30, "the new sync")


def test_cancelling_an_idle_library_is_a_clear_no_op(runtime, register):
    """Nothing queued or running: False, and no flag left behind to ambush the next sync."""
    library_id = register(steam_id_for(5, seed=82))
    assert client.cancel_sync(library_id) is False
    assert not runtime.redis.exists(keys.cancel_key(library_id))


def test_a_new_request_clears_a_pending_cancellation(runtime, register):
    """request_sync after a cancel starts a real sync, not a skipped one."""
    library_id = register(steam_id_for(5, seed=83))
    runtime.redis.set(keys.cancel_key(library_id), "1")
    client.request_sync(library_id)
    assert not runtime.redis.exists(keys.cancel_key(library_id))


def test_a_running_sync_stops_within_one_batch_of_the_cancel(runtime, register, worker):
    """Cancel while a worker writes a 50,000-game library: it ends `cancelled`, rows = batches done."""
    library_id = register(steam_id_for(50_000, seed=84))
    client.request_sync(library_id)
    events = client.iter_progress(library_id, timeout_s=60)
    seen_at_cancel = next(e for e in events if e["status"] == "syncing")["games_processed"]
    assert client.cancel_sync(library_id) is True
    final = [e for e in events if e["status"] != "syncing"][-1]

    assert final["status"] == "cancelled"
    stored = fetch_all(
        runtime, "SELECT count(*) FROM library_games WHERE library_id = %s", library_id
    )[0][0]
    assert stored == final["games_processed"] < 50_000
    assert stored % 100 == 0  # whole batches only (SYNC_BATCH_SIZE=100)
    # The worker checks after every batch: it stopped right after the one in flight.
    print(f"\ncancel seen at {seen_at_cancel} games, stopped at {stored}")
    assert stored - seen_at_cancel <= 5 * 100  # a few batches of event/cancel latency at most
    assert fetch_all(runtime, "SELECT status FROM sync_runs WHERE library_id = %s", library_id) == [
        ("cancelled",)
    ]
