"""`sync_runs` rows: one per attempt-to-completion, holding the resumable checkpoint.

A library has at most one open run (`status = 'running'`); every attempt resumes it.
Each attempt takes the run's fence (`lease_token`) when it opens it, and every write
transaction of that attempt starts with `fence()`: an attempt whose fence was taken over
(its lease lapsed and another worker resumed the run) cannot commit another batch.

Lock order: every transaction here locks the library's row before its run's row, as a
DELETE of the library does (it cascades from `user_libraries` to `sync_runs`), so the web
service can delete a library mid-sync without a deadlock; the sync then stands down.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from psycopg import Connection
from psycopg.rows import class_row, dict_row
from psycopg.types.json import Jsonb

from ..errors import LockLost, UnknownLibrary
from .next_sync import next_auto_sync

_RUN_COLUMNS = (
    "run_id::text, sync_type, started_at, resume_after, games_processed, new_games,"
    " updated_games, api_calls, attempts, batches"
)


_LOCK_LIBRARY = "SELECT 1 FROM user_libraries WHERE library_id = %s FOR KEY SHARE"


@dataclass(frozen=True)
class OpenRun:
    """The checkpoint of an open run, as committed."""

    run_id: str
    sync_type: str
    started_at: datetime
    resume_after: int | None  # every game with an app id <= this is written
    games_processed: int
    new_games: int
    updated_games: int
    api_calls: int
    attempts: int
    batches: int


@dataclass(frozen=True)
class RunTotals:
    """The counters a finished run records."""

    total_games: int = 0
    new_games: int = 0
    updated_games: int = 0
    removed_games: int = 0
    api_calls: int = 0


@dataclass(frozen=True)
class EndedRun:
    """How a run that has ended ended."""

    run_id: str
    status: str
    error: dict[str, Any] | None
    totals: RunTotals


def open_run(
    conn: Connection[Any], library_id: str, sync_type: str, token: str, message_id: str
) -> OpenRun:
    """Resume the library's open run under `token` for `message_id`, or start one; mark the
    library syncing.

    Taking the run over waits for a batch still committing under the previous fence, so
    the position read here includes it; a previous attempt frozen in the middle of a
    statement (a COPY waiting for its rows: not idle, so the server's idle timeout never
    ends it) has its session ended first. The caller holds the lease: that attempt lost it.
    """
    end_frozen_attempt(conn, library_id)
    with conn.transaction(), conn.cursor(row_factory=class_row(OpenRun)) as cur:
        if not lock_library(conn, library_id):
            raise UnknownLibrary(f"No library with id {library_id} exists.")
        # One statement resumes the open run or opens one (the partial unique index allows
        # one open run per library): no savepoint, and no race between two openers.
        run = cur.execute(
            f"INSERT INTO sync_runs (library_id, sync_type, status, lease_token, message_id)"
            f" VALUES (%s, %s, 'running', %s, %s)"
            f" ON CONFLICT (library_id) WHERE status = 'running' DO UPDATE"
            f" SET lease_token = excluded.lease_token, message_id = excluded.message_id,"
            f" attempts = sync_runs.attempts + 1, updated_at = now()"
            f" RETURNING {_RUN_COLUMNS}",
            (library_id, sync_type, token, message_id),
        ).fetchone()
        cur.execute(
            "UPDATE user_libraries SET sync_status = 'syncing', updated_at = now()"
            " WHERE library_id = %s",
            (library_id,),
        )
    assert run is not None
    return run


def attempt_session_name(token: str) -> str:
    """The `application_name` of an attempt's write transactions (see `fence`)."""
    return f"sync-worker {token}"


def end_frozen_attempt(conn: Connection[Any], library_id: str) -> None:
    """End the session of the library's previous attempt if it is still in a write (it
    holds the run's row; its lease has lapsed, so it could never commit)."""
    conn.execute(
        "SELECT pg_terminate_backend(a.pid) FROM pg_stat_activity AS a"
        " JOIN sync_runs AS r ON a.application_name = 'sync-worker ' || r.lease_token"
        " WHERE r.library_id = %s AND r.status = 'running' AND a.pid <> pg_backend_pid()",
        (library_id,),
    )


def ended_run_of(conn: Connection[Any], library_id: str, message_id: str) -> EndedRun | None:
    """The library's run that `message_id` saw to its end, if there is one: the message
    came back after its work was done."""
    row = conn.execute(
        "SELECT run_id::text, status, error, total_games, new_games, updated_games,"
        " removed_games, api_calls FROM sync_runs"
        " WHERE library_id = %s AND message_id = %s AND status <> 'running'"
        " ORDER BY started_at DESC LIMIT 1",
        (library_id, message_id),
    ).fetchone()
    if row is None:
        return None
    run_id, status, error, *totals = row
    return EndedRun(run_id, status, error, RunTotals(*totals))


def lock_library(conn: Connection[Any], library_id: str) -> bool:
    """Keep the library from being deleted until this transaction ends (other updates of its
    row go on); False when it is gone already. Taken first: see the lock order above."""
    return conn.execute(_LOCK_LIBRARY, (library_id,)).fetchone() is not None


def fence(conn: Connection[Any], library_id: str, run_id: str, token: str) -> None:
    """Lock the library, then the open run, for this transaction; raise LockLost unless
    `token` still owns the run (a deleted library's run is gone with it).

    Both statements go in one round trip (a pipeline runs them in order, so the lock
    order holds)."""
    with conn.pipeline():
        # Named for this attempt while it writes: a rescuer can end it if it freezes.
        conn.execute(
            "SELECT set_config('application_name', %s, true)", (attempt_session_name(token),)
        )
        library = conn.execute(_LOCK_LIBRARY, (library_id,))
        run = conn.execute(
            "SELECT 1 FROM sync_runs WHERE run_id = %s AND lease_token = %s AND status = 'running'"
            " FOR UPDATE",
            (run_id, token),
        )
    if library.fetchone() is None or run.fetchone() is None:
        raise LockLost()


def record_batch(
    conn: Connection[Any],
    run_id: str,
    *,
    resume_after: int,
    games_processed: int,
    new: int,
    updated: int,
    api_calls: int,
) -> None:
    """Advance the checkpoint, in the transaction that wrote the batch (after `fence`)."""
    conn.execute(
        "UPDATE sync_runs SET resume_after = %s, games_processed = %s, new_games = new_games + %s,"
        " updated_games = updated_games + %s, api_calls = api_calls + %s, batches = batches + 1,"
        " updated_at = now() WHERE run_id = %s",
        (resume_after, games_processed, new, updated, api_calls, run_id),
    )


def record_failed_attempt(
    conn: Connection[Any],
    library_id: str,
    run_id: str,
    error: dict[str, Any],
    api_calls: int,
    *,
    library_status: str = "failed",
) -> None:
    """An attempt failed but the run stays open for the retry (or the next sync) to resume;
    the library says `library_status` meanwhile (`queued` while our own outage is waited out)."""
    conn.execute(
        "UPDATE sync_runs SET api_calls = api_calls + %s, error = %s, updated_at = now()"
        " WHERE run_id = %s",
        (api_calls, Jsonb(error), run_id),
    )
    conn.execute(
        "UPDATE user_libraries SET sync_status = %s, sync_error = %s, last_sync_at = now(),"
        " updated_at = now() WHERE library_id = %s",
        (library_status, Jsonb(error), library_id),
    )


def record_pause(conn: Connection[Any], library_id: str, run_id: str, api_calls: int) -> None:
    """The attempt stepped back into the queue (budget, shutdown): the run waits, open."""
    conn.execute(
        "UPDATE sync_runs SET api_calls = api_calls + %s, updated_at = now() WHERE run_id = %s",
        (api_calls, run_id),
    )
    conn.execute(
        "UPDATE user_libraries SET sync_status = 'queued', updated_at = now() WHERE library_id = %s",
        (library_id,),
    )


def finish_run(
    conn: Connection[Any],
    library_id: str,
    run_id: str,
    status: str,
    *,
    total_games: int,
    removed_games: int = 0,
    api_calls: int = 0,
    error: dict[str, Any] | None = None,
) -> RunTotals:
    """Close the run with its outcome and record it on the library row; return its totals.

    `finished_at` is the clock's, not the transaction's start (`now()`), so the final
    statements of a sync (removals, stale digests) count in its recorded duration."""
    row = conn.execute(
        "UPDATE sync_runs SET status = %s, finished_at = clock_timestamp(), updated_at = now(), error = %s,"
        " total_games = %s, removed_games = %s, api_calls = api_calls + %s, lease_token = NULL"
        " WHERE run_id = %s RETURNING new_games, updated_games, api_calls",
        (status, Jsonb(error) if error else None, total_games, removed_games, api_calls, run_id),
    ).fetchone()
    assert row is not None
    _record_outcome(conn, library_id, status, error, total_games)
    new_games, updated_games, calls = row
    return RunTotals(total_games, new_games, updated_games, removed_games, calls)


def close_open_run(
    conn: Connection[Any], library_id: str, message_id: str, status: str, error: dict[str, Any]
) -> bool:
    """End the library's sync for a message that will not run again; True if a run was open.

    The caller holds the library's lease, so no live attempt competes; a stale one's
    fence fails once the run is closed.
    """
    if not lock_library(conn, library_id):
        return False
    row = conn.execute(
        "UPDATE sync_runs SET status = %s, finished_at = clock_timestamp(), updated_at = now(), error = %s,"
        " total_games = games_processed, lease_token = NULL, message_id = %s"
        " WHERE library_id = %s AND status = 'running' RETURNING run_id",
        (status, Jsonb(error), message_id, library_id),
    ).fetchone()
    _record_outcome(conn, library_id, status, error, None)
    return row is not None


def _record_outcome(
    conn: Connection[Any],
    library_id: str,
    status: str,
    error: dict[str, Any] | None,
    total_games: int | None,
) -> None:
    """The library row says how its sync ended, and when the scheduler should try next."""
    row = conn.execute(
        "SELECT account_failures, sync_interval FROM user_libraries WHERE library_id = %s"
        " FOR UPDATE",
        (library_id,),
    ).fetchone()
    if row is None:
        return
    now = datetime.now(UTC)  # one clock for the outcome and the schedule it implies
    next_sync_at, failures = next_auto_sync(status, (error or {}).get("code"), row[0], row[1], now)
    succeeded = status == "completed"
    conn.execute(
        """
        UPDATE user_libraries SET sync_status = %(status)s, sync_error = %(error)s,
            total_games = CASE WHEN %(succeeded)s THEN %(total)s ELSE total_games END,
            last_sync_at = %(now)s,
            last_success_at = CASE WHEN %(succeeded)s THEN %(now)s ELSE last_success_at END,
            next_sync_at = %(next_sync_at)s, account_failures = %(failures)s,
            updated_at = now()
        WHERE library_id = %(library_id)s
        """,
        {
            "status": status,
            "error": Jsonb(error) if error else None,
            "succeeded": succeeded,
            "total": total_games,
            "now": now,
            "next_sync_at": next_sync_at,
            "failures": failures,
            "library_id": library_id,
        },
    )


def history(conn: Connection[Any], library_id: str, limit: int) -> list[dict[str, Any]]:
    """The library's runs, newest first, JSON-ready (times ISO-8601, duration in seconds)."""
    with conn.cursor(row_factory=dict_row) as cur:
        runs = cur.execute(
            "SELECT run_id::text, sync_type, status, started_at, finished_at, total_games,"
            " new_games, updated_games, removed_games, api_calls, attempts, error"
            " FROM sync_runs WHERE library_id = %s ORDER BY started_at DESC LIMIT %s",
            (library_id, max(limit, 0)),
        ).fetchall()
    for run in runs:
        started, finished = run["started_at"], run["finished_at"]
        run["duration_s"] = (
            round((finished - started).total_seconds(), 3) if finished is not None else None
        )
        run["started_at"] = started.isoformat()
        run["finished_at"] = finished.isoformat() if finished is not None else None
    return runs
