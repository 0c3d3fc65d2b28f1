"""Duplicates and races: one writer at a time, and every record agrees at the end."""

from __future__ import annotations

import itertools
import json
import signal
import time

from sync_worker import client, keys
from sync_worker.app import reset_broker
from sync_worker.simulator import steam_id_for
from tests.conftest import fetch_all, library_status, wait_for
from tests.reliability.conftest import compare_with_simulator, report
from tests.workers import idle


def runs_of(runtime, library_id: str) -> list[tuple]:
    """(status, started_at, finished_at, new_games, updated_games) of every run, in order."""
    return fetch_all(
        runtime,
        "SELECT status, started_at, finished_at, new_games, updated_games FROM sync_runs"
        " WHERE library_id = %s ORDER BY started_at",
        library_id,
    )


def last_event(runtime, library_id: str) -> dict:
    return json.loads(runtime.redis.get(keys.progress_key(library_id)))


def test_five_forced_requests_on_two_processes_run_one_after_another(
    runtime, register, sim, subprocess_env, workers
):
    """force x5: five syncs, never two at once; the first writes everything, the rest nothing."""
    steam_id = steam_id_for(3_000, seed=131)
    library_id = register(steam_id)
    workers(subprocess_env, "forced", processes=2, threads=2).wait_ready()
    reset_broker()
    ids = {client.request_sync(library_id, force=True) for _ in range(5)}

    wait_for(
        lambda: (
            len(runs_of(runtime, library_id)) == 5
            and all(r[0] == "completed" for r in runs_of(runtime, library_id))
        ),
        90,
        "five completed runs",
    )

    runs = runs_of(runtime, library_id)
    assert len(ids) == 5
    for earlier, later in itertools.pairwise(runs):
        assert earlier[2] <= later[1], "two runs of one library overlapped"
    assert [(r[3], r[4]) for r in runs] == [(3_000, 0)] + [(0, 0)] * 4
    assert library_status(runtime, library_id) == "completed"
    assert last_event(runtime, library_id)["status"] == "completed"
    assert not runtime.redis.exists(keys.cancel_key(library_id), keys.lock_key(library_id))
    truth = compare_with_simulator(runtime, library_id, steam_id, sim)
    assert truth.mismatches == []
    report(
        "5 forced requests, 2 processes",
        "5 runs, never overlapping",
        "5 runs in sequence",
        truth.rows_checked,
        None,
    )


def test_request_cancel_request_while_running_ends_consistent(
    runtime, register, sim, subprocess_env, workers
):
    """Cancel a running sync and ask again: the first run ends cancelled, the second completes."""
    steam_id = steam_id_for(20_000, seed=132)
    library_id = register(steam_id)
    workers(subprocess_env, "cancel-race", processes=1, threads=2).wait_ready()
    reset_broker()
    first = client.request_sync(library_id)
    wait_for(lambda: client.get_status(library_id)["status"] == "syncing", 30, "the first sync")

    assert client.cancel_sync(library_id) is True
    second = client.request_sync(library_id)

    assert second != first
    wait_for(
        lambda: [r[0] for r in runs_of(runtime, library_id)] == ["cancelled", "completed"],
        90,
        "a cancelled run, then a completed one",
    )
    assert library_status(runtime, library_id) == "completed"
    assert last_event(runtime, library_id)["status"] == "completed"
    assert not runtime.redis.exists(keys.cancel_key(library_id))
    truth = compare_with_simulator(runtime, library_id, steam_id, sim)
    assert truth.mismatches == []
    report(
        "request + cancel + request (running)",
        "cancelled run, then completed",
        "cancelled, completed",
        truth.rows_checked,
        None,
    )


def test_cancel_right_after_completion_changes_nothing(
    runtime, register, subprocess_env, workers, make_engine
):
    """20 times: cancel the moment `completed` arrives: nothing to cancel, the next sync is not ambushed."""
    library_id = register(steam_id_for(40, seed=133))
    workers(subprocess_env, "after-completion").wait_ready()
    reset_broker()
    answers = []
    for _ in range(20):
        client.request_sync(library_id)
        events = client.iter_progress(library_id, timeout_s=30)
        assert (
            next(e for e in events if e["status"] in ("completed", "failed"))["status"]
            == "completed"
        )
        answers.append(client.cancel_sync(library_id))

    assert answers == [False] * 20
    assert not runtime.redis.exists(keys.cancel_key(library_id))
    assert make_engine().sync(library_id).status == "completed"
    report(
        "cancel right after completion x20",
        "False, no flag left",
        f"{answers.count(False)}/20 False",
        40,
        None,
    )


def test_a_stalled_worker_whose_lease_expired_cannot_write_again(
    runtime, register, sim, subprocess_env, workers
):
    """SIGSTOP a worker mid-sync past its lease and heartbeat: another takes over; the stalled
    one, resumed, stands down without writing a batch."""
    env = {**subprocess_env, "WORKER_HEARTBEAT_TIMEOUT_S": "3", "SYNC_LOCK_TTL_S": "2"}
    steam_id = steam_id_for(30_000, seed=134)
    library_id = register(steam_id)
    stalled = workers(env, "stalled").wait_ready()
    rescuer = workers(env, "rescuer").wait_ready()
    reset_broker()
    rescuer.signal(signal.SIGSTOP)
    client.request_sync(library_id)
    wait_for(
        lambda: client.get_status(library_id).get("games_processed", 0) >= 3_000, 60, "syncing"
    )

    stalled_at = stalled.signal(signal.SIGSTOP)
    rescuer.signal(signal.SIGCONT)
    wait_for(lambda: rescuer.events("sync.started"), 60, "the rescuer to take the run over")
    taken_over_s = time.monotonic() - stalled_at
    stalled.signal(signal.SIGCONT)
    wait_for(lambda: library_status(runtime, library_id) == "completed", 90, "completion")
    wait_for(
        lambda: stalled.events("sync.stood_down") or stalled.events("sync.lease_lost"),
        30,
        "the stalled attempt to notice",
    )

    [(status, attempts, batches, new_games)] = fetch_all(
        runtime,
        "SELECT status, attempts, batches, new_games FROM sync_runs WHERE library_id = %s",
        library_id,
    )
    assert (status, attempts, batches, new_games) == ("completed", 2, 300, 30_000)
    assert not stalled.events("sync.completed")
    truth = compare_with_simulator(runtime, library_id, steam_id, sim)
    assert truth.mismatches == [] and truth.rows_checked == 30_000
    report(
        "lease expires under a stalled worker",
        "rescuer completes, stalled stands down",
        "1 run, 300 batches, exact",
        truth.rows_checked,
        taken_over_s,
    )


def test_deleting_libraries_mid_sync_never_deadlocks(runtime, register, subprocess_env, workers):
    """The web service deletes a library while its sync writes batches: the DELETE goes
    through (it waits for the batch in flight at most), the sync stands down quietly, and
    nothing of the library is left."""
    group = workers(subprocess_env, "deletes", processes=1, threads=4).wait_ready()
    reset_broker()
    library_ids = [register(steam_id_for(8_000, seed=180 + i)) for i in range(6)]
    for library_id in library_ids:
        client.request_sync(library_id)

    def syncing(library_id: str) -> bool:
        rows = fetch_all(
            runtime,
            "SELECT games_processed FROM sync_runs WHERE library_id = %s AND status = 'running'",
            library_id,
        )
        return bool(rows) and rows[0][0] >= 200

    deleted = 0
    for library_id in library_ids:
        wait_for(lambda lib=library_id: syncing(lib), 60, "the sync to be writing batches")
        with runtime.pool.connection() as conn:
            conn.execute("SET deadlock_timeout = '100ms'")  # a deadlock shows at once
            conn.execute("DELETE FROM user_libraries WHERE library_id = %s", (library_id,))
        deleted += 1

    wait_for(lambda: idle(runtime), 60, "the workers to stand down")
    for table in ("user_libraries", "sync_runs", "library_games", "library_digests"):
        assert fetch_all(
            runtime, f"SELECT count(*) FROM {table} WHERE library_id = ANY(%s::uuid[])", library_ids
        ) == [(0,)], table
    assert group.process.poll() is None
    assert len(group.events("sync.stood_down")) == len(library_ids)
    assert runtime.redis.zcard(keys.broker_dead_letters_key("high")) == 0
    report(
        "DELETE of 6 libraries mid-sync",
        "deleted, syncs stand down, no deadlock",
        f"{deleted} deleted, {len(group.events('sync.stood_down'))} stood down",
        0,
        None,
    )
