"""Digests: what the differential sync compares to skip what has not changed.

One row per library (migration 0008): the digest of each slice of its games, and of the
whole answer its last completed sync read. A stored digest always describes rows
committed in the same transaction; see `platforms.owned_library` for what a slice is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from psycopg import Connection

_NUMBER_BYTES = 4
_DIGEST_BYTES = 16
_ENTRY_BYTES = _NUMBER_BYTES + _DIGEST_BYTES


@dataclass(frozen=True)
class StoredDigests:
    """A library's digests as last committed."""

    slices: dict[int, bytes] = field(default_factory=dict)
    answer: bytes | None = None  # the last completed sync's answer; None once a batch wrote


def stored_digests(conn: Connection[Any], library_id: str) -> StoredDigests:
    """The library's digests (none for a library never synced)."""
    row = conn.execute(
        "SELECT slices, answer FROM library_digests WHERE library_id = %s", (library_id,)
    ).fetchone()
    if row is None:
        return StoredDigests()
    packed, answer = bytes(row[0]), row[1]
    slices = {
        int.from_bytes(packed[at : at + _NUMBER_BYTES], "big"): packed[
            at + _NUMBER_BYTES : at + _ENTRY_BYTES
        ]
        for at in range(0, len(packed), _ENTRY_BYTES)
    }
    return StoredDigests(slices, bytes(answer) if answer is not None else None)


def save_digests(
    conn: Connection[Any],
    library_id: str,
    slices: Mapping[int, bytes],
    answer: bytes | None = None,
) -> None:
    """Replace the library's digests, in the transaction that wrote the rows they describe.

    `answer` only with the completion of a run: a batch written since makes it unknown.
    One row whatever the number of slices (no array parameter for a plan to search)."""
    packed = b"".join(
        number.to_bytes(_NUMBER_BYTES, "big") + slices[number] for number in sorted(slices)
    )
    conn.execute(
        "INSERT INTO library_digests (library_id, slices, answer) VALUES (%s, %s, %s)"
        " ON CONFLICT (library_id) DO UPDATE SET slices = excluded.slices, answer = excluded.answer",
        (library_id, packed, answer),
    )
