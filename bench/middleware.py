"""What our middleware costs per message: real sync messages of unchanged 1-game libraries.

The same actor (`sync_library`) processes MESSAGES messages on one worker thread, once
on our broker with our middleware (log context, de-duplication slots, progress events,
cancellation checks, deferrals, our retries and shutdown handling) and once on a plain
Dramatiq RedisBroker with Dramatiq's default middleware (the baseline). Each variant
runs in its own process, ROUNDS times alternately; medians.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from typing import Any

from sync_worker.enrich.queueing import queue_for_library
from sync_worker.platforms.steam import SteamClient
from sync_worker.simulator import steam_id_for
from sync_worker.store import libraries
from sync_worker.sync.engine import SyncEngine

from .common import bench_runtime, child_env, completed_runs, simulator_process, wait

MESSAGES = 300
ROUNDS = 3
CHILD_TIMEOUT_S = 300


def _child(variant: str) -> dict[str, float]:
    """Process every library's message on one worker thread; seconds from start to done."""
    import dramatiq
    from dramatiq.brokers.redis import RedisBroker

    from sync_worker import worker  # boots our broker, as `dramatiq sync_worker.worker` does
    from sync_worker.actors import sync_library
    from sync_worker.runtime import get_runtime

    runtime = get_runtime()
    broker: dramatiq.Broker = worker.broker
    actor = broker.get_actor("sync_library")
    if variant == "plain":
        broker = RedisBroker(client=runtime.redis, namespace="bench-plain")
        actor = dramatiq.actor(broker=broker, actor_name="sync_library", queue_name="high")(
            sync_library
        )
    with runtime.pool.connection() as conn:
        ids = [str(row[0]) for row in conn.execute("SELECT library_id FROM user_libraries")]
    before = completed_runs(runtime)
    for library_id in ids:
        actor.send(library_id)
    consumer = dramatiq.Worker(broker, worker_threads=1, queues={"high"})
    started = time.perf_counter()
    consumer.start()
    wait(
        lambda: completed_runs(runtime) - before >= len(ids),
        CHILD_TIMEOUT_S,
        f"{variant}'s {len(ids)} syncs",
        poll_s=0.01,
    )
    elapsed = time.perf_counter() - started
    consumer.stop()
    return {"seconds": elapsed, "messages": len(ids)}


def run_variant(env: dict[str, str], variant: str) -> float:
    result = subprocess.run(
        [sys.executable, "-m", "bench.middleware", variant],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0:
        raise SystemExit(f"{variant} exited {result.returncode}: {result.stderr[-2000:]}")
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    return float(figures["seconds"]) / float(figures["messages"])


def main() -> dict[str, Any]:
    """Print per-message times of both variants; return them."""
    with bench_runtime() as (base, _), simulator_process(base) as runtime:
        s = runtime.settings
        engine = SyncEngine(s, runtime.redis, runtime.pool, lambda: SteamClient(s))
        with runtime.pool.connection() as conn:
            ids = [
                libraries.register_library(conn, "steam", steam_id_for(1, seed=i))
                for i in range(MESSAGES)
            ]
        for library_id in ids:  # first syncs, and their apps claimed for enrichment
            assert engine.sync(library_id).status == "completed"
            queue_for_library(runtime, library_id)
        # Budget never in the way: both variants still ask the limiter for every call.
        env = {
            **child_env(runtime),
            "STEAM_WEBAPI_CALLS_PER_WINDOW": "1000000",
            "STEAM_DAILY_LIMIT": "100000000",
        }
        times: dict[str, list[float]] = {"ours": [], "plain": []}
        for _ in range(ROUNDS):
            for variant in ("plain", "ours"):
                runtime.redis.flushdb()
                times[variant].append(run_variant(env, variant))
    ours, plain = (statistics.median(times[v]) * 1000 for v in ("ours", "plain"))
    print(
        f"middleware: {MESSAGES} sync messages of unchanged 1-game libraries, one worker"
        f" thread, medians of {ROUNDS}"
    )
    print(f"  our broker + middleware            {ours:6.2f} ms/message")
    print(
        f"  baseline: Dramatiq's defaults      {plain:6.2f} ms/message"
        f"   overhead {ours - plain:+.2f} ms ({ours / plain:.2f}x)"
    )
    return {"ours_ms": ours, "plain_ms": plain}


if __name__ == "__main__":
    if len(sys.argv) == 2:
        print(json.dumps(_child(sys.argv[1])))
    else:
        main()
