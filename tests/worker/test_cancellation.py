"""Cancellation through a real worker and the client."""

from __future__ import annotations

from sync_worker import client, keys, sending
from sync_worker.app import get_broker
from sync_worker.simulator import steam_id_for
from sync_worker.sync.pending import claim_pending, pending_message
from tests.conftest import fetch_all, library_status, wait_for


def test_a_queued_sync_of_a_cancelled_library_is_skipped(runtime, register, worker, sim):
    """Cancel before a worker takes the message: it is skipped, nothing is fetched or written."""
    library_id = register(steam_id_for(30, seed=81))
    message = sending.sync_message(library_id)
    claim_pending(runtime.redis, library_id, message.message_id, force=False)
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


def test_a_request_after_a_cancel_queues_a_sync_that_runs(runtime, register, worker):
    """Request, cancel, request: the cancelled message is skipped, the new one completes."""
    library_id = register(steam_id_for(20, seed=83))
    broker = get_broker()
    first = sending.sync_message(library_id)
    claim_pending(runtime.redis, library_id, first.message_id, force=False)
    broker.enqueue(first, delay=1500)

    assert client.cancel_sync(library_id) is True
    second = client.request_sync(library_id)

    assert second != first.message_id  # a cancelled message no longer counts as pending
    wait_for(lambda: library_status(runtime, library_id) == "completed", 30, "the new sync")
    wait_for(lambda: not runtime.redis.exists(keys.cancel_key(library_id)), 10, "the skip")
    assert fetch_all(runtime, "SELECT status FROM sync_runs") == [("completed",)]


def test_a_cancellation_never_reaches_a_later_sync(runtime, register, make_engine):
    """A cancel names the syncs live when it was asked; the next sync is not ambushed by it."""
    library_id = register(steam_id_for(5, seed=83))
    runtime.redis.sadd(keys.cancel_key(library_id), "message-that-already-ended")

    assert make_engine().sync(library_id).status == "completed"


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
