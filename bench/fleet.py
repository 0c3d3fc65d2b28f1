"""A fleet: 1,000 libraries of realistic sizes through 2 worker processes, Steam rate-limited.

Sizes follow a log-normal spread (median about 150 games) with a long tail to 30,000.
The simulator (its own process) answers 429 above STEAM_LIMIT calls per WINDOW_S, and
the workers' global limiter is set to the same budget. Two passes: every library's
first sync, then the daily case, an auto-sync of every library where nothing changed.
Figures per pass: libraries/s, Steam calls per library sync (target 1.00), 429s
(target 0) and the budget used: calls made / calls our limiter allows over the pass
(target 95 %; it is set 10 % under Steam's limit, the margin that keeps 429s at 0).
"""

from __future__ import annotations

import math
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import requests

from sync_worker import client
from sync_worker.app import reset_broker
from sync_worker.runtime import Runtime
from sync_worker.simulator import steam_id_for
from sync_worker.store import libraries

from .common import bench_runtime, child_env, completed_runs, simulator_process, wait

LIBRARIES = 1_000
STEAM_LIMIT, WINDOW_S = 30, 2.0  # 15 calls/s: a pass takes about a minute
# Ours admits at Redis time, Steam counts on arrival: a call that waits for its thread
# after admission (two cores writing 30,000-game libraries) lands late, next to the
# next window's first calls. At the same window Steam answered 429s, and each one
# pauses every worker (STEAM_429_BACKOFF_S): configure a margin, as in production.
OUR_WINDOW_S = 2.2
PASS_TIMEOUT_S = 600
WORKER_ARGS = ["--processes", "2", "--threads", "4", "--queues", "high", "default"]


def fleet_sizes(count: int) -> list[int]:
    """Library sizes: log-normal around 150 games, a long tail, two at the 30,000 cap."""
    rng = random.Random(1000)
    sizes = [min(30_000, max(1, int(rng.lognormvariate(math.log(150), 1.2)))) for _ in range(count)]
    sizes[:2] = [30_000, 30_000]
    rng.shuffle(sizes)
    return sizes


def run_pass(runtime: Runtime, library_ids: list[str], sync_type: str) -> dict[str, float]:
    """Queue one sync per library, run 2 worker processes until all completed."""
    url = runtime.settings.steam_api_base_url
    requests.post(f"{url}/_sim/reset", timeout=5).raise_for_status()
    requests.post(
        f"{url}/_sim/rate-limit", json={"calls": STEAM_LIMIT, "window_s": WINDOW_S}, timeout=5
    ).raise_for_status()
    runtime.redis.flushdb()
    before = completed_runs(runtime)
    env = {
        **child_env(runtime),
        "STEAM_WEBAPI_CALLS_PER_WINDOW": str(STEAM_LIMIT),
        "STEAM_WEBAPI_WINDOW_SECONDS": str(OUR_WINDOW_S),
    }
    log = Path(tempfile.mkdtemp()) / "workers.log"
    with log.open("w") as out:
        workers = subprocess.Popen(
            [sys.executable, "-m", "dramatiq", "sync_worker.worker", *WORKER_ARGS],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            client.request_syncs(library_ids, sync_type=sync_type)
            wait(
                lambda: completed_runs(runtime) - before >= len(library_ids),
                PASS_TIMEOUT_S,
                f"the pass's syncs (worker log: {log})",
                poll_s=0.1,
            )
        finally:
            workers.terminate()
            workers.wait(timeout=60)
            reset_broker()
    with runtime.pool.connection() as conn:
        # From the first sync's start to the last one's end: the workers' boot is not counted.
        [(elapsed,)] = conn.execute(
            "SELECT extract(epoch FROM max(finished_at) - min(started_at))::float8 FROM"
            " (SELECT started_at, finished_at FROM sync_runs ORDER BY started_at DESC LIMIT %s) r",
            (len(library_ids),),
        ).fetchall()
    stats = requests.get(f"{url}/_sim/stats", timeout=5).json()
    calls = stats["calls"].get("GetOwnedGames", 0)
    # A sliding window admits at most its limit in any window, the first one included.
    allowed = STEAM_LIMIT * (elapsed / WINDOW_S + 1)
    ours_allowed = STEAM_LIMIT * (elapsed / OUR_WINDOW_S + 1)
    return {
        "seconds": elapsed,
        "libraries_per_s": len(library_ids) / elapsed,
        "calls_per_sync": calls / len(library_ids),
        "rejected_429": stats["rejected_429"],
        "busiest_window": stats["peak_window_calls"],
        "budget_used": stats["total"] / allowed,
        "our_budget_used": stats["total"] / ours_allowed,
    }


def main() -> dict[str, Any]:
    """Print both passes; return their figures."""
    sizes = fleet_sizes(LIBRARIES)
    with bench_runtime() as (base, _), simulator_process(base) as runtime:
        with runtime.pool.connection() as conn:
            ids = [
                libraries.register_library(conn, "steam", steam_id_for(size, seed=i))
                for i, size in enumerate(sizes)
            ]
        first = run_pass(runtime, ids, "manual")
        daily = run_pass(runtime, ids, "auto")
    print(
        f"fleet: {LIBRARIES:,} libraries ({sum(sizes):,} games, median"
        f" {statistics.median(sizes):.0f}, largest {max(sizes):,}), 2 worker processes x 4"
        f" threads, Steam at {STEAM_LIMIT} calls per {WINDOW_S:g} s, our limiter per"
        f" {OUR_WINDOW_S:g} s"
    )
    for name, figures in (("first syncs", first), ("daily, unchanged", daily)):
        print(
            f"  {name:<17} {figures['seconds']:6.1f} s  {figures['libraries_per_s']:5.1f}"
            f" libraries/s  calls/sync {figures['calls_per_sync']:.2f} (target 1.00)"
            f"  429s {figures['rejected_429']} (target 0)  budget used"
            f" {figures['our_budget_used']:.0%} (target >= 95 %; {figures['budget_used']:.0%}"
            " of Steam's)"
            f"  busiest window {figures['busiest_window']}/{STEAM_LIMIT}"
        )
    return {"sizes": {"total": sum(sizes)}, "first": first, "daily": daily}


if __name__ == "__main__":
    main()
