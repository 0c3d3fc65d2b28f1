"""200 libraries, 2 worker processes, a Steam that answers 429 above 30 calls per 2 s.

Figures with our global limiter at 27 per 2 s, and the baseline in the same run: the
same workload with the window effectively off (only the bucket-wide 429 backoff left).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from sync_worker import client
from sync_worker.broker import reset_broker
from sync_worker.runtime import Runtime
from sync_worker.simulator import SimulatorServer, steam_id_for
from sync_worker.store import libraries

from .common import bench_runtime, child_env

LIBRARIES = 200
STEAM_LIMIT, OUR_LIMIT, WINDOW_S = 30, 27, 2


def run(runtime: Runtime, simulator: SimulatorServer, our_limit: int) -> dict[str, float]:
    """Sync every library once through two worker processes; return the figures."""
    requests.post(f"{simulator.url}/_sim/reset", timeout=5)
    requests.post(
        f"{simulator.url}/_sim/rate-limit",
        json={"calls": STEAM_LIMIT, "window_s": WINDOW_S},
        timeout=5,
    )
    runtime.redis.flushdb()
    with runtime.pool.connection() as conn:
        conn.execute("TRUNCATE user_libraries, games, library_games, sync_runs CASCADE")
        ids = [
            libraries.register_library(conn, "steam", steam_id_for(5 + i % 20, seed=i))
            for i in range(LIBRARIES)
        ]
    env = {
        **child_env(runtime),
        "STEAM_WEBAPI_CALLS_PER_WINDOW": str(our_limit),
        "STEAM_WEBAPI_WINDOW_SECONDS": str(WINDOW_S),
        "STEAM_429_BACKOFF_S": "1",
        "RATE_LIMIT_MAX_WAIT_S": "5",
    }
    log = Path(tempfile.mkdtemp()) / "workers.log"
    with log.open("w") as out:
        workers = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dramatiq",
                "sync_worker.worker",
                "--processes",
                "2",
                "--threads",
                "2",
                "--queues",
                "high",
                "default",
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            started = time.monotonic()
            for library_id in ids:
                client.request_sync(library_id)
            while True:
                with runtime.pool.connection() as conn:
                    row = conn.execute(
                        "SELECT count(*) FROM sync_runs WHERE status = 'completed'"
                    ).fetchone()
                if row is not None and row[0] == LIBRARIES:
                    break
                if time.monotonic() - started > 300:
                    raise SystemExit("timed out")
                time.sleep(0.1)
            elapsed = time.monotonic() - started
        finally:
            workers.terminate()
            workers.wait(timeout=30)
            reset_broker()
    stats = requests.get(f"{simulator.url}/_sim/stats", timeout=5).json()
    return {
        "seconds": elapsed,
        "rate": LIBRARIES / elapsed,
        "peak": stats["peak_window_calls"],
        "rejected": stats["rejected_429"],
        "calls": stats["total"],
    }


def main() -> None:
    """Print both runs."""
    with bench_runtime() as (runtime, simulator):
        ours = run(runtime, simulator, OUR_LIMIT)
        baseline = run(runtime, simulator, 100_000)
    print(
        f"rate limit: {LIBRARIES} libraries, 2 worker processes, Steam answers 429 above {STEAM_LIMIT}/{WINDOW_S}s"
    )
    for name, r in (
        ("global limiter at 27/2s", ours),
        ("baseline: no window, 429 backoff only", baseline),
    ):
        print(
            f"  {name:<40} {r['seconds']:5.1f} s  {r['rate']:5.1f} syncs/s  Steam calls {r['calls']:4.0f}"
            f"  429s {r['rejected']:4.0f}  busiest window {r['peak']:3.0f}/{STEAM_LIMIT}"
        )


if __name__ == "__main__":
    main()
