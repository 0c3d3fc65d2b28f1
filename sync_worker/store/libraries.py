"""Library and sync-run rows: registering libraries and recording how each sync went."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import Connection
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from ..errors import UnknownLibrary


@dataclass(frozen=True)
class Library:
    """A user's linked platform account."""

    library_id: uuid.UUID
    platform: str
    platform_user_id: str
    display_name: str | None
    sync_status: str
    sync_error: dict[str, Any] | None
    total_games: int
    last_sync_at: datetime | None
    last_success_at: datetime | None


@dataclass(frozen=True)
class RunTotals:
    """The counters a finished (or failed) run records."""

    total_games: int = 0
    new_games: int = 0
    updated_games: int = 0
    removed_games: int = 0
    api_calls: int = 0


def register_library(
    conn: Connection[Any], platform: str, platform_user_id: str, display_name: str | None = None
) -> str:
    """Create the library for this account, or return the existing one's id."""
    row = conn.execute(
        """
        INSERT INTO user_libraries (platform, platform_user_id, display_name)
        VALUES (%s, %s, %s)
        ON CONFLICT (platform, platform_user_id) DO UPDATE
        SET display_name = COALESCE(excluded.display_name, user_libraries.display_name)
        RETURNING library_id
        """,
        (platform, platform_user_id, display_name),
    ).fetchone()
    assert row is not None  # RETURNING always yields the row
    return str(row[0])


def get_library(conn: Connection[Any], library_id: str) -> Library:
    """The library with that id; raises UnknownLibrary when there is none (or the id is not a uuid)."""
    try:
        key = uuid.UUID(str(library_id))
    except ValueError:
        raise UnknownLibrary(f"{str(library_id)[:40]!r} is not a library id.") from None
    with conn.cursor(row_factory=class_row(Library)) as cur:
        library = cur.execute(
            "SELECT library_id, platform, platform_user_id, display_name, sync_status, sync_error,"
            " total_games, last_sync_at, last_success_at FROM user_libraries WHERE library_id = %s",
            (key,),
        ).fetchone()
    if library is None:
        raise UnknownLibrary(f"No library with id {key} exists.")
    return library


def find_library(conn: Connection[Any], platform: str, platform_user_id: str) -> str | None:
    """The id of the library for that account, if registered."""
    row = conn.execute(
        "SELECT library_id FROM user_libraries WHERE platform = %s AND platform_user_id = %s",
        (platform, platform_user_id),
    ).fetchone()
    return str(row[0]) if row else None


def set_sync_status(conn: Connection[Any], library_id: str, status: str) -> None:
    """Record that a sync is queued or running (outcomes go through finish_run)."""
    conn.execute(
        "UPDATE user_libraries SET sync_status = %s, updated_at = now() WHERE library_id = %s",
        (status, library_id),
    )


def record_failure(conn: Connection[Any], library_id: str, error: dict[str, Any]) -> None:
    """Mark the library failed with an error (a job given up on outside a run's bookkeeping)."""
    conn.execute(
        "UPDATE user_libraries SET sync_status = 'failed', sync_error = %s, last_sync_at = now(),"
        " updated_at = now() WHERE library_id = %s",
        (Jsonb(error), library_id),
    )


def start_run(conn: Connection[Any], library_id: str, sync_type: str) -> str:
    """Open a sync_runs row for a new attempt-to-completion."""
    row = conn.execute(
        "INSERT INTO sync_runs (library_id, sync_type, status) VALUES (%s, %s, 'running') RETURNING run_id",
        (library_id, sync_type),
    ).fetchone()
    assert row is not None
    return str(row[0])


def resume_run(conn: Connection[Any], run_id: str) -> None:
    """Mark a checkpointed run as running again, counting the new attempt."""
    conn.execute(
        "UPDATE sync_runs SET status = 'running', finished_at = NULL, error = NULL,"
        " attempts = attempts + 1 WHERE run_id = %s",
        (run_id,),
    )


def finish_run(
    conn: Connection[Any],
    library_id: str,
    run_id: str,
    status: str,
    totals: RunTotals,
    error: dict[str, Any] | None = None,
) -> None:
    """Record a run's outcome on both its sync_runs row and its library row."""
    conn.execute(
        """
        UPDATE sync_runs SET status = %(status)s, finished_at = now(), error = %(error)s,
            total_games = %(total)s, new_games = %(new)s, updated_games = %(updated)s,
            removed_games = %(removed)s, api_calls = %(calls)s
        WHERE run_id = %(run_id)s
        """,
        {
            "status": status,
            "error": Jsonb(error) if error else None,
            "total": totals.total_games,
            "new": totals.new_games,
            "updated": totals.updated_games,
            "removed": totals.removed_games,
            "calls": totals.api_calls,
            "run_id": run_id,
        },
    )
    succeeded = status == "completed"
    conn.execute(
        """
        UPDATE user_libraries SET sync_status = %(status)s, sync_error = %(error)s,
            total_games = CASE WHEN %(succeeded)s THEN %(total)s ELSE total_games END,
            last_sync_at = now(),
            last_success_at = CASE WHEN %(succeeded)s THEN now() ELSE last_success_at END,
            updated_at = now()
        WHERE library_id = %(library_id)s
        """,
        {
            "status": status,
            "error": Jsonb(error) if error else None,
            "succeeded": succeeded,
            "total": totals.total_games,
            "library_id": library_id,
        },
    )
