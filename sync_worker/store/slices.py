"""Slice digests: what the differential sync compares to skip a library's unchanged games.

A stored digest always describes rows committed in the same transaction; see
`platforms.owned_library` for what a slice is and migration 0005 for the table.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from psycopg import Connection


def stored_digests(conn: Connection[Any], library_id: str) -> dict[int, bytes]:
    """The library's slice digests as last written."""
    rows = conn.execute(
        "SELECT slice, digest FROM library_slices WHERE library_id = %s", (library_id,)
    ).fetchall()
    return {int(number): bytes(digest) for number, digest in rows}


def save_digests(
    conn: Connection[Any], library_id: str, digests: Sequence[tuple[int, bytes]]
) -> None:
    """Record the digests of slices just written, in the transaction that wrote their rows."""
    if not digests:
        return
    conn.execute(
        "INSERT INTO library_slices (library_id, slice, digest)"
        " SELECT %s, * FROM unnest(%s::int[], %s::bytea[])"
        " ON CONFLICT (library_id, slice) DO UPDATE SET digest = excluded.digest",
        (library_id, [number for number, _ in digests], [digest for _, digest in digests]),
    )


def forget_other_slices(conn: Connection[Any], library_id: str, kept: Collection[int]) -> None:
    """Drop digests of slices the library no longer has games in (with the removals).

    The slices to drop are found here, so the DELETE names only them: a library's worth of
    slice numbers in one array parameter is searched row by row under a generic plan
    (which PostgreSQL may choose by itself for a prepared statement).
    """
    stored = conn.execute(
        "SELECT slice FROM library_slices WHERE library_id = %s", (library_id,)
    ).fetchall()
    gone = sorted({number for (number,) in stored} - set(kept))
    if gone:  # an index condition on the primary key, whatever the plan
        conn.execute(
            "DELETE FROM library_slices WHERE library_id = %s AND slice = ANY(%s::int[])",
            (library_id, gone),
        )
