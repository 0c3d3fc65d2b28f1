"""`platform_credentials` rows: a linked account's tokens, stored sealed (see `vault`).

The store never sees a token in clear: it keeps and returns what the vault sealed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import Connection


@dataclass(frozen=True)
class SealedTokens:
    """A token pair as stored: each token encrypted, the access token's expiry in clear."""

    refresh_token: bytes
    access_token: bytes
    access_expires_at: datetime


def save(conn: Connection[Any], library_id: str, sealed: SealedTokens) -> None:
    """Keep the library's tokens, replacing any before them."""
    conn.execute(
        "INSERT INTO platform_credentials (library_id, refresh_token, access_token,"
        " access_expires_at) VALUES (%s, %s, %s, %s) ON CONFLICT (library_id) DO UPDATE"
        " SET refresh_token = excluded.refresh_token, access_token = excluded.access_token,"
        " access_expires_at = excluded.access_expires_at, updated_at = now()",
        (library_id, sealed.refresh_token, sealed.access_token, sealed.access_expires_at),
    )


def load(
    conn: Connection[Any], library_id: str, *, for_update: bool = False
) -> SealedTokens | None:
    """The library's tokens; `for_update` locks the row until the transaction ends (the
    caller has locked the library first)."""
    row = conn.execute(
        "SELECT refresh_token, access_token, access_expires_at FROM platform_credentials"
        " WHERE library_id = %s" + (" FOR UPDATE" if for_update else ""),
        (library_id,),
    ).fetchone()
    return SealedTokens(bytes(row[0]), bytes(row[1]), row[2]) if row is not None else None


def expire_access(conn: Connection[Any], library_id: str) -> None:
    """The platform refused the stored access token: the next use refreshes it first."""
    conn.execute(
        "UPDATE platform_credentials SET access_expires_at = now() - interval '1 day',"
        " updated_at = now()"
        " WHERE library_id = %s",
        (library_id,),
    )


def library_ids(conn: Connection[Any]) -> Iterator[str]:
    """Every library with stored tokens, in id order."""
    for (library_id,) in conn.execute(
        "SELECT library_id::text FROM platform_credentials ORDER BY library_id"
    ).fetchall():
        yield library_id
