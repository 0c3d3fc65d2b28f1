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


def set_queued(conn: Connection[Any], library_ids: list[str]) -> dict[str, int]:
    """Mark libraries queued; return each one's total_games (for the `queued` event)."""
    rows = conn.execute(
        "UPDATE user_libraries SET sync_status = 'queued', updated_at = now()"
        " WHERE library_id = ANY(%s::uuid[]) RETURNING library_id::text, total_games",
        (library_ids,),
    ).fetchall()
    return {str(library_id): int(total) for library_id, total in rows}
