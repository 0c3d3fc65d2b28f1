"""Store enrichment: store calls per distinct app, and a manual sync beside a busy `low` queue.

Processes as the Procfile runs them: `worker_high` (queue high) and `worker` (queues
default and low), one process each, against two simulators in their own processes (one
for the Web API, one for the store, so the simulators do not slow each other down).
1. Two libraries sharing 1,000 of their 1,100 apps, synced at once: store calls per
   distinct app once enrichment settles (target exactly 1.00).
2. A 30,000-game manual sync while `worker` enriches the backlog of the syncs before it,
   at Steam's store budget and unlimited, beside the baseline in the same run: the same
   kind of sync with nobody serving `low`. Queue wait and run time are reported apart:
   queueing is what a busy `low` must never cause; on this 2-core machine an unlimited
   enrichment also competes for CPU, which separate dynos would not.
"""

from __future__ import annotations

import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import requests

from sync_worker import client
from sync_worker.app import reset_broker
from sync_worker.runtime import Runtime
from sync_worker.simulator import steam_id_for
from sync_worker.store import libraries
from sync_worker.store.catalog import enrichment_counts

from .common import BENCH_KEY, bench_runtime, child_env, wait

ROUNDS = 3  # rounds of the three conditions, after a warm-up round
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


@dataclass(frozen=True)
class Timing:
    """A manual sync: how long it waited for a worker, then how long it ran."""

    wait_s: float
    run_s: float


def timed_sync(runtime: Runtime, steam_id: str) -> Timing:
    library_id = register(runtime, steam_id)
    requested = time.monotonic()
    client.request_sync(library_id)
    wait(lambda: started(runtime, library_id), 60, "the manual sync to start")
    began = time.monotonic()
    wait(lambda: completed(runtime, library_id), 120, "the manual sync")
    return Timing(began - requested, time.monotonic() - began)


def started(runtime: Runtime, library_id: str) -> bool:
    with runtime.pool.connection() as conn:
        row = conn.execute(
            "SELECT 1 FROM sync_runs WHERE library_id = %s", (library_id,)
        ).fetchone()
    return row is not None


def main() -> dict[str, Any]:
    """Print the enrichment figures; return them."""
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

            # 2. Manual syncs with nobody serving `low` (their enrichment queues up), and
            #    with `worker` enriching that backlog at Steam's store budget or unlimited;
            #    in turns, each once the previous sync has queued its enrichment.
            high_log = logs / "worker_high.log"
            queued = 2  # the pair's
            low.terminate()
            low.wait(timeout=30)
            budgets = {"Steam's (200 per 5 min)": "200", "unlimited": "1000000"}
            seconds: dict[str, list[Timing]] = {"idle": [], **{b: [] for b in budgets}}
            enriched: dict[str, int] = dict.fromkeys(budgets, 0)
            seeds = iter(range(20, 100))
            for round_ in range(ROUNDS + 1):
                for condition in ("idle", *budgets):
                    if condition != "idle":
                        store_env = {
                            **env,
                            "STEAM_STORE_CALLS_PER_WINDOW": budgets[condition],
                            "STEAM_STORE_WINDOW_SECONDS": "300",
                        }
                        low = start_worker(
                            store_env, logs, f"worker-{round_}-{condition[:5]}", ["default", "low"]
                        )
                        workers.append(low)
                        before = counts(runtime)["enriched"]
                    timing = timed_sync(runtime, steam_id_for(30_000, seed=next(seeds)))
                    queued += 1
                    wait(
                        lambda n=queued: high_log.read_text().count("enrich.queued") >= n,
                        60,
                        "queueing",
                    )
                    if round_:  # round 0 warms up
                        seconds[condition].append(timing)
                    if condition != "idle":
                        enriched[condition] += counts(runtime)["enriched"] - before
                        low.terminate()
                        low.wait(timeout=30)
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
    print(f"  30,000-game manual sync, median of {ROUNDS} (queue wait + run):")
    idle_run = statistics.median(t.run_s for t in seconds["idle"])
    figures: dict[str, Any] = {"store_calls_per_app": calls / distinct}
    for condition, timings in seconds.items():
        wait_s = statistics.median(t.wait_s for t in timings)
        run_s = statistics.median(t.run_s for t in timings)
        label = (
            "baseline: nobody serving low"
            if condition == "idle"
            else f"low enriching, {condition} store budget"
        )
        extra = "" if condition == "idle" else f"; {enriched[condition]} apps enriched meanwhile"
        print(
            f"    {label:<48} wait {wait_s:5.2f} s  run {run_s:5.2f} s  ratio {run_s / idle_run:.2f}{extra}"
        )
        figures[condition] = {"wait_s": wait_s, "run_s": run_s}
    return figures


if __name__ == "__main__":
    main()
