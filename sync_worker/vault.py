"""Sealing linked accounts' tokens for the database: Fernet under CREDENTIALS_KEY.

CREDENTIALS_KEY holds one or more Fernet keys, comma-separated: the first seals, every
one opens (MultiFernet), so a key is rotated by putting the new one first, running
`sync-worker credentials rotate-key` (which re-seals every row with it), then dropping
the old one. In production the key is required: without it nothing handles GOG tokens
(`configuration_error`, exit 3). Outside production the embedded default generates a key
once and keeps it in SYNC_WORKER_HOME/credentials.key (readable by its owner only).
"""

from __future__ import annotations

import contextlib
import os
from datetime import datetime
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from psycopg_pool import ConnectionPool

from .errors import ConfigurationError, RelinkRequired
from .settings import Settings
from .store import credentials, runs
from .store.credentials import SealedTokens

LOCAL_KEY_FILE = "credentials.key"


class Vault:
    """Seals and opens tokens with the configured keys."""

    def __init__(self, keys: list[str]) -> None:
        try:
            self._fernet = MultiFernet([Fernet(key.encode()) for key in keys])
        except ValueError:
            raise ConfigurationError(
                "CREDENTIALS_KEY holds a key that is not a Fernet key"
                " (32 url-safe base64-encoded bytes: `sync-worker credentials new-key`)."
            ) from None

    @classmethod
    def from_settings(cls, settings: Settings) -> Vault:
        """The vault of CREDENTIALS_KEY; outside production a local key when it is unset."""
        keys = settings.credentials_keys
        if keys:
            return cls(keys)
        if settings.is_production:
            raise ConfigurationError(
                "CREDENTIALS_KEY must be set in production to handle GOG accounts' tokens."
            )
        return cls([_local_key(settings)])

    def seal(self, refresh_token: str, access_token: str, expires_at: datetime) -> SealedTokens:
        """The tokens encrypted with the first key."""
        return SealedTokens(
            self._fernet.encrypt(refresh_token.encode()),
            self._fernet.encrypt(access_token.encode()),
            expires_at,
        )

    def open(self, sealed: bytes) -> str:
        """A token in clear. A token no configured key opens (its key was dropped before a
        rotation) cannot be used: the account must be linked again."""
        try:
            return self._fernet.decrypt(sealed).decode()
        except InvalidToken:
            raise RelinkRequired(
                "The stored GOG tokens cannot be decrypted with CREDENTIALS_KEY (a key dropped"
                " before `credentials rotate-key`?): link the account again."
            ) from None

    def reseal(self, sealed: bytes) -> bytes:
        """The same token sealed with the first key (a rotation)."""
        try:
            return self._fernet.rotate(sealed)
        except InvalidToken:
            raise RelinkRequired(
                "A stored token opens with none of CREDENTIALS_KEY's keys."
            ) from None


def reseal_all(pool: ConnectionPool[Any], vault: Vault) -> int:
    """Re-seal every stored token with the first key (`credentials rotate-key`); return
    how many accounts. One short transaction per account, locking its library first."""
    with pool.connection() as conn:
        accounts = list(credentials.library_ids(conn))
    done = 0
    for library_id in accounts:
        with pool.connection() as conn, conn.transaction():
            if not runs.lock_library(conn, library_id):
                continue  # deleted meanwhile
            sealed = credentials.load(conn, library_id, for_update=True)
            if sealed is None:
                continue
            credentials.save(
                conn,
                library_id,
                credentials.SealedTokens(
                    vault.reseal(sealed.refresh_token),
                    vault.reseal(sealed.access_token),
                    sealed.access_expires_at,
                ),
            )
            done += 1
    return done


def new_key() -> str:
    """A fresh Fernet key (what CREDENTIALS_KEY holds)."""
    return Fernet.generate_key().decode()


def _local_key(settings: Settings) -> str:
    """The development key, made once: a second process reads the first one's."""
    path = settings.sync_worker_home / LOCAL_KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f".{LOCAL_KEY_FILE}.{os.getpid()}")
        draft.write_text(new_key())
        draft.chmod(0o600)
        with contextlib.suppress(FileExistsError):  # whole, or not at all: no half-read key
            os.link(draft, path)
        draft.unlink()
    return path.read_text().strip()
