"""Enriching a chunk of apps: skip those already done, fetch the rest one by one.

Plain synchronous Python (no Dramatiq). Each app is committed on its own, so a chunk
cut short (a restart, a rate-limit deferral, a transient error) resumes where it
stopped: its message comes back with the same ids and the done ones are skipped.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import timedelta

import structlog
from psycopg_pool import ConnectionPool

from ..errors import SteamBadRequest, SteamResponseTooLarge, WorkerStopping
from ..platforms.steam_store import SteamStore
from ..store import catalog

log = structlog.get_logger(__name__)

# An app the store refuses to describe (a malformed id, a giant page) is recorded as
# without a store page: it is looked at again after the refresh age, not retried now.
_APP_PROBLEMS = (SteamBadRequest, SteamResponseTooLarge)


@dataclass(frozen=True)
class ChunkResult:
    """What one chunk did."""

    enriched: int
    unavailable: int
    skipped: int  # already had fresh details
    store_calls: int


def enrich_apps(
    pool: ConnectionPool,
    store: SteamStore,
    platform: str,
    app_ids: list[str],
    max_age: timedelta,
    *,
    stopping: threading.Event | None = None,
) -> ChunkResult:
    """Fetch and store details for the apps of `app_ids` that still need them."""
    with pool.connection() as conn:
        todo = catalog.needing_details(conn, platform, app_ids, max_age)
    enriched = unavailable = 0
    for app_id in (a for a in app_ids if a in todo):
        if stopping is not None and stopping.is_set():
            raise WorkerStopping()
        try:
            details = store.app_details(app_id)
        except _APP_PROBLEMS as exc:
            log.warning("enrich.app_refused", app_id=app_id, error_code=exc.code)
            details = None
        with pool.connection() as conn, conn.transaction():
            catalog.record_details(conn, platform, app_id, details)
        if details is None:
            unavailable += 1
        else:
            enriched += 1
    return ChunkResult(enriched, unavailable, len(app_ids) - len(todo), store.calls)
