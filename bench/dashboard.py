"""The dashboard's queries on 100,000 libraries and 1,000,000 runs: plans and times.

The fleet: 100,000 libraries (20 syncing with an open run, 500 queued, 1,000 private in
back-off), 1,000,000 finished runs over 30 days (completed, failed with an error code,
private, cancelled; manual, scheduled, auto), one library owning 5,000 games, and a
100,000-game catalog half enriched. Each query runs 12 times on one pooled connection,
as a long-lived dashboard runs it (psycopg prepares it from the 6th execution, and
PostgreSQL may then switch to a generic plan): the figure is the median of the last 6.
`overview` is the whole live page's refresh (PostgreSQL, Redis and the health check).
Baseline in the same run: the same queries with the dashboard's indexes (0009) dropped.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from psycopg import Connection

from sync_worker.dashboard.reads import Reads
from sync_worker.runtime import Runtime
from sync_worker.store import catalog, libraries, reports, runs

from .common import bench_runtime

LIBRARIES = 100_000
RUNS = 1_000_000
REPEAT, KEPT = 12, 6

_FLEET_SQL = """
INSERT INTO user_libraries (platform, platform_user_id, display_name, sync_status,
                            total_games, last_success_at, next_sync_at, account_failures)
SELECT 'steam', (76561198000000000 + g)::text, 'Player ' || g,
       CASE WHEN g <= 20 THEN 'syncing' WHEN g <= 520 THEN 'queued'
            WHEN g <= 1520 THEN 'private' ELSE 'completed' END,
       (g % 3000), now() - random() * interval '1 day',
       now() + random() * interval '1 day' - interval '1 hour',
       CASE WHEN g BETWEEN 521 AND 1520 THEN 2 ELSE 0 END
FROM generate_series(1, %(libraries)s) AS g;

INSERT INTO sync_runs (library_id, sync_type, status, started_at, finished_at, total_games,
                       new_games, api_calls, error)
SELECT l.library_id, (ARRAY['manual', 'scheduled', 'auto'])[1 + (g % 3)],
       s.status, s.at, s.at + interval '2 seconds', 100, 1, 1,
       CASE s.status
           WHEN 'failed' THEN jsonb_build_object('code', 'steam_unavailable', 'message', 'Steam answered 503.')
           WHEN 'private' THEN jsonb_build_object('code', 'private_profile', 'message', 'The profile is private.')
           WHEN 'cancelled' THEN jsonb_build_object('code', 'cancelled', 'message', 'Cancelled.')
       END
FROM generate_series(1, %(runs)s) AS g
JOIN user_libraries AS l ON l.platform_user_id = (76561198000000000 + 1 + (g % %(libraries)s))::text
CROSS JOIN LATERAL (
    SELECT CASE WHEN g % 100 < 90 THEN 'completed' WHEN g % 100 < 95 THEN 'failed'
                WHEN g % 100 < 98 THEN 'private' ELSE 'cancelled' END AS status,
           now() - interval '30 days' * random() AS at
) AS s;

INSERT INTO sync_runs (library_id, sync_type, status, started_at, attempts, message_id)
SELECT library_id, 'manual', 'running', now() - interval '1 minute', 1, 'm-' || library_id
FROM user_libraries WHERE sync_status = 'syncing';

INSERT INTO games (platform, platform_game_id, title, enriched_at, store_status)
SELECT 'steam', g::text, 'Game ' || g,
       CASE WHEN g % 2 = 0 THEN now() - random() * interval '60 days' END,
       CASE WHEN g % 2 = 0 THEN (CASE WHEN g % 10 = 0 THEN 'unavailable' ELSE 'available' END) END
FROM generate_series(1, 100000) AS g;

INSERT INTO library_games (library_id, platform, platform_game_id, raw_data)
SELECT l.library_id, 'steam', g::text, '{}'
FROM generate_series(1, 5000) AS g,
     (SELECT library_id FROM user_libraries WHERE platform_user_id = '76561198000050000') AS l;

ANALYZE;
"""

DASHBOARD_INDEXES = {
    "sync_runs_started_idx": "sync_runs (started_at DESC, run_id DESC)",
    "sync_runs_status_started_idx": "sync_runs (status, started_at DESC, run_id DESC)",
    "sync_runs_error_code_idx": "sync_runs ((error->>'code'), started_at DESC, run_id DESC)"
    " WHERE error IS NOT NULL",
    "sync_runs_finished_idx": "sync_runs (finished_at DESC) WHERE finished_at IS NOT NULL",
    "user_libraries_failing_idx": "user_libraries (next_sync_at) WHERE account_failures > 0",
}


def queries(conn: Connection[Any]) -> dict[str, tuple[Callable[[], Any], Any, dict[str, Any]]]:
    """{name: (the reports call, its SQL, its parameters)} for each query of the page."""
    library_id = libraries.find_library(conn, "steam", "76561198000050000")
    assert library_id is not None
    row = conn.execute(
        "SELECT started_at, run_id::text FROM sync_runs ORDER BY started_at DESC, run_id DESC"
        " OFFSET 5000 LIMIT 1"
    ).fetchone()
    assert row is not None
    deep = (row[0], row[1])

    def page(**kw: Any) -> tuple[Callable[[], Any], Any, dict[str, Any]]:
        query, params = reports.history_query(limit=51, **kw)
        return (lambda: reports.history(conn, limit=50, **kw)), query, params

    def rows(query: Any, params: dict[str, Any]) -> tuple[Callable[[], Any], Any, dict[str, Any]]:
        return (lambda: conn.execute(query, params).fetchall()), query, params

    by_id = {"id": library_id}
    ages = {"max_age": timedelta(days=30), "claim_ttl": timedelta(hours=1), "platform": "steam"}
    return {
        "active: syncing": rows(reports._ACTIVE, {"status": "syncing", "limit": 100}),
        "active: queued": rows(reports._ACTIVE, {"status": "queued", "limit": 100}),
        "active: counts": rows(reports._IN_FLIGHT_COUNTS, {}),
        "recent runs": rows(reports._RECENT, {"limit": 10}),
        "schedule counts": rows(reports._SCHEDULE, {}),
        "history, first page": page(),
        "history, 100 pages deep": page(before=deep),
        "history, status=failed": page(status="failed"),
        "history, code=private_profile": page(code="private_profile"),
        "history, one library": page(library_id=library_id),
        "history, type=auto": page(sync_type="auto"),
        "library: row": (
            lambda: libraries.get_library(conn, library_id),
            "SELECT * FROM user_libraries WHERE library_id = %(id)s",
            by_id,
        ),
        "library: owned games (5,000)": (
            lambda: reports.owned_games(conn, library_id),
            "SELECT count(*) FROM library_games WHERE library_id = %(id)s AND removed_at IS NULL",
            by_id,
        ),
        "library: its runs": (
            lambda: runs.history(conn, library_id, 50),
            "SELECT * FROM sync_runs WHERE library_id = %(id)s ORDER BY started_at DESC LIMIT 50",
            by_id,
        ),
        "search by SteamID64": (
            lambda: libraries.find_library(conn, "steam", "76561198000050000"),
            "SELECT library_id FROM user_libraries"
            " WHERE platform = 'steam' AND platform_user_id = '76561198000050000'",
            {},
        ),
        "enrichment counts (cached 30 s)": rows(catalog._COUNTS, ages),
    }


def timed(call: Callable[[], Any]) -> float:
    """Median ms of the last KEPT of REPEAT calls (prepared by then, as in a long-lived process)."""
    times = []
    for _ in range(REPEAT):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times[-KEPT:])


def plan(conn: Connection[Any], query: Any, params: dict[str, Any]) -> str:
    """EXPLAIN ANALYZE of one query, indented for the docs."""
    if query is None:
        return ""
    text = query.as_string(conn) if hasattr(query, "as_string") else query
    rows = conn.execute("EXPLAIN (ANALYZE, COSTS OFF) " + text, params).fetchall()
    return "\n".join(f"      {r[0]}" for r in rows if not r[0].startswith("Planning"))


def measure(runtime: Runtime, with_plans: bool) -> dict[str, float]:
    """Each query's time on one pooled connection (and its plan, printed)."""
    figures = {}
    with runtime.pool.connection() as conn:
        for name, (call, query, params) in queries(conn).items():
            figures[name] = round(timed(call), 2)
            if with_plans:
                print(f"  {name}: {figures[name]} ms\n{plan(conn, query, params)}")
            conn.rollback()
    return figures


def main() -> dict[str, Any]:
    """Seed the fleet, print every query's plan and time, with and without the indexes."""
    with bench_runtime() as (runtime, _simulator):
        print(f"dashboard: {LIBRARIES:,} libraries, {RUNS:,} runs (seeding...)", flush=True)
        started = time.perf_counter()
        with runtime.pool.connection() as conn:
            conn.execute(
                _FLEET_SQL.replace("%(libraries)s", str(LIBRARIES)).replace("%(runs)s", str(RUNS))
            )
            conn.commit()
        print(f"  seeded in {time.perf_counter() - started:.0f} s")
        indexed = measure(runtime, with_plans=True)
        reads = Reads(runtime)
        overview_ms = round(timed(reads.overview), 1)
        reads.close()
        print(f"  whole overview (PostgreSQL + Redis + health): {overview_ms} ms")

        with runtime.pool.connection() as conn:
            for index in DASHBOARD_INDEXES:
                conn.execute(f"DROP INDEX {index}")
            conn.commit()
        baseline = measure(runtime, with_plans=False)
        with runtime.pool.connection() as conn:
            for index, definition in DASHBOARD_INDEXES.items():
                conn.execute(f"CREATE INDEX {index} ON {definition}")
            conn.commit()

        print(f"\n  {'query':<34} {'indexed ms':>11} {'without 0009':>13}")
        for name, ms in indexed.items():
            print(f"  {name:<34} {ms:>11} {baseline[name]:>13}")
        return {"indexed_ms": indexed, "without_indexes_ms": baseline, "overview_ms": overview_ms}


if __name__ == "__main__":
    main()
