"""The web service's API: registering libraries, requesting syncs, reading status."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker

from sync_worker import client, keys
from sync_worker.aio import AsyncClient
from sync_worker.app import get_broker, reset_broker
from sync_worker.errors import MalformedMessage, RateLimitExhausted, UnknownLibrary
from sync_worker.simulator import steam_id_for
from sync_worker.sync.pending import ENQUEUE_GRACE_S, claim_many
from sync_worker.sync.progress import last_event
from tests.conftest import fetch_all, wait_for


@pytest.fixture(autouse=True)
def fresh_broker(runtime) -> Iterator[None]:
    reset_broker()
    yield
    reset_broker()


def take_message(queue: str):
    """The next message on a queue of the real Redis broker, or None."""
    consumer = get_broker().consume(queue, prefetch=1, timeout=500)
    try:
        message = next(consumer)
        if message is not None:
            consumer.ack(message)
        return message
    finally:
        consumer.close()


def test_manual_requests_go_to_high_and_others_to_default(runtime, register):
    """Priority is by queue: manual syncs never wait behind scheduled ones."""
    library_id = register(steam_id_for(3))
    client.request_sync(library_id)
    client.request_sync(library_id, sync_type="auto", force=True)

    high, default = take_message("high"), take_message("default")
    assert (high.actor_name, high.args, high.kwargs["sync_type"]) == (
        "sync_library",
        (library_id,),
        "manual",
    )
    assert (default.kwargs["sync_type"], default.kwargs["force"]) == ("auto", True)
    assert take_message("high") is None


def test_request_publishes_queued_and_marks_the_library(runtime, register):
    """The web app sees `queued` at once, in Redis and in the database."""
    library_id = register(steam_id_for(3))
    client.request_sync(library_id)
    event = json.loads(runtime.redis.get(keys.progress_key(library_id)))
    assert (event["status"], event["library_id"]) == ("queued", library_id)
    assert fetch_all(runtime, "SELECT sync_status FROM user_libraries") == [("queued",)]


def test_bad_requests_are_refused_before_anything_is_queued(runtime, register):
    """Unknown libraries and unknown sync types raise and enqueue nothing."""
    with pytest.raises(UnknownLibrary):
        client.request_sync("6a1f0a54-8f5e-4a53-9d55-5a7d1d6a0000")
    with pytest.raises(MalformedMessage):
        client.request_sync(register(steam_id_for(3)), sync_type="hourly")
    assert take_message("high") is None and take_message("default") is None


def test_a_batch_request_with_a_non_uuid_is_an_unknown_library(runtime, register):
    """The scheduler's path too: UnknownLibrary before any slot is claimed, not a database error."""
    real = register(steam_id_for(3, seed=52))
    with pytest.raises(UnknownLibrary):
        client.request_syncs([real, "not-a-uuid"])
    assert take_message("high") is None
    assert runtime.redis.get(keys.pending_key(real)) is None
    assert client.get_status(real)["status"] == "never_synced"


def test_status_of_a_deleted_library_is_unknown_not_stale(runtime, register):
    """The web service deletes a library with SQL; its last `queued` event outlives it in
    Redis, but a status read must not answer for a library that is gone."""
    library_id = register(steam_id_for(4, seed=53))
    client.request_sync(library_id)
    assert client.get_status(library_id)["status"] == "queued"
    with runtime.pool.connection() as conn:
        conn.execute("DELETE FROM user_libraries WHERE library_id = %s", (library_id,))

    with pytest.raises(UnknownLibrary):
        client.get_status(library_id)
    with pytest.raises(UnknownLibrary):
        asyncio.run(_async_status(library_id))


async def _async_status(library_id: str) -> dict[str, object]:
    async_client = AsyncClient()
    try:
        return await async_client.get_status(library_id)
    finally:
        await async_client.aclose()


def test_get_status_falls_back_to_the_database(runtime, register, make_engine):
    """When the Redis event has expired, status comes from the library row."""
    library_id = register(steam_id_for(12, seed=51))
    make_engine().sync(library_id)
    assert client.get_status(library_id)["status"] == "completed"
    runtime.redis.delete(keys.progress_key(library_id))

    status = client.get_status(library_id)

    assert (status["status"], status["total_games"], status["progress"]) == ("completed", 12, 100)


def test_register_from_vanity_name_resolves_once_and_is_idempotent(runtime, sim):
    """A vanity name resolves to the SteamID64; registering again reuses the library."""
    first = client.register_steam_library("lib33")
    again = client.register_steam_library(f"https://steamcommunity.com/profiles/{steam_id_for(33)}")
    assert first == again
    assert fetch_all(runtime, "SELECT platform_user_id, display_name FROM user_libraries") == [
        (steam_id_for(33), f"Player {steam_id_for(33)[-6:]}")
    ]
    assert sim.stats()["calls"] == {"ResolveVanityURL": 1, "GetPlayerSummaries": 1}


def test_registrations_share_the_workers_rate_limit(runtime, sim, monkeypatch):
    """Six registrations with a budget of 2 calls a minute: one library (2 calls), then
    a clear, retryable refusal; Steam never sees a third call."""
    tight = runtime.settings.model_copy(
        update={
            "steam_webapi_calls_per_window": 2,
            "steam_webapi_window_seconds": 60,
            "rate_limit_max_wait_s": 0.2,
        }
    )
    monkeypatch.setattr(runtime, "settings", tight)
    registered, refused = [], []
    for n in range(6):
        try:
            registered.append(client.register_steam_library(f"lib{40 + n}"))
        except RateLimitExhausted as exc:
            refused.append(exc)
    assert len(registered) == 1 and len(refused) == 5
    assert refused[0].code == "rate_limit_exhausted"
    assert 55 < refused[0].retry_after_s <= 60
    assert "steam_webapi" in refused[0].message and "try again in" in refused[0].message
    assert sim.stats()["calls"] == {"ResolveVanityURL": 1, "GetPlayerSummaries": 1}
    assert fetch_all(runtime, "SELECT count(*) FROM user_libraries") == [(1,)]


def test_requests_leave_the_host_applications_global_broker_alone(runtime, register, monkeypatch):
    """A web service with its own Dramatiq broker keeps it after using the client."""
    monkeypatch.setattr(dramatiq.broker, "global_broker", None)  # restored after the test
    host_broker = StubBroker()
    dramatiq.set_broker(host_broker)
    library_id = register(steam_id_for(3))
    client.request_sync(library_id)
    assert dramatiq.get_broker() is host_broker
    assert take_message("high").args == (library_id,)  # ours went to Redis all the same


def test_a_second_request_while_queued_returns_the_first(runtime, register):
    """De-duplication: one message per library while queued or running, unless forced."""
    library_id = register(steam_id_for(3))
    first = client.request_sync(library_id)
    assert client.request_sync(library_id) == first
    assert client.request_sync(library_id, sync_type="scheduled") == first
    forced = client.request_sync(library_id, force=True)
    assert forced != first
    assert [take_message("high").message_id, take_message("high").message_id] == [first, forced]
    assert take_message("default") is None


def test_a_request_that_died_before_its_message_existed_leaves_no_trace(runtime, register):
    """A web process killed after claiming the slot, before storing the message: nothing
    says `queued` (the status is written once the message exists), and within
    ENQUEUE_GRACE_S the next request queues a real message (it used to get the dead one's
    id, which never runs, for a minute)."""
    library_id = register(steam_id_for(7, seed=57))
    [holder] = claim_many(runtime.redis, [(library_id, "died-before-enqueue")], force=False)
    assert holder is None  # what the dead request did, and no more

    assert client.get_status(library_id)["status"] == "never_synced"
    time.sleep(ENQUEUE_GRACE_S + 0.5)
    message_id = client.request_sync(library_id)

    assert message_id != "died-before-enqueue"
    assert take_message("high").message_id == message_id
    assert client.get_status(library_id)["status"] == "queued"


def test_a_slot_whose_message_is_gone_does_not_block_a_request(runtime, register):
    """The slot names a message the broker no longer has (acked, dead-lettered, lost): a new
    request queues a new message at once instead of returning the dead one's id."""
    library_id = register(steam_id_for(3))
    first = client.request_sync(library_id)
    assert take_message("high").message_id == first  # consumed and acked, never released

    second = client.request_sync(library_id)

    assert second != first and take_message("high").message_id == second


def test_a_forced_request_leaves_a_running_syncs_status_and_event_alone(
    runtime, register, make_engine, sim
):
    """force while a sync runs queues a message, but the library still says `syncing`."""
    library_id = register(steam_id_for(300, seed=53))
    sim.fault(match="GetOwnedGames", kind="delay", delay_s=1.0)
    running = threading.Thread(target=make_engine().sync, args=(library_id,))
    running.start()
    wait_for(  # its `starting` event is out: the sync runs (not only holds its lease)
        lambda: (last_event(runtime.redis, library_id) or {}).get("status") == "starting",
        10,
        "the sync to start",
    )

    client.request_sync(library_id, force=True)

    assert client.get_status(library_id)["status"] == "starting"
    assert fetch_all(
        runtime, "SELECT sync_status FROM user_libraries WHERE library_id = %s", library_id
    ) == [("syncing",)]
    running.join()


def test_iter_progress_starts_with_the_current_state_and_stops_when_done(
    runtime, register, make_engine
):
    """A late subscriber still sees where the sync stands; a final event ends the stream."""
    library_id = register(steam_id_for(10, seed=52))
    make_engine().sync(library_id)
    events = list(client.iter_progress(library_id, timeout_s=1))
    assert [e["status"] for e in events] == ["completed"]
