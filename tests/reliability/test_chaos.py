"""Chaos: two worker groups, one SIGKILLed every few seconds for about a minute, while 40
libraries sync. Afterwards every request ended in exactly one completed run, every row
matches the simulator, and no lease, request slot, cancellation or message is left."""

from __future__ import annotations

import random
import signal
import time

from sync_worker import client, keys
from sync_worker.app import reset_broker
from sync_worker.simulator import steam_id_for
from tests.conftest import fetch_all, wait_for
from tests.reliability.conftest import compare_with_simulator, report
from tests.workers import dead_letters, idle

LIBRARIES = 40
CHAOS_S = 60.0


def test_libraries_sync_exactly_once_through_a_minute_of_sigkills(
    runtime, register, sim, subprocess_env, workers
):
    rng = random.Random(1207)
    steam_ids = [steam_id_for(rng.randint(2_000, 14_000), seed=300 + i) for i in range(LIBRARIES)]
    library_ids = [register(steam_id) for steam_id in steam_ids]
    # One thread each, batches of 100: slow enough that every kill lands mid-sync.
    groups = [workers(subprocess_env, f"chaos-{name}", threads=1).wait_ready() for name in "ab"]
    reset_broker()
    for library_id in library_ids:
        client.request_sync(library_id)

    def completed() -> int:
        return int(
            fetch_all(
                runtime,
                "SELECT count(*) FROM user_libraries WHERE library_id = ANY(%s::uuid[])"
                " AND sync_status = 'completed'",
                library_ids,
            )[0][0]
        )

    kills, started = 0, time.monotonic()
    last_kill_at = started
    while time.monotonic() - started < CHAOS_S and completed() < LIBRARIES:
        time.sleep(rng.uniform(3, 6))
        victim = kills % 2
        last_kill_at = groups[victim].signal(signal.SIGKILL)
        groups[victim].wait()
        kills += 1
        groups[victim] = workers(subprocess_env, f"chaos-{kills}", threads=1).wait_ready()
    chaos_s = time.monotonic() - started
    wait_for(lambda: completed() == LIBRARIES, 180, "every library to complete")
    recovery_s = time.monotonic() - last_kill_at  # from the last kill to the last completion
    wait_for(lambda: idle(runtime), 60, "the queues to drain")

    runs = fetch_all(
        runtime,
        "SELECT library_id::text, status FROM sync_runs WHERE library_id = ANY(%s::uuid[])",
        library_ids,
    )
    assert sorted(runs) == sorted((library_id, "completed") for library_id in library_ids)
    rows = 0
    for library_id, steam_id in zip(library_ids, steam_ids, strict=True):
        truth = compare_with_simulator(runtime, library_id, steam_id, sim)
        assert truth.mismatches == [], (library_id, truth.mismatches)
        rows += truth.rows_checked
    for pattern in (keys.lock_key("*"), keys.pending_key("*"), keys.cancel_key("*")):
        assert list(runtime.redis.scan_iter(pattern)) == [], pattern
    assert dead_letters(runtime) == 0 and dead_letters(runtime, "default") == 0
    report(
        f"{LIBRARIES} libraries, a worker group SIGKILLed {kills}x in {chaos_s:.0f} s",
        "1 completed run each, rows exact, no key left",
        f"{len(runs)} runs, all completed, nothing left",
        rows,
        recovery_s,
    )
