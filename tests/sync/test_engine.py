"""The sync engine end to end: real PostgreSQL, real Redis, the simulator over HTTP."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

import pytest

from sync_worker import keys
from sync_worker.errors import SteamUnavailable, SyncAlreadyRunning
from sync_worker.runtime import Runtime
from sync_worker.simulator import ProfileKind, steam_id_for
from sync_worker.sync.engine import SyncEngine
from tests.conftest import fetch_all

EngineFactory = Callable[..., SyncEngine]


def open_runs(runtime: Runtime, library_id: str) -> list[tuple[object, ...]]:
    """(resume_after, batches, games_processed, new_games) of the library's open run, if any."""
    return fetch_all(
        runtime,
        "SELECT resume_after, batches, games_processed, new_games FROM sync_runs"
        " WHERE library_id = %s AND status = 'running'",
        library_id,
    )


def owned_rows(runtime: Runtime, library_id: str) -> dict[str, tuple[int, object]]:
    """platform_game_id -> (playtime, removed_at) for every stored row of a library."""
    rows = fetch_all(
        runtime,
        "SELECT platform_game_id, playtime_minutes, removed_at FROM library_games WHERE library_id = %s",
        library_id,
    )
    return {r[0]: (r[1], r[2]) for r in rows}


def test_first_sync_stores_exactly_the_simulators_games(runtime, register, make_engine, sim):
    """Every owned game, free ones included, lands once; totals match."""
    steam_id = steam_id_for(250, seed=7)
    library_id = register(steam_id)

    outcome = make_engine().sync(library_id)

    expected = {str(a) for a in sim.owned_app_ids(steam_id)}
    assert outcome.status == "completed"
    assert set(owned_rows(runtime, library_id)) == expected
    assert (outcome.total_games, outcome.new_games, outcome.updated_games) == (
        len(expected),
        len(expected),
        0,
    )
    assert outcome.api_calls == 1
    [(status, total, last_success)] = fetch_all(
        runtime,
        "SELECT sync_status, total_games, last_success_at FROM user_libraries WHERE library_id = %s",
        library_id,
    )
    assert (status, total) == ("completed", len(expected)) and last_success is not None


def test_unchanged_resync_reports_nothing_new_or_updated(register, make_engine):
    """A second sync of an unchanged library rewrites nothing."""
    library_id = register(steam_id_for(300, seed=8))
    make_engine().sync(library_id)

    again = make_engine().sync(library_id)

    assert (again.new_games, again.updated_games, again.removed_games) == (0, 0, 0)
    assert again.total_games == 300


def test_playtime_changes_count_exactly_as_updates(runtime, register, make_engine, sim):
    """Bumping N games' playtime yields exactly N updated rows with the new minutes."""
    steam_id = steam_id_for(200, seed=9)
    library_id = register(steam_id)
    make_engine().sync(library_id)
    before = owned_rows(runtime, library_id)
    bumped = sim.owned_app_ids(steam_id)[10:15]

    sim.change_library(steam_id, bump_playtime={str(a): 45 for a in bumped})
    outcome = make_engine().sync(library_id)

    after = owned_rows(runtime, library_id)
    assert (outcome.new_games, outcome.updated_games) == (0, 5)
    for app_id in bumped:
        assert after[str(app_id)][0] == before[str(app_id)][0] + 45


def test_removed_games_are_marked_not_deleted_and_readded_games_come_back(
    runtime, register, make_engine, sim
):
    """Removal stamps removed_at; a game returning clears it and counts as new."""
    steam_id = steam_id_for(120, seed=10)
    library_id = register(steam_id)
    make_engine().sync(library_id)
    gone = sim.owned_app_ids(steam_id)[:3]

    sim.change_library(steam_id, remove=gone)
    removal = make_engine().sync(library_id)
    rows = owned_rows(runtime, library_id)
    assert removal.removed_games == 3 and removal.total_games == 117
    assert len(rows) == 120  # nothing deleted
    assert all(rows[str(a)][1] is not None for a in gone)

    sim.change_library(steam_id, add=gone[:2])
    readd = make_engine().sync(library_id)
    rows = owned_rows(runtime, library_id)
    assert (readd.new_games, readd.updated_games, readd.removed_games) == (2, 0, 0)
    assert [rows[str(a)][1] is None for a in gone] == [True, True, False]


@pytest.mark.parametrize("kind", [ProfileKind.PRIVATE, ProfileKind.PRIVATE_GAME_DETAILS])
def test_private_profile_keeps_stored_games_and_ends_private(runtime, register, make_engine, kind):
    """A library that turns private keeps every stored row and says why."""
    public_id = steam_id_for(80, seed=11)
    library_id = register(public_id)
    make_engine().sync(library_id)
    stored = owned_rows(runtime, library_id)
    # The same account, now hidden: point the library at the private variant of the profile.
    fetch_all(
        runtime,
        "UPDATE user_libraries SET platform_user_id = %s WHERE library_id = %s RETURNING 1",
        steam_id_for(80, kind, seed=11),
        library_id,
    )

    outcome = make_engine().sync(library_id)

    assert outcome.status == "private"
    assert outcome.error is not None and outcome.error["code"] == "private_profile"
    assert owned_rows(runtime, library_id) == stored
    [(status, error, total)] = fetch_all(
        runtime,
        "SELECT sync_status, sync_error, total_games FROM user_libraries WHERE library_id = %s",
        library_id,
    )
    assert status == "private" and error["code"] == "private_profile" and total == 80
    event = json.loads(runtime.redis.get(keys.progress_key(library_id)))
    assert event["status"] == "failed" and event["error"]["code"] == "private_profile"


def test_zero_game_profile_completes_empty(register, make_engine):
    """A public profile owning nothing is a completed sync of zero games, not an error."""
    outcome = make_engine().sync(register(steam_id_for(0, seed=12)))
    assert (outcome.status, outcome.total_games, outcome.api_calls) == ("completed", 0, 1)


def test_bad_key_fails_at_once_with_one_call_and_no_key_anywhere(
    runtime, settings, register, make_engine, sim
):
    """A rejected key is permanent: one call, a clear code, the key nowhere in DB, events or error."""
    bad_key = "BAD-KEY-7d3f9a1c-SECRET"
    bad = settings.model_copy(update={"steam_api_key": type(settings.steam_api_key)(bad_key)})
    library_id = register(steam_id_for(50, seed=13))

    outcome = make_engine(settings=bad).sync(library_id)

    assert outcome.status == "failed" and outcome.error["code"] == "steam_key_rejected"
    assert sim.calls() == 1
    assert bad_key not in repr(outcome)
    stored = fetch_all(
        runtime,
        "SELECT l.sync_status, l.sync_error::text, r.error::text FROM user_libraries l"
        " JOIN sync_runs r USING (library_id) WHERE l.library_id = %s",
        library_id,
    )
    assert stored[0][0] == "failed" and '"steam_key_rejected"' in stored[0][1]
    assert bad_key not in repr(stored)
    assert bad_key not in runtime.redis.get(keys.progress_key(library_id)).decode()
    assert open_runs(runtime, library_id) == []  # permanent: nothing to resume


def test_crash_after_batch_k_resumes_from_the_checkpoint(runtime, register, make_engine, sim):
    """A run killed after batch 3 of 10 resumes at batch 4 and ends with exact rows and totals."""

    class Crash(BaseException):
        """Stands for the process dying: not an Exception, so nothing handles it."""

    batches_seen: list[int] = []

    def crash_after_third(library_id: str, batch: int) -> None:
        batches_seen.append(batch)
        if batch == 3:
            raise Crash

    steam_id = steam_id_for(1_000, seed=14)
    ordered = sim.owned_app_ids(steam_id)
    calls_before = sim.calls()
    library_id = register(steam_id)
    with pytest.raises(Crash):
        make_engine(after_batch=crash_after_third).sync(library_id)

    # The checkpoint was committed with the rows: position and counts agree with them.
    assert open_runs(runtime, library_id) == [(ordered[299], 3, 300, 300)]
    assert len(owned_rows(runtime, library_id)) == 300

    resumed_batches: list[int] = []
    outcome = make_engine(after_batch=lambda _lib, b: resumed_batches.append(b)).sync(library_id)

    assert resumed_batches == list(range(4, 11))  # batches 4..10 only: 1..3 were not rewritten
    assert set(owned_rows(runtime, library_id)) == {str(a) for a in ordered}
    assert (outcome.total_games, outcome.new_games, outcome.updated_games) == (1_000, 1_000, 0)
    assert outcome.api_calls == 2 and sim.calls() - calls_before == 2  # one fetch per attempt
    [(status, attempts, new_games)] = fetch_all(
        runtime,
        "SELECT status, attempts, new_games FROM sync_runs WHERE library_id = %s",
        library_id,
    )
    assert (status, attempts, new_games) == ("completed", 2, 1_000)
    assert open_runs(runtime, library_id) == []


def test_transient_failure_keeps_the_run_open_and_stored_games(runtime, register, make_engine, sim):
    """Steam 5xx: the attempt fails transiently, keeps what it had; the run stays open to resume."""
    library_id = register(steam_id_for(150, seed=15))
    make_engine().sync(library_id)
    stored = owned_rows(runtime, library_id)
    sim.fault(match="GetOwnedGames", kind="status", status=502, count=1)

    with pytest.raises(SteamUnavailable):
        make_engine().sync(library_id)

    assert owned_rows(runtime, library_id) == stored
    [(status, error)] = fetch_all(
        runtime,
        "SELECT sync_status, sync_error FROM user_libraries WHERE library_id = %s",
        library_id,
    )
    assert status == "failed" and error["code"] == "steam_unavailable"
    [(run_error, attempts)] = fetch_all(
        runtime, "SELECT error, attempts FROM sync_runs WHERE status = 'running'"
    )
    assert run_error["code"] == "steam_unavailable" and attempts == 1
    assert make_engine().sync(library_id).status == "completed"  # the retry resumes and finishes
    assert fetch_all(runtime, "SELECT status, attempts FROM sync_runs ORDER BY started_at") == [
        ("completed", 1),
        ("completed", 2),
    ]


def test_a_second_sync_while_one_runs_is_deferred_without_touching_anything(
    runtime, register, make_engine, sim
):
    """While one sync holds the lease, another owner's attempt is told to come back later."""
    library_id = register(steam_id_for(400, seed=16))
    sim.fault(match="GetOwnedGames", kind="delay", delay_s=1.0, count=1)
    results: dict[str, object] = {}

    def first() -> None:
        results["first"] = make_engine().sync(library_id)

    thread = threading.Thread(target=first)
    thread.start()
    # Wait until the first run holds the lease, then try a second one.
    for _ in range(200):
        if runtime.redis.exists(keys.lock_key(library_id)):
            break
        threading.Event().wait(0.01)
    with pytest.raises(SyncAlreadyRunning) as caught:
        make_engine().sync(library_id)
    thread.join()

    assert 0 < caught.value.retry_after_s <= 2.0  # asks again soon: "later", never "drop"

    assert results["first"].status == "completed"  # type: ignore[attr-defined]
    assert sim.calls() == 1
    assert len(fetch_all(runtime, "SELECT 1 FROM sync_runs WHERE library_id = %s", library_id)) == 1


def test_progress_events_have_the_contract_shape_and_order(runtime, register, make_engine):
    """Subscribers see starting, per-batch syncing (last at 100 %), then completed."""
    library_id = register(steam_id_for(350, seed=17))
    pubsub = runtime.redis.pubsub()
    pubsub.subscribe(keys.PROGRESS_CHANNEL)
    pubsub.get_message(timeout=1)  # the subscribe confirmation

    make_engine().sync(library_id)

    events = []
    while (message := pubsub.get_message(timeout=0.5)) is not None:
        events.append(json.loads(message["data"]))
    pubsub.close()
    statuses = [e["status"] for e in events]
    assert statuses == ["starting", "syncing", "syncing", "syncing", "syncing", "completed"]
    required = {"library_id", "status", "progress", "games_processed", "total_games", "message"}
    assert all(required <= set(e) and e["library_id"] == library_id for e in events)
    assert [e["games_processed"] for e in events[1:5]] == [100, 200, 300, 350]
    assert events[4]["progress"] == 100 and events[-1]["completed_at"]
    assert json.loads(runtime.redis.get(keys.progress_key(library_id))) == events[-1]


def test_a_dead_workers_lease_expires_so_the_library_can_sync_again(
    runtime, settings, register, make_engine
):
    """A lease left behind by another owner's killed worker frees itself within its TTL."""
    library_id = register(steam_id_for(10, seed=18))
    runtime.redis.set(keys.lock_key(library_id), "dead-owner dead-token", px=300)

    with pytest.raises(SyncAlreadyRunning):
        make_engine().sync(library_id)
    threading.Event().wait(0.4)
    assert make_engine().sync(library_id).status == "completed"


def test_a_redelivered_message_takes_over_its_own_leftover_lease_at_once(
    runtime, register, make_engine
):
    """The same message coming back after its worker died does not wait for the old lease."""
    library_id = register(steam_id_for(10, seed=18))
    runtime.redis.set(keys.lock_key(library_id), "message-1 old-token", px=60_000)

    outcome = make_engine().sync(library_id, owner="message-1")

    assert outcome.status == "completed"
    assert not runtime.redis.exists(keys.lock_key(library_id))  # released at the end


def test_a_run_whose_fence_was_taken_over_cannot_commit_another_batch(
    runtime, register, make_engine
):
    """A stalled attempt that lost its run to another one stands down: one writer at a time."""
    from sync_worker.errors import LockLost

    library_id = register(steam_id_for(500, seed=18))

    def take_over_after_second(lib: str, batch: int) -> None:
        if batch == 2:  # another attempt resumes the run under a new fence
            fetch_all(
                runtime,
                "UPDATE sync_runs SET lease_token = 'usurper' WHERE library_id = %s RETURNING 1",
                lib,
            )

    with pytest.raises(LockLost):
        make_engine(after_batch=take_over_after_second).sync(library_id)

    assert len(owned_rows(runtime, library_id)) == 200  # batch 3 was rolled back
    assert [run[1:] for run in open_runs(runtime, library_id)] == [(2, 200, 200)]


def test_unknown_library_is_a_clear_permanent_error(make_engine, runtime):
    """An id that names no library fails before any work."""
    from sync_worker.errors import UnknownLibrary

    with pytest.raises(UnknownLibrary):
        make_engine().sync("00000000-0000-0000-0000-000000000000")
    with pytest.raises(UnknownLibrary):
        make_engine().sync("not-a-uuid")


def test_cancel_mid_sync_stops_at_the_next_batch_and_keeps_what_was_saved(
    runtime, register, make_engine
):
    """Cancelled during batch 3 of 10: exactly 3 batches kept, run and library end `cancelled`."""
    from sync_worker import client

    library_id = register(steam_id_for(1_000, seed=19))

    def cancel_during_third(lib: str, batch: int) -> None:
        if batch == 3:
            assert client.cancel_sync(lib) is True  # the running sync holds the lease

    outcome = make_engine(after_batch=cancel_during_third).sync(library_id)

    assert outcome.status == "cancelled" and outcome.error["code"] == "cancelled"
    assert len(owned_rows(runtime, library_id)) == 300
    assert fetch_all(
        runtime, "SELECT status, new_games FROM sync_runs WHERE library_id = %s", library_id
    ) == [("cancelled", 300)]
    event = json.loads(runtime.redis.get(keys.progress_key(library_id)))
    assert (event["status"], event["games_processed"], event["total_games"]) == (
        "cancelled",
        300,
        1_000,
    )
    assert open_runs(runtime, library_id) == []
    assert not runtime.redis.exists(keys.cancel_key(library_id))  # carried out, forgotten
    assert make_engine().sync(library_id).new_games == 700  # the next sync finishes the job


def test_losing_redis_is_a_transient_error(runtime, register, settings):
    """A dead Redis surfaces as redis_unavailable (retried), not as a raw client exception."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from sync_worker.errors import RedisUnavailable
    from sync_worker.platforms.steam import SteamClient

    dead = redis.Redis(unix_socket_path="/nonexistent/redis.sock", retry=Retry(NoBackoff(), 0))
    engine = SyncEngine(settings, dead, runtime.pool, lambda: SteamClient(settings))
    with pytest.raises(RedisUnavailable) as caught:
        engine.sync(register(steam_id_for(5, seed=20)))
    assert caught.value.code == "redis_unavailable"


def test_giving_up_waits_out_its_own_leftover_lease_but_not_a_live_delivery(
    runtime, settings, register
):
    """A dead-lettered message closes the run once its old lease lapses, but leaves alone
    the run another, live delivery of the same message is writing."""
    from sync_worker.errors import SteamUnavailable
    from sync_worker.store import runs
    from sync_worker.sync.abandon import abandon
    from sync_worker.sync.lease import Lease

    quick = settings.model_copy(update={"sync_lock_ttl_s": 1.0})
    library_id = register(steam_id_for(10, seed=24))
    with runtime.pool.connection() as conn:
        runs.open_run(conn, library_id, "manual", "token", "message-7")

    live = Lease(runtime.redis, library_id, "message-7", 1.0)
    assert live.acquire()
    with live.kept_alive():  # another delivery of message-7, renewing its lease
        assert not abandon(
            quick,
            runtime.redis,
            runtime.pool,
            library_id,
            "message-7",
            "failed",
            SteamUnavailable(),
        )
    assert open_runs(runtime, library_id) != []

    runtime.redis.set(keys.lock_key(library_id), "message-7 dead-token", px=800)
    assert abandon(
        quick, runtime.redis, runtime.pool, library_id, "message-7", "failed", SteamUnavailable()
    )
    assert open_runs(runtime, library_id) == []
    assert fetch_all(runtime, "SELECT status FROM sync_runs WHERE library_id = %s", library_id) == [
        ("failed",)
    ]


def test_a_session_ended_by_the_server_counts_as_a_lost_database(runtime):
    """PostgreSQL ending a transaction left idle (a frozen worker) is infrastructure, not a bug."""
    import time

    import psycopg

    from sync_worker.infrastructure import INFRASTRUCTURE_ERRORS, infrastructure_error

    with psycopg.connect(str(runtime.settings.database_url)) as conn:
        conn.execute("SET idle_in_transaction_session_timeout = 200")
        conn.execute("SELECT 1")  # a transaction is open now
        time.sleep(0.6)
        with pytest.raises(psycopg.Error) as caught:
            conn.execute("SELECT 1")
    assert isinstance(caught.value, INFRASTRUCTURE_ERRORS)
    assert infrastructure_error(caught.value).code == "database_unavailable"
