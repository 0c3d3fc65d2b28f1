"""A GOG account's access token, refreshed when it is about to expire.

GOG's refresh tokens are single-use: a refresh spends the old one and answers a new
pair. So the refresh happens inside a transaction that holds the account's credentials
row locked (after the library's row, the lock order of `store.runs`): a second process
wanting a token for the same account waits, then finds the fresh one instead of spending
a refresh token already spent. The new pair is committed before its access token is
handed out. A process that dies between GOG's answer and that commit loses the new
refresh token: the next refresh is refused and the account must be linked again
(`relink_required`); nothing owned is touched (docs/behaviour.md).
"""

from __future__ import annotations

from typing import Any

from psycopg_pool import ConnectionPool

from ..errors import RelinkRequired, UnknownLibrary
from ..platforms.gog import GogAuth, is_fresh
from ..store import credentials, runs
from ..vault import Vault


def access_token(pool: ConnectionPool[Any], vault: Vault, auth: GogAuth, library_id: str) -> str:
    """A usable access token for the library's GOG account (RelinkRequired when GOG refuses
    the refresh or no tokens are stored)."""
    with pool.connection() as conn, conn.transaction():
        if not runs.lock_library(conn, library_id):
            raise UnknownLibrary(f"No library with id {library_id} exists.")
        sealed = credentials.load(conn, library_id, for_update=True)
        if sealed is None:
            raise RelinkRequired("No GOG tokens are stored for this library: link it again.")
        if is_fresh(sealed.access_expires_at):
            return vault.open(sealed.access_token)
        tokens = auth.refresh(vault.open(sealed.refresh_token))
        credentials.save(
            conn,
            library_id,
            vault.seal(tokens.refresh_token, tokens.access_token, tokens.expires_at),
        )
    return tokens.access_token
