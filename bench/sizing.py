"""Sizing: memory and PostgreSQL connections of one `dramatiq` command, as the Dockerfile
runs it (2 processes x 4 threads), idle and with every thread syncing a 30,000-game
library. The baseline is the same command idle. `python -m bench.sizing`.

The figures feed docs/deploy.md's sizing guide (WORKER_PROCESSES x WORKER_THREADS per
dyno memory; DB_POOL_MAX_SIZE x processes x dynos against PostgreSQL's connection limit).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from sync_worker import client
from sync_worker.app import reset_broker
from sync_worker.runtime import Runtime
from sync_worker.simulator import steam_id_for

from .common import bench_runtime, child_env, completed_runs, simulator_process, wait

PROCESSES, THREADS = 2, 4
BIG = 30_000


def group_rss_mb(main: psutil.Process) -> float:
    """Resident memory of a command and all its processes (main, workers, ops server)."""
    total = 0
    for process in [main, *main.children(recursive=True)]:
        try:
            total += process.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total / 2**20


def connections(runtime: Runtime) -> int:
    """Connections the measured command holds (its processes set PGAPPNAME=worker)."""
    with runtime.pool.connection() as conn:
        [(count,)] = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'worker'"
        ).fetchall()
    return int(count)


def measure(runtime: Runtime) -> dict[str, Any]:
    """Start the command, sample it idle, then while PROCESSES x THREADS syncs run."""
    env = {**child_env(runtime), "PGAPPNAME": "worker", "METRICS_PORT": "0", "LOG_LEVEL": "INFO"}
    log = Path(tempfile.mkdtemp()) / "workers.log"
    libraries = [
        client.register_steam_library(steam_id_for(BIG, seed=s)) for s in range(PROCESSES * THREADS)
    ]
    with log.open("w") as out:
        command = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dramatiq",
                "sync_worker.worker",
                "--queues",
                "high",
                "--processes",
                str(PROCESSES),
                "--threads",
                str(THREADS),
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    main = psutil.Process(command.pid)
    try:
        wait(lambda: log.read_text().count("ready for action") >= PROCESSES, 60, "boot")
        time.sleep(2)
        idle = {"rss_mb": group_rss_mb(main), "db_connections": connections(runtime)}

        peak = {"rss_mb": 0.0, "db_connections": 0}
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                peak["rss_mb"] = max(peak["rss_mb"], group_rss_mb(main))
                peak["db_connections"] = max(peak["db_connections"], connections(runtime))
                time.sleep(0.05)

        sampler = threading.Thread(target=sample)
        sampler.start()
        before = completed_runs(runtime)
        started = time.monotonic()
        client.request_syncs(libraries)
        wait(lambda: completed_runs(runtime) - before >= len(libraries), 600, f"syncs ({log})")
        busy_s = time.monotonic() - started
        stop.set()
        sampler.join()
    finally:
        command.terminate()
        command.wait(timeout=60)
        reset_broker()
    return {"idle": idle, "busy": peak, "busy_seconds": busy_s}


def main() -> dict[str, Any]:
    print(f"== sizing: one dramatiq command, {PROCESSES} processes x {THREADS} threads ==")
    with bench_runtime() as (base, _), simulator_process(base) as runtime:
        figures = measure(runtime)
    idle, busy = figures["idle"], figures["busy"]
    print(
        f"  idle (baseline)        {idle['rss_mb']:7.1f} MB   {idle['db_connections']:3d} connections"
    )
    print(
        f"  {PROCESSES * THREADS} x {BIG:,}-game syncs  {busy['rss_mb']:7.1f} MB   "
        f"{busy['db_connections']:3d} connections (peak; {figures['busy_seconds']:.1f} s)"
    )
    per_thread = (busy["rss_mb"] - idle["rss_mb"]) / (PROCESSES * THREADS)
    print(f"  per busy thread        {per_thread:7.1f} MB above idle")
    figures["per_busy_thread_mb"] = per_thread
    return figures


if __name__ == "__main__":
    main()
