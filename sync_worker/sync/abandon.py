"""Giving up on a sync message outside any run: the Progress middleware calls `abandon`
once Retries dead-lettered a message or Cancellation skipped one."""

from __future__ import annotations

import redis
from psycopg_pool import ConnectionPool

from ..errors import SyncWorkerError
from ..settings import Settings
from ..store import runs
from .cancels import forget_cancel
from .lease import Lease
from .pending import release_pending
from .progress import ProgressPublisher


def abandon(
    settings: Settings,
    client: redis.Redis,
    pool: ConnectionPool,
    library_id: str,
    owner: str,
    status: str,
    error: SyncWorkerError,
) -> bool:
    """End the library's sync for a message that will never run again (given up, cancelled).

    Closes the library's open run with `status` and publishes the final event, unless a
    live run holds the lease, even another delivery of this very message (that run
    decides then). True when recorded.
    """
    lease = Lease(client, library_id, owner, settings.sync_lock_ttl_s)
    if not lease.acquire_when_free():
        return False
    try:
        with pool.connection() as conn, conn.transaction():
            runs.close_open_run(conn, library_id, owner, status, error.to_dict())
        forget_cancel(client, library_id, owner)
        release_pending(client, library_id, owner)
    finally:
        lease.release()
    ProgressPublisher(client, library_id, ttl_s=settings.progress_ttl_s, message_id=owner).final(
        status, error
    )
    return True
