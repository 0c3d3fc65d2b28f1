"""Read-only reports over libraries and runs, for the operator's dashboard.

Every query here is an index range scan with a LIMIT, or a count over a partial index,
whatever the size of the tables (the plans on 100,000 libraries and 1,000,000 runs are
in docs/dashboard.md). History is paged by keyset, `(started_at, run_id)`, never by
OFFSET, and no query counts the whole history. Each filter combination is its own SQL
text, so a prepared statement's plan always fits the filters it runs with.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import Connection, sql
from psycopg.rows import dict_row

ACTIVE_SHOWN = 100  # per status: the page lists this many syncing and this many queued
RECENT_SHOWN = 10

_LIBRARY = "l.library_id::text, l.display_name, l.platform, l.platform_user_id"
_RUN = (
    "r.run_id::text, r.sync_type, r.status, r.started_at, r.finished_at, r.total_games,"
    " r.new_games, r.updated_games, r.removed_games, r.api_calls, r.attempts, r.error"
)

# Libraries in flight, through the in-flight index (0007): those syncing, then those
# queued, oldest first, each with its open run if it has one.
_ACTIVE = f"""
SELECT {_LIBRARY}, l.sync_status, l.total_games AS library_games, l.updated_at,
       r.sync_type, r.started_at, r.attempts, r.games_processed, r.message_id
FROM user_libraries AS l
LEFT JOIN sync_runs AS r ON r.library_id = l.library_id AND r.status = 'running'
WHERE l.sync_status = %(status)s
ORDER BY l.updated_at
LIMIT %(limit)s
"""

_IN_FLIGHT_COUNTS = """
SELECT sync_status, count(*) FROM user_libraries
WHERE sync_status IN ('queued', 'syncing') GROUP BY sync_status
"""

_RECENT = f"""
SELECT {_LIBRARY}, {_RUN}
FROM sync_runs AS r JOIN user_libraries AS l ON l.library_id = r.library_id
WHERE r.finished_at IS NOT NULL
ORDER BY r.finished_at DESC
LIMIT %(limit)s
"""

_SCHEDULE = """
SELECT
    (SELECT count(*) FROM user_libraries WHERE auto_sync AND next_sync_at <= now()),
    (SELECT count(*) FROM user_libraries
     WHERE auto_sync AND next_sync_at > now() AND next_sync_at <= now() + interval '1 hour'),
    (SELECT count(*) FROM user_libraries WHERE account_failures > 0),
    (SELECT min(next_sync_at) FROM user_libraries WHERE account_failures > 0 AND next_sync_at > now())
"""

# What history can be filtered by, and the column each filter compares.
_FILTER_COLUMNS = {
    "status": "r.status",
    "sync_type": "r.sync_type",
    "library_id": "r.library_id",
    "code": "(r.error->>'code')",
}
HISTORY_FILTERS = tuple(_FILTER_COLUMNS)


@dataclass(frozen=True)
class HistoryPage:
    """One page of runs, newest first; `older` is the cursor of the next page, if any."""

    runs: list[dict[str, Any]]
    older: tuple[datetime, str] | None


def active_syncs(conn: Connection[Any], limit: int = ACTIVE_SHOWN) -> list[dict[str, Any]]:
    """The libraries syncing, then those queued (at most `limit` of each), oldest first."""
    with conn.cursor(row_factory=dict_row) as cur:
        return [
            row
            for status in ("syncing", "queued")
            for row in cur.execute(_ACTIVE, {"status": status, "limit": limit}).fetchall()
        ]


def in_flight_counts(conn: Connection[Any]) -> dict[str, int]:
    """How many libraries are queued and syncing (all of them, not only those listed)."""
    counts = {"syncing": 0, "queued": 0}
    counts.update({status: n for status, n in conn.execute(_IN_FLIGHT_COUNTS)})
    return counts


def recent_runs(conn: Connection[Any], limit: int = RECENT_SHOWN) -> list[dict[str, Any]]:
    """The runs that finished last, newest first, with their library's name."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(_RECENT, {"limit": limit}).fetchall()


def history(
    conn: Connection[Any],
    *,
    limit: int,
    before: tuple[datetime, str] | None = None,
    **filters: str | None,
) -> HistoryPage:
    """Runs newest first matching every filter given (HISTORY_FILTERS), older than the
    cursor `before`."""
    query, params = history_query(limit=limit + 1, before=before, **filters)  # one more: older?
    with conn.cursor(row_factory=dict_row) as cur:
        runs = cur.execute(query, params).fetchall()
    older = None
    if len(runs) > limit:
        runs = runs[:limit]
        older = (runs[-1]["started_at"], runs[-1]["run_id"])
    return HistoryPage(runs, older)


def history_query(
    *, limit: int, before: tuple[datetime, str] | None = None, **filters: str | None
) -> tuple[sql.Composed, dict[str, Any]]:
    """The SQL and parameters of a history page (the bench explains it)."""
    where: list[sql.Composable] = [sql.SQL("TRUE")]
    params: dict[str, Any] = {"limit": limit}
    for name, value in filters.items():
        if value is not None:
            where.append(sql.SQL(_FILTER_COLUMNS[name] + " = {}").format(sql.Placeholder(name)))
            params[name] = value
    if before is not None:
        where.append(sql.SQL("(r.started_at, r.run_id) < (%(at)s, %(run)s::uuid)"))
        params.update(at=before[0], run=before[1])
    query = sql.SQL(
        "SELECT {library}, {run} FROM sync_runs AS r"
        " JOIN user_libraries AS l ON l.library_id = r.library_id"
        " WHERE {where} ORDER BY r.started_at DESC, r.run_id DESC LIMIT %(limit)s"
    ).format(library=sql.SQL(_LIBRARY), run=sql.SQL(_RUN), where=sql.SQL(" AND ").join(where))
    return query, params


def run_of_message(
    conn: Connection[Any], library_id: str, message_id: str | None
) -> tuple[str, int] | None:
    """(sync type, attempts) of the library's run that message opened, if it has one."""
    row = conn.execute(
        "SELECT sync_type, attempts FROM sync_runs WHERE library_id = %s"
        " AND message_id = %s ORDER BY started_at DESC LIMIT 1",
        (library_id, message_id),
    ).fetchone()
    return (str(row[0]), int(row[1])) if row is not None else None


def owned_games(conn: Connection[Any], library_id: str) -> int:
    """How many games the library owns now, counted on its rows (not its last run's total)."""
    row = conn.execute(
        "SELECT count(*) FROM library_games WHERE library_id = %s AND removed_at IS NULL",
        (library_id,),
    ).fetchone()
    return int(row[0]) if row else 0


def schedule_counts(conn: Connection[Any]) -> dict[str, Any]:
    """Auto-sync libraries due now and within the hour; accounts in back-off (private,
    invalid) and when the first of them is tried again."""
    row = conn.execute(_SCHEDULE).fetchone()
    assert row is not None
    due_now, due_next_hour, in_backoff, next_retry = row
    return {
        "due_now": due_now,
        "due_next_hour": due_next_hour,
        "in_backoff": in_backoff,
        "next_backoff_retry_at": next_retry,
    }
