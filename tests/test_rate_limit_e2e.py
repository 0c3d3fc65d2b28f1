"""Two worker processes, 200 libraries, a simulator that answers 429 above N calls per window.

With our global limit set below N, Steam (the simulator) never has to say 429.
"""

from __future__ import annotations

import time

import requests

from sync_worker import client
from sync_worker.app import reset_broker
from sync_worker.simulator import steam_id_for
from tests.conftest import fetch_all, wait_for
from tests.workers import WorkerGroup

LIBRARIES = 200
STEAM_LIMIT, OUR_LIMIT, WINDOW_S = 30, 27, 2


def test_two_workers_stay_under_steams_limit_and_finish(
    runtime, register, subprocess_env, simulator, sim, tmp_path
):
    """Zero 429s, every library completed, and calls per window close to our limit."""
    requests.post(
        f"{simulator.url}/_sim/rate-limit",
        json={"calls": STEAM_LIMIT, "window_s": WINDOW_S},
        timeout=5,
    )
    env = {
        **subprocess_env,
        "STEAM_WEBAPI_CALLS_PER_WINDOW": str(OUR_LIMIT),
        "STEAM_WEBAPI_WINDOW_SECONDS": str(WINDOW_S),
        "RATE_LIMIT_MAX_WAIT_S": "5",
        "LOG_LEVEL": "INFO",  # the harness waits for "ready for action"
    }
    library_ids = [register(steam_id_for(5 + i % 20, seed=i)) for i in range(LIBRARIES)]
    reset_broker()
    group = WorkerGroup(env, tmp_path / "workers.log", processes=2).wait_ready()
    try:
        started = time.monotonic()
        for library_id in library_ids:
            client.request_sync(library_id)
        wait_for(
            lambda: (
                fetch_all(runtime, "SELECT count(*) FROM sync_runs WHERE status = 'completed'")[0][
                    0
                ]
                == LIBRARIES
            ),
            180,
            "all libraries to complete",
        )
        elapsed = time.monotonic() - started
    finally:
        group.stop()
        group.kill()
        reset_broker()

    stats = sim.stats()
    print(
        f"\n{LIBRARIES} libraries, 2 worker processes: {elapsed:.1f} s, {LIBRARIES / elapsed:.1f} syncs/s; "
        f"Steam limit {STEAM_LIMIT}/{WINDOW_S}s, ours {OUR_LIMIT}/{WINDOW_S}s; "
        f"busiest window {stats['peak_window_calls']} calls; 429s {stats['rejected_429']}"
    )
    assert stats["rejected_429"] == 0
    assert stats["calls"]["GetOwnedGames"] == LIBRARIES
    assert OUR_LIMIT * 0.8 <= stats["peak_window_calls"] <= STEAM_LIMIT
    assert fetch_all(
        runtime, "SELECT count(*) FROM user_libraries WHERE sync_status = 'completed'"
    ) == [(LIBRARIES,)]
