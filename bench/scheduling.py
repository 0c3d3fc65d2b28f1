"""The auto-sync tick on 100,000 libraries: the due query's plan and time, and a whole tick.

The fleet: 100,000 daily auto-syncs whose last successes are spread over the past day
(about 1 in 288 falls due every 5-minute tick; two ticks' worth are overdue), 1,000
never synced, 1,000 private accounts in back-off. Figures: the due query (EXPLAIN
ANALYZE, median of 5) and a whole tick queueing its budget (100,000 Web API calls a
day = 347 per 5-minute tick), median of 3 ticks in a process whose broker is built.
Baseline in the same run: the same query with the partial index dropped.
"""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime

from sync_worker.app import get_broker
from sync_worker.runtime import Runtime
from sync_worker.schedule.scheduler import _CLAIM_DUE, run_tick

from .common import bench_runtime

FLEET = 100_000
SAMPLES = 5

_FLEET_SQL = """
INSERT INTO user_libraries (platform, platform_user_id, sync_status, last_success_at, next_sync_at)
SELECT 'steam', (76561198000000000 + g)::text, 'completed', at, at + interval '1 day'
FROM (SELECT g, now() - interval '10 minutes' - random() * interval '1 day' AS at
      FROM generate_series(1, %(fleet)s) AS g) AS fleet;
INSERT INTO user_libraries (platform, platform_user_id)
SELECT 'steam', (76561198100000000 + g)::text FROM generate_series(1, 1000) AS g;
INSERT INTO user_libraries (platform, platform_user_id, sync_status, account_failures, next_sync_at)
SELECT 'steam', (76561198200000000 + g)::text, 'private', 2, now() + random() * interval '3 days'
FROM generate_series(1, 1000) AS g;
ANALYZE user_libraries;
"""


def due_query(runtime: Runtime, budget: int) -> tuple[float, str]:
    """(median ms, plan) of the tick's claim, each run rolled back."""
    times: list[float] = []
    plan = ""
    for _ in range(SAMPLES):
        with runtime.pool.connection() as conn:
            conn.execute("BEGIN")
            rows = conn.execute(
                "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + _CLAIM_DUE,
                {"now": datetime.now(UTC), "budget": budget, "claimed_until": datetime.now(UTC)},
            ).fetchall()
            conn.execute("ROLLBACK")
        plan = "\n".join(f"      {r[0]}" for r in rows)
        times.append(float(rows[-1][0].split()[-2]))  # "Execution Time: N ms"
    return statistics.median(times), plan


def main() -> dict[str, float]:
    """Print the tick's figures and the due query's plan; return the figures."""
    with bench_runtime() as (runtime, _simulator):
        runtime.settings = runtime.settings.model_copy(
            update={
                "steam_webapi_calls_per_window": 1_000,  # the window allows more than the day
                "steam_webapi_window_seconds": 300.0,
                "steam_daily_limit": 100_000,
                "auto_sync_budget_share": 1.0,
            }
        )
        with runtime.pool.connection() as conn:
            conn.execute(_FLEET_SQL.replace("%(fleet)s", str(FLEET)))
            conn.commit()
        indexed_ms, plan = due_query(runtime, 347)
        with runtime.pool.connection() as conn:  # the baseline, on the same due rows
            conn.execute("DROP INDEX user_libraries_due_idx")
            conn.commit()
        scan_ms, scan_plan = due_query(runtime, 347)
        with runtime.pool.connection() as conn:
            conn.execute(
                "CREATE INDEX user_libraries_due_idx ON user_libraries (next_sync_at) WHERE auto_sync"
            )
            conn.commit()
        get_broker()  # a worker's broker exists before its first tick
        tick_times, queued = [], []
        for n in range(3):
            started = time.perf_counter()
            tick = run_tick(runtime, datetime.now(UTC), f"bench-{n}")
            tick_times.append(time.perf_counter() - started)
            queued.append(tick.queued)
        tick_s = statistics.median(tick_times)

    print(
        f"scheduler: {FLEET + 2_000:,} libraries, AUTO_SYNC_CRON */5, 100,000 Web API calls a day"
    )
    print(
        f"  due query (claim {tick.budget} libraries)           {indexed_ms:7.2f} ms   plan below"
    )
    print(
        f"  baseline: same query without the partial index  {scan_ms:7.2f} ms   ({scan_ms / indexed_ms:.0f}x)"
    )
    print(
        f"  whole tick: claim + queue the due syncs     {tick_s * 1000:7.0f} ms   (median of 3 ticks"
        f" queueing {', '.join(map(str, queued))}; one every {tick.spread_s:.2f} s ="
        f" {60 / tick.spread_s:.0f} per minute)"
    )
    print("    plan with the index:\n" + plan)
    print("    baseline plan:\n" + scan_plan)
    return {"due_query_ms": indexed_ms, "baseline_scan_ms": scan_ms, "tick_ms": tick_s * 1000}


if __name__ == "__main__":
    main()
