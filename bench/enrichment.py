"""Store enrichment: store calls per distinct app, and a manual sync beside a busy `low` queue.

Processes as the Procfile runs them: `worker_high` (queue high) and `worker` (queues
default and low), one process each, against two simulators in their own processes (one
for the Web API, one for the store, so the simulators do not slow each other down).
1. Two libraries sharing 1,000 of their 1,100 apps, synced at once: store calls per
   distinct app once enrichment settles (target exactly 1.00).
2. A 30,000-game manual sync while `worker` enriches 60,000 apps, beside the baseline in
   the same run: the same kind of sync with nobody serving `low` (after a warm-up sync).
"""

from __future__ import annotations

import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import requests

from sync_worker import client
from sync_worker.broker import reset_broker
from sync_worker.runtime import Runtime
from sync_worker.simulator import steam_id_for
from sync_worker.store import libraries
from sync_worker.store.catalog import enrichment_counts

from .common import BENCH_KEY, bench_runtime, child_env

ENV = {"STEAM_STORE_CALLS_PER_WINDOW": "1000000", "STEAM_STORE_WINDOW_SECONDS": "60"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", *args], env=env, stdout=out, stderr=subprocess.STDOUT
        )


def wait(predicate, timeout_s: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise SystemExit(f"timed out waiting for {what}")


def answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).ok
    except requests.ConnectionError:
        return False


def completed(runtime: Runtime, library_id: str) -> bool:
    with runtime.pool.connection() as conn:
        row = conn.execute(
            "SELECT 1 FROM sync_runs WHERE library_id = %s AND status = 'completed'", (library_id,)
        ).fetchone()
    return row is not None


def start_worker(
    env: dict[str, str], logs: Path, name: str, queues: list[str]
) -> subprocess.Popen[bytes]:
    """A Procfile process, one worker process of two threads; returns once it is ready."""
    log = logs / f"{name}.log"
    process = start(
        [
            "dramatiq",
            "sync_worker.worker",
            "--processes",
            "1",
            "--threads",
            "2",
            "--queues",
            *queues,
        ],
        env,
        log,
    )
    wait(lambda: "ready for action" in log.read_text(), 60, name)
    return process


def store_calls(stats_url: str) -> int:
    return int(requests.get(stats_url, timeout=5).json()["calls"].get("appdetails", 0))


def pair_apps(runtime: Runtime, library_ids: list[str]) -> set[str]:
    with runtime.pool.connection() as conn:
        rows = conn.execute(
            "SELECT DISTINCT platform_game_id FROM library_games WHERE library_id = ANY(%s::uuid[])",
            (library_ids,),
        ).fetchall()
    return {row[0] for row in rows}


def counts(runtime: Runtime) -> dict[str, int]:
    with runtime.pool.connection() as conn:
        return enrichment_counts(conn, "steam", timedelta(days=30), timedelta(days=1))


def register(runtime: Runtime, steam_id: str) -> str:
    with runtime.pool.connection() as conn:
        return libraries.register_library(conn, "steam", steam_id)


def timed_sync(runtime: Runtime, steam_id: str) -> float:
    library_id = register(runtime, steam_id)
    started = time.monotonic()
    client.request_sync(library_id)
    wait(lambda: completed(runtime, library_id), 120, "the manual sync")
    return time.monotonic() - started


def main() -> None:
    """Print the enrichment figures."""
    logs = Path(tempfile.mkdtemp())
    web_port, store_port = free_port(), free_port()
    with bench_runtime() as (runtime, _in_process_simulator):
        base = child_env(runtime)
        sims = [
            start(
                ["sync_worker.cli", "simulator", "--port", str(port), "--api-key", BENCH_KEY],
                base,
                logs / f"sim{port}.log",
            )
            for port in (web_port, store_port)
        ]
        env = {
            **base,
            **ENV,
            "STEAM_API_BASE_URL": f"http://127.0.0.1:{web_port}",
            "STEAM_STORE_BASE_URL": f"http://127.0.0.1:{store_port}",
            "LOG_LEVEL": "INFO",
        }
        store_stats = f"http://127.0.0.1:{store_port}/_sim/stats"
        workers: list[subprocess.Popen[bytes]] = []
        reset_broker()
        try:
            wait(lambda: answers(store_stats), 10, "the simulators")
            workers.append(start_worker(env, logs, "worker_high", ["high"]))
            low = start_worker(env, logs, "worker", ["default", "low"])
            workers.append(low)
            runtime.settings = runtime.settings.model_copy(
                update={"steam_api_base_url": env["STEAM_API_BASE_URL"]}
            )
            # 1. Two libraries sharing most apps.
            pair = [register(runtime, steam_id_for(n, seed=11)) for n in (1_000, 1_100)]
            for library_id in pair:
                client.request_sync(library_id)
            wait(lambda: all(completed(runtime, lib) for lib in pair), 120, "the pair's syncs")
            wait(
                lambda: (c := counts(runtime))["pending"] == 0 and c["not_queued"] == 0,
                300,
                "the pair's enrichment",
            )
            calls = store_calls(store_stats)
            distinct = len(pair_apps(runtime, pair))

            # 2. Manual syncs, alternately with nobody serving `low` (their enrichment
            #    queues up) and with `worker` enriching the backlog meanwhile; each starts
            #    once the previous one has queued its enrichment, after a warm-up sync.
            high_log = logs / "worker_high.log"
            queued = 2  # the pair's

            def sync_and_settle(seed: int) -> float:
                nonlocal queued
                seconds = timed_sync(runtime, steam_id_for(30_000, seed=seed))
                queued += 1
                wait(lambda: high_log.read_text().count("enrich.queued") >= queued, 60, "queueing")
                return seconds

            low.terminate()
            low.wait(timeout=30)
            sync_and_settle(20)
            idle, busy, enriched_meanwhile = [], [], []
            for round_ in range(2):
                idle.append(sync_and_settle(21 + 2 * round_))
                low = start_worker(env, logs, f"worker-{round_}", ["default", "low"])
                workers.append(low)
                before = counts(runtime)["enriched"]
                busy.append(sync_and_settle(22 + 2 * round_))
                enriched_meanwhile.append(counts(runtime)["enriched"] - before)
                low.terminate()
                low.wait(timeout=30)
            idle_s, busy_s = statistics.median(idle), statistics.median(busy)
        finally:
            for process in workers + sims:
                process.terminate()
                process.wait(timeout=30)
            reset_broker()
    print("enrichment: worker_high (high) and worker (default, low), one process each")
    print(
        f"  two libraries sharing 1,000 of 1,100 apps: {calls} store calls for {distinct}"
        f" distinct apps = {calls / distinct:.2f} per app"
    )
    print(
        f"  30,000-game manual sync while low enriches    {busy_s:6.2f} s   median of"
        f" {', '.join(f'{b:.2f}' for b in busy)}; {sum(enriched_meanwhile)} apps enriched meanwhile"
    )
    print(
        f"  baseline: the same sync with low idle         {idle_s:6.2f} s   median of"
        f" {', '.join(f'{i:.2f}' for i in idle)}; ratio {busy_s / idle_s:.2f}"
    )


if __name__ == "__main__":
    main()
