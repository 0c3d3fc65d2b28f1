"""Workers killed or stopped mid-sync, the way production does it: nothing stranded, nothing lost."""

from __future__ import annotations

import signal
import time

import requests

from sync_worker import client, keys
from sync_worker.app import reset_broker
from sync_worker.simulator import steam_id_for
from sync_worker.simulator.gog import gog_user_id_for, is_movie, parse_account
from tests.conftest import fetch_all, library_status, link_gog, wait_for
from tests.reliability.conftest import compare_with_simulator, report

GAMES = 30_000
BATCH = 100  # SYNC_BATCH_SIZE in the test environment: 300 batches per library


def committed(runtime, library_id: str) -> int:
    """Games the library's open run has committed (0 before it has one)."""
    rows = fetch_all(
        runtime,
        "SELECT games_processed FROM sync_runs WHERE library_id = %s AND status = 'running'",
        library_id,
    )
    return int(rows[0][0]) if rows else 0


def the_run(runtime, library_id: str) -> tuple:
    """(status, attempts, batches, new_games, total_games) of the library's only run."""
    [run] = fetch_all(
        runtime,
        "SELECT status, attempts, batches, new_games, total_games FROM sync_runs"
        " WHERE library_id = %s",
        library_id,
    )
    return run


def test_sigkill_mid_sync_comes_back_within_seconds_and_resumes(
    runtime, register, sim, subprocess_env, workers
):
    """SIGKILL a worker group at 5,000 of 30,000 games: another worker resumes after the checkpoint."""
    steam_id = steam_id_for(GAMES, seed=101)
    library_id = register(steam_id)
    doomed = workers(subprocess_env, "doomed").wait_ready()
    survivor = workers(subprocess_env, "survivor").wait_ready()
    reset_broker()
    # Make sure the doomed group takes the message: the survivor only joins the queue later.
    survivor.signal(signal.SIGSTOP)
    client.request_sync(library_id)
    wait_for(lambda: committed(runtime, library_id) >= 5_000, 60, "5,000 committed games")
    survivor.signal(signal.SIGCONT)

    killed_at = doomed.signal(signal.SIGKILL)
    at_kill = committed(runtime, library_id)
    wait_for(lambda: survivor.events("sync.started"), 60, "the survivor to resume the sync")
    recovery_s = time.monotonic() - killed_at
    wait_for(lambda: library_status(runtime, library_id) == "completed", 60, "the sync to complete")

    [resumed] = survivor.events("sync.started")
    assert resumed["attempt"] == 2 and resumed["games_already_written"] >= at_kill
    # One run, 300 batches committed once each: nothing before the checkpoint was rewritten.
    assert the_run(runtime, library_id) == ("completed", 2, GAMES // BATCH, GAMES, GAMES)
    truth = compare_with_simulator(runtime, library_id, steam_id, sim)
    assert truth.mismatches == [] and truth.rows_checked == GAMES
    assert not runtime.redis.exists(keys.pending_key(library_id), keys.lock_key(library_id))
    assert client.get_status(library_id)["status"] == "completed"
    report(
        "SIGKILL worker group mid-sync (30k games)",
        "resumed elsewhere, exact rows, 1 run",
        f"resumed at {resumed['games_already_written']}, completed",
        truth.rows_checked,
        recovery_s,
    )
    print(f"\nSIGKILL at {at_kill} games; resumed by another worker {recovery_s:.1f} s later")


def queued(runtime, queue: str = "high") -> int:
    """Messages waiting on a queue or its delay queue (not in any worker's hands)."""
    return sum(int(runtime.redis.llen(f"dramatiq:{name}")) for name in (queue, f"{queue}.DQ"))


def stored_rows(runtime, library_id: str) -> int:
    return int(
        fetch_all(runtime, "SELECT count(*) FROM library_games WHERE library_id = %s", library_id)[
            0
        ][0]
    )


def test_sigterm_to_the_process_group_stops_at_a_batch_boundary_and_requeues_at_once(
    runtime, register, sim, subprocess_env, workers
):
    """Heroku's SIGTERM to every process: syncs stop after a batch, messages go straight back."""
    steam_ids = [steam_id_for(GAMES, seed=s) for s in (102, 103)]
    library_ids = [register(s) for s in steam_ids]
    group = workers(subprocess_env, "deploy-old", processes=2, threads=2).wait_ready()
    reset_broker()
    for library_id in library_ids:
        client.request_sync(library_id)
    wait_for(
        lambda: all(committed(runtime, lib) >= 2_000 for lib in library_ids), 60, "both syncing"
    )

    sent_at = group.signal(signal.SIGTERM)
    time.sleep(0.3)  # Dramatiq's main process relays its own SIGTERM a moment later
    group.signal(signal.SIGTERM)
    assert group.wait(30) == 0
    stop_s = time.monotonic() - sent_at

    assert "Killing worker process" not in group.text()  # repeated SIGTERMs were ignored
    assert queued(runtime) == 2  # both messages back in the broker, no heartbeat timeout needed
    for library_id in library_ids:
        # The checkpoint is exactly the rows on disk: the stop fell between two batches.
        assert committed(runtime, library_id) == stored_rows(runtime, library_id)
        assert stored_rows(runtime, library_id) % BATCH == 0
        assert library_status(runtime, library_id) == "queued"
        assert client.get_status(library_id)["status"] == "queued"

    restarted_at = time.monotonic()
    fresh = workers(subprocess_env, "deploy-new", processes=2, threads=2).wait_ready()
    for library_id in library_ids:
        wait_for(lambda lib=library_id: library_status(runtime, lib) == "completed", 90, "resume")
    resumed = fresh.events("sync.started")
    assert len(resumed) == 2 and all(e["games_already_written"] >= 2_000 for e in resumed)
    rows = 0
    for library_id, steam_id in zip(library_ids, steam_ids, strict=True):
        assert the_run(runtime, library_id) == ("completed", 2, GAMES // BATCH, GAMES, GAMES)
        truth = compare_with_simulator(runtime, library_id, steam_id, sim)
        assert truth.mismatches == []
        rows += truth.rows_checked
    report(
        "SIGTERM to the process group mid-sync (2x30k)",
        "stop at batch, requeued at once, resume",
        f"exit 0 after {stop_s:.1f} s, both resumed",
        rows,
        time.monotonic() - restarted_at,
    )
    print(f"\nSIGTERM to exit: {stop_s:.2f} s; both syncs resumed on the new workers")


def test_a_sync_inside_a_slow_steam_call_is_requeued_when_the_shutdown_timeout_ends(
    runtime, register, sim, subprocess_env, workers
):
    """A fetch that outlasts --worker-shutdown-timeout: the message is back on the queue at exit."""
    steam_id = steam_id_for(500, seed=104)
    library_id = register(steam_id)
    sim.fault(match="GetOwnedGames", kind="delay", delay_s=8, count=1)
    group = workers(subprocess_env, "slow-fetch", shutdown_timeout_ms=2_000).wait_ready()
    reset_broker()
    client.request_sync(library_id)
    wait_for(lambda: client.get_status(library_id)["status"] == "starting", 30, "the fetch")

    sent_at = group.signal(signal.SIGTERM)
    group.wait(30)
    stop_s = time.monotonic() - sent_at

    assert 1.5 < stop_s < 8  # the shutdown timeout ended it, not the 8 s fetch
    assert queued(runtime) == 1 and group.events("worker.requeued_unfinished")
    restarted_at = time.monotonic()
    workers(subprocess_env, "slow-fetch-again").wait_ready()
    wait_for(lambda: library_status(runtime, library_id) == "completed", 60, "the requeued sync")
    recovery_s = time.monotonic() - restarted_at
    assert recovery_s < 10  # no heartbeat timeout was waited for
    truth = compare_with_simulator(runtime, library_id, steam_id, sim)
    assert truth.mismatches == [] and truth.rows_checked == 500
    report(
        "SIGTERM during an 8 s Steam call, 2 s timeout",
        "requeued at exit, completes on restart",
        f"exit after {stop_s:.1f} s, requeued, completed",
        truth.rows_checked,
        recovery_s,
    )


def test_sigkill_mid_paging_resumes_a_gog_sync_at_its_page(
    runtime, settings, simulator, subprocess_env, workers
):
    """SIGKILL a worker group at page 4 of a 1,500-product GOG library (each page answered
    slowly): another worker resumes at the next page, rows and counts exact, one run."""
    requests.post(f"{simulator.url}/_sim/reset", timeout=5).raise_for_status()
    user_id = gog_user_id_for(1_500, seed=102)
    library_id = link_gog(settings, user_id)
    requests.post(
        f"{simulator.url}/_sim/faults",
        json={"match": "gog_products", "kind": "delay", "delay_s": 0.4, "count": 1_000},
        timeout=5,
    ).raise_for_status()
    doomed = workers(subprocess_env, "doomed").wait_ready()
    survivor = workers(subprocess_env, "survivor").wait_ready()
    reset_broker()
    survivor.signal(signal.SIGSTOP)
    client.request_sync(library_id)

    def checkpoint() -> int:
        rows = fetch_all(
            runtime,
            "SELECT resume_after FROM sync_runs WHERE library_id = %s AND status = 'running'",
            library_id,
        )
        return int(rows[0][0] or 0) if rows else 0

    wait_for(lambda: checkpoint() >= 4, 60, "4 pages committed")
    survivor.signal(signal.SIGCONT)
    killed_at = doomed.signal(signal.SIGKILL)
    at_kill = checkpoint()
    wait_for(lambda: survivor.events("sync.started"), 60, "the survivor to resume the sync")
    recovery_s = time.monotonic() - killed_at
    wait_for(lambda: library_status(runtime, library_id) == "completed", 60, "the sync to complete")

    account = parse_account(user_id)
    assert account is not None
    games = {str(p) for p in simulator.gog.owned(account) if not is_movie(p)}
    stored = {
        game_id
        for (game_id,) in fetch_all(
            runtime,
            "SELECT platform_game_id FROM library_games WHERE library_id = %s"
            " AND removed_at IS NULL",
            library_id,
        )
    }
    assert stored == games
    [(status, attempts, new_games, total)] = fetch_all(
        runtime,
        "SELECT status, attempts, new_games, total_games FROM sync_runs WHERE library_id = %s",
        library_id,
    )
    assert (status, attempts, new_games, total) == ("completed", 2, len(games), len(games))
    [resumed] = survivor.events("sync.started")
    assert resumed["resume_after"] >= at_kill  # it went on from the checkpoint, not page 1
    report(
        "SIGKILL worker group mid-paging (GOG, 1,500 products)",
        "resumed at its page elsewhere, exact rows, 1 run",
        f"resumed after page {resumed['resume_after']}, completed",
        len(stored),
        recovery_s,
    )
