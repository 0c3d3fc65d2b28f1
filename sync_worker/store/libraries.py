"""Library rows: registering users' platform accounts and reading them back."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import Connection
from psycopg.rows import class_row

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


def library_key(library_id: object) -> uuid.UUID:
    """The library id as a UUID; raises UnknownLibrary when it cannot be one."""
    try:
        return uuid.UUID(str(library_id))
    except ValueError:
        raise UnknownLibrary(f"{str(library_id)[:40]!r} is not a library id.") from None


def get_library(conn: Connection[Any], library_id: str) -> Library:
    """The library with that id; raises UnknownLibrary when there is none (or the id is not a uuid)."""
    key = library_key(library_id)
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


def set_queued(conn: Connection[Any], requests: list[tuple[str, str]]) -> dict[str, int]:
    """Mark libraries queued for the given (library id, message id) requests, unless that
    message's run has begun already; return each marked library's total_games."""
    if not requests:
        return {}
    library_ids, message_ids = zip(*requests, strict=True)
    rows = conn.execute(
        "UPDATE user_libraries AS l SET sync_status = 'queued', updated_at = now()"
        " FROM unnest(%s::uuid[], %s::text[]) AS r (library_id, message_id)"
        " WHERE l.library_id = r.library_id AND NOT EXISTS ("
        "   SELECT 1 FROM sync_runs AS s"
        "   WHERE s.library_id = r.library_id AND s.message_id = r.message_id)"
        " RETURNING l.library_id::text, l.total_games",
        (list(library_ids), list(message_ids)),
    ).fetchall()
    return {str(library_id): int(total) for library_id, total in rows}


def relinked(conn: Connection[Any], library_id: str) -> None:
    """The account was linked again: a library waiting for that (`relink_required`) is
    due at the next scheduler tick, its back-off forgotten; its games and history stay."""
    conn.execute(
        "UPDATE user_libraries SET sync_status = 'never_synced', sync_error = NULL,"
        " account_failures = 0, next_sync_at = '-infinity', updated_at = now()"
        " WHERE library_id = %s AND sync_status = 'relink_required'",
        (library_id,),
    )
