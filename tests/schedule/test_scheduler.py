"""The auto-sync tick on real PostgreSQL and Redis, with time frozen by freezegun."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis
from freezegun import freeze_time

from sync_worker import client
from sync_worker.app import reset_broker
from sync_worker.schedule import scheduler
from sync_worker.schedule.scheduler import claim_tick, run_tick, tick_budget
from sync_worker.simulator import ProfileKind, steam_id_for
from sync_worker.sync.pending import pending_message
from tests.conftest import fetch_all

T0 = datetime(2031, 5, 4, 12, 0, tzinfo=UTC)  # a tick time: */5 matches :00


@pytest.fixture(autouse=True)
def fresh_broker(runtime) -> Iterator[None]:
    reset_broker()
    yield
    reset_broker()


def library(
    runtime, steam_id: str, *, due_in: timedelta | None = None, auto_sync: bool = True
) -> str:
    """A library as the web service inserts it; `due_in` sets when it is next due."""
    [(library_id,)] = fetch_all(
        runtime,
        "INSERT INTO user_libraries (platform, platform_user_id, auto_sync) VALUES ('steam', %s, %s)"
        " RETURNING library_id::text",
        steam_id,
        auto_sync,
    )
    if due_in is not None:
        fetch_all(
            runtime,
            "UPDATE user_libraries SET next_sync_at = %s WHERE library_id = %s RETURNING 1",
            T0 + due_in,
            library_id,
        )
    return library_id


def queued_messages(runtime) -> list[dict]:
    """Every sync message waiting on `default` (now or delayed), oldest first."""
    raw = runtime.redis.hvals("dramatiq:default.msgs") + runtime.redis.hvals(
        "dramatiq:default.DQ.msgs"
    )
    messages = [json.loads(m) for m in raw]
    return sorted(messages, key=lambda m: m["options"].get("eta", 0))


def test_due_libraries_are_queued_never_synced_first_and_others_wait(runtime):
    """Due (including a bare INSERT by the web service) queued, oldest first; the rest not."""
    never = library(runtime, steam_id_for(1, seed=201))
    overdue = library(runtime, steam_id_for(1, seed=202), due_in=-timedelta(hours=5))
    just_due = library(runtime, steam_id_for(1, seed=203), due_in=-timedelta(minutes=1))
    not_yet = library(runtime, steam_id_for(1, seed=204), due_in=timedelta(minutes=1))
    opted_out = library(
        runtime, steam_id_for(1, seed=205), due_in=-timedelta(days=9), auto_sync=False
    )

    result = run_tick(runtime, T0, "t0")

    assert result.ran and result.queued == 3
    messages = queued_messages(runtime)
    assert [m["args"][0] for m in messages] == [never, overdue, just_due]
    assert all(m["kwargs"]["sync_type"] == "scheduled" for m in messages)
    assert pending_message(runtime.redis, not_yet) is None
    assert pending_message(runtime.redis, opted_out) is None


def test_a_library_already_queued_is_not_queued_twice(runtime):
    """The tick goes through the web service's de-duplicating path."""
    library_id = library(runtime, steam_id_for(1, seed=206), due_in=-timedelta(hours=1))
    manual = client.request_sync(library_id)

    run_tick(runtime, T0, "t0")

    assert pending_message(runtime.redis, library_id) == manual
    assert queued_messages(runtime) == []  # nothing on `default`: the manual one is on `high`


def test_a_queued_auto_sync_is_not_picked_again_until_its_claim_expires(runtime):
    """Ticks overlap harmlessly; a queued sync that never ran is picked again an hour later."""
    library_id = library(runtime, steam_id_for(1, seed=207), due_in=-timedelta(hours=1))
    assert run_tick(runtime, T0, "t0").queued == 1
    runtime.redis.flushdb()  # the message is lost, say with an unpersisted Redis

    assert run_tick(runtime, T0 + timedelta(minutes=5), "t1").queued == 0
    assert run_tick(runtime, T0 + timedelta(minutes=61), "t2").queued == 1
    assert pending_message(runtime.redis, library_id) is not None


def test_two_schedulers_sending_the_same_tick_queue_once(runtime):
    """A scaled scheduler or a deploy overlap: the second copy of a tick does nothing."""
    library(runtime, steam_id_for(1, seed=208), due_in=-timedelta(hours=1))

    first = run_tick(runtime, T0, "2031-05-04T12:00:00+00:00")
    second = run_tick(runtime, T0 + timedelta(seconds=2), "2031-05-04T12:00:00+00:00")

    assert (first.ran, first.queued, second.ran, second.queued) == (True, 1, False, 0)
    assert len(queued_messages(runtime)) == 1


def test_a_redelivered_tick_queues_what_its_first_delivery_claimed(runtime):
    """The worker died between claiming and queueing: the same message, redelivered, queues
    those libraries (it used to see its own tick key and return, leaving them claimed for
    an hour); a different message for the same tick still does nothing."""
    ids = {
        library(runtime, steam_id_for(1, seed=230 + i), due_in=-timedelta(hours=1))
        for i in range(3)
    }
    claim = claim_tick(runtime, T0, "2031-05-04T12:05:00+00:00", "tick-message-1")  # then died
    assert claim is not None and set(claim.library_ids) == ids
    assert queued_messages(runtime) == []

    other = run_tick(runtime, T0, "2031-05-04T12:05:00+00:00", "tick-message-2")
    again = run_tick(
        runtime, T0 + timedelta(seconds=15), "2031-05-04T12:05:00+00:00", "tick-message-1"
    )

    assert (other.ran, again.ran, again.queued) == (False, True, 3)
    assert {m["args"][0] for m in queued_messages(runtime)} == ids


def test_a_tick_that_cannot_queue_gives_its_claim_back(runtime, monkeypatch):
    """Queueing failed (Redis went away mid-tick): the claimed libraries are due again at
    once for the next tick, not claimed for an hour."""
    library_id = library(runtime, steam_id_for(1, seed=240), due_in=-timedelta(hours=1))

    def redis_gone(*args: object, **kwargs: object) -> None:
        raise redis.ConnectionError("Redis went away")

    monkeypatch.setattr(scheduler, "request_syncs", redis_gone)
    with pytest.raises(redis.ConnectionError):
        run_tick(runtime, T0, "t0")
    monkeypatch.undo()

    assert run_tick(runtime, T0 + timedelta(minutes=5), "t1").queued == 1
    assert [m["args"][0] for m in queued_messages(runtime)] == [library_id]


def test_a_tick_queues_no_more_than_the_budget_and_spreads_it(runtime, monkeypatch):
    """12 due, budget 10 per 5-minute tick: 10 queued, 30 s apart, the 2 newest wait."""
    settings = runtime.settings.model_copy(
        update={
            "steam_webapi_calls_per_window": 40,
            "steam_webapi_window_seconds": 300.0,
            "auto_sync_budget_share": 0.25,
        }
    )
    monkeypatch.setattr(runtime, "settings", settings)
    ids = [
        library(runtime, steam_id_for(1, seed=210 + i), due_in=-timedelta(minutes=60 - i))
        for i in range(12)
    ]

    with freeze_time(T0):
        result = run_tick(runtime, T0, "t0")
        messages = queued_messages(runtime)

    assert (result.budget, result.queued, result.spread_s) == (10, 10, 30.0)
    assert [m["args"][0] for m in messages] == ids[:10]  # oldest first
    etas = [m["options"].get("eta") for m in messages[1:]]
    first_at = T0.timestamp() * 1000
    assert [round((eta - first_at) / 1000) for eta in etas] == [30 * i for i in range(1, 10)]
    assert run_tick(runtime, T0 + timedelta(minutes=5), "t1").queued == 2


def test_the_budget_follows_the_slower_of_the_window_and_the_daily_cap(settings):
    """100,000 calls a day is ~69/min: a 5-minute tick plans ~347 calls at most (all of it)."""
    fleet = settings.model_copy(
        update={
            "steam_webapi_calls_per_window": 1_000,
            "steam_webapi_window_seconds": 300.0,
            "steam_daily_limit": 100_000,
            "auto_sync_budget_share": 1.0,
        }
    )
    assert tick_budget(fleet, 300) == 347
    assert tick_budget(fleet.model_copy(update={"steam_webapi_calls_per_window": 100}), 300) == 100


def next_due(runtime, library_id: str) -> tuple[datetime, int]:
    [(at, failures)] = fetch_all(
        runtime,
        "SELECT next_sync_at, account_failures FROM user_libraries WHERE library_id = %s",
        library_id,
    )
    return at, failures


def test_private_accounts_back_off_1_3_7_then_weekly_and_reset_on_success(runtime, make_engine):
    """Each consecutive private outcome waits longer; a success goes back to the interval."""
    private = steam_id_for(5, ProfileKind.PRIVATE, seed=220)
    library_id = library(runtime, private)
    waits = []
    with freeze_time(T0) as clock:
        for _ in range(4):
            assert make_engine().sync(library_id).status == "private"  # manual syncs always run
            due_at, failures = next_due(runtime, library_id)
            waits.append(((due_at - datetime.now(UTC)).days, failures))
            clock.move_to(due_at)
        fetch_all(
            runtime,
            "UPDATE user_libraries SET platform_user_id = %s WHERE library_id = %s RETURNING 1",
            steam_id_for(5, seed=220),
            library_id,
        )
        assert make_engine().sync(library_id).status == "completed"
        due_at, failures = next_due(runtime, library_id)
        assert (due_at - datetime.now(UTC), failures) == (timedelta(hours=24), 0)

    assert waits == [(1, 1), (3, 2), (7, 3), (7, 4)]


def test_a_library_cancelled_by_hand_waits_a_full_interval(runtime, make_engine):
    """Cancelled mid-sync: not auto-synced again before its interval has passed."""
    library_id = library(runtime, steam_id_for(500, seed=221))

    def cancel_at_first_batch(lib: str, batch: int) -> None:
        client.cancel_sync(lib)

    with freeze_time(T0):
        assert make_engine(after_batch=cancel_at_first_batch).sync(library_id).status == "cancelled"
    assert run_tick(runtime, T0 + timedelta(hours=23), "t0").queued == 0
    assert run_tick(runtime, T0 + timedelta(hours=24, minutes=1), "t1").queued == 1


def test_a_changed_interval_counts_from_the_last_success(runtime, make_engine):
    """The web service shortens the interval: the library is due by the new one at once."""
    library_id = library(runtime, steam_id_for(5, seed=222))
    with freeze_time(T0):
        make_engine().sync(library_id)
    fetch_all(
        runtime,
        "UPDATE user_libraries SET sync_interval = interval '1 hour' WHERE library_id = %s RETURNING 1",
        library_id,
    )
    due_at, _ = next_due(runtime, library_id)
    [(last_success,)] = fetch_all(
        runtime, "SELECT last_success_at FROM user_libraries WHERE library_id = %s", library_id
    )
    assert due_at == last_success + timedelta(hours=1)


def test_a_request_lost_with_redis_is_queued_again_by_a_tick(runtime):
    """Redis restarted empty (no persistence): a manual request's message is gone and the
    library says `queued` with nothing behind it. After RECONCILE_AFTER_S the next tick
    queues it again, on `high`; a library whose message is still live is left alone."""
    lost = library(runtime, steam_id_for(1, seed=250), due_in=timedelta(days=400))
    live = library(runtime, steam_id_for(1, seed=251), due_in=timedelta(days=400))
    lost_message = client.request_sync(lost)
    runtime.redis.flushdb()  # what a Redis without persistence comes back with
    live_message = client.request_sync(live)
    fetch_all(
        runtime,
        "UPDATE user_libraries SET updated_at = now() - interval '11 minutes' RETURNING 1",
    )

    result = run_tick(runtime, datetime.now(UTC), "reconcile-1")

    assert result.requeued == 1
    high = [json.loads(m) for m in runtime.redis.hvals("dramatiq:high.msgs")]
    assert sorted(m["args"][0] for m in high) == sorted([lost, live])
    requeued = next(m for m in high if m["args"][0] == lost)
    assert requeued["message_id"] != lost_message
    assert client.get_status(lost)["status"] == "queued"
    assert client.request_sync(live) == live_message  # untouched, still the one in flight
    assert run_tick(runtime, datetime.now(UTC), "reconcile-2").requeued == 0
