"""An inline `sync-worker sync` stopped with Ctrl-C (or SIGTERM): one line, exit 130, and the
next run resumes with counts exact (they were committed with the rows)."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from sync_worker.simulator import steam_id_for
from tests.conftest import assert_no_secret, cli, fetch_all, wait_for
from tests.reliability.conftest import compare_with_simulator, report

GAMES = 30_000


def committed(runtime, steam_id: str) -> int:
    rows = fetch_all(
        runtime,
        "SELECT r.games_processed FROM sync_runs r JOIN user_libraries l USING (library_id)"
        " WHERE l.platform_user_id = %s AND r.status = 'running'",
        steam_id,
    )
    return int(rows[0][0]) if rows else 0


@contextlib.contextmanager
def held_run(runtime, steam_id: str) -> Iterator[None]:
    """Hold the open run's row lock, so the sync's next batch waits for it: an interrupt
    sent meanwhile always finds the sync mid-way, however fast the machine (a sync that
    finished its last 20,000 games before a late signal once exited 0 here)."""
    with runtime.pool.connection() as conn, conn.transaction():
        conn.execute(
            "SELECT 1 FROM sync_runs r JOIN user_libraries l USING (library_id)"
            " WHERE l.platform_user_id = %s AND r.status = 'running' FOR UPDATE OF r",
            (steam_id,),
        )
        yield


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_inline_sync_resumes_with_exact_counts(runtime, sim, subprocess_env, sig):
    """Interrupted at 10,000+ of 30,000 games, rerun: new_games is exactly 30,000."""
    steam_id = steam_id_for(GAMES, seed=161 + int(sig))
    env = {**subprocess_env, "SYNC_BATCH_SIZE": "1000"}
    process = subprocess.Popen(
        [sys.executable, "-m", "sync_worker.cli", "sync", "--steam-id", steam_id, "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(lambda: committed(runtime, steam_id) >= 10_000, 60, "10,000 committed games")
    with held_run(runtime, steam_id):  # the next batch waits: the signal lands mid-sync
        process.send_signal(sig)
        time.sleep(0.5)
    stdout, stderr = process.communicate(timeout=30)
    assert_no_secret(stdout + stderr, "the interrupted CLI's output")

    assert process.returncode == 130, stderr[-2000:]
    assert stderr.strip().splitlines()[-1].startswith("sync-worker: interrupted: ")
    summary = json.loads(stdout)
    assert summary["error"]["code"] == "interrupted"
    library_id = summary["library_id"]
    [(status, error)] = fetch_all(
        runtime,
        "SELECT sync_status, sync_error FROM user_libraries WHERE library_id = %s",
        library_id,
    )
    assert (status, error["code"]) == ("failed", "interrupted")
    stored = fetch_all(
        runtime, "SELECT count(*) FROM library_games WHERE library_id = %s", library_id
    )[0][0]
    assert committed(runtime, steam_id) == stored  # the checkpoint is exactly what was written

    rerun = cli(env, "sync", "--steam-id", steam_id, "--json")
    assert rerun.returncode == 0, rerun.stderr
    again = json.loads(rerun.stdout)
    assert (again["new_games"], again["total_games"], again["updated_games"]) == (GAMES, GAMES, 0)
    assert fetch_all(
        runtime,
        "SELECT status, attempts, new_games FROM sync_runs WHERE library_id = %s",
        library_id,
    ) == [("completed", 2, GAMES)]
    truth = compare_with_simulator(runtime, library_id, steam_id, sim)
    assert truth.mismatches == [] and truth.rows_checked == GAMES
    report(
        f"inline sync interrupted ({sig.name}) at {stored}",
        f"exit 130; rerun new_games = {GAMES}",
        f"exit 130; rerun new_games = {again['new_games']}",
        truth.rows_checked,
        None,
    )
