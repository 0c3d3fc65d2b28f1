"""Deduplication: keeps each library's request slot pointing at its message's live copy.

Every enqueue of a sync message (a request, a retry, a deferral, Dramatiq moving a
delayed message onto its queue) creates a new copy in the broker; the slot follows it,
so `request_sync` and `cancel_sync` can tell a live message from one long gone.
"""

from __future__ import annotations

import contextlib
from typing import Any

import dramatiq
from dramatiq.middleware import Middleware

from ..infrastructure import INFRASTRUCTURE_ERRORS
from ..runtime import get_runtime
from ..sync.pending import track_pending
from .messages import library_id_of


class Deduplication(Middleware):
    """Re-points the de-duplication slot after every enqueue of a sync message."""

    def after_enqueue(self, broker: dramatiq.Broker, message: Any, delay: int | None) -> None:
        """Track the copy just stored (only if the slot belongs to this message)."""
        library_id = library_id_of(message)
        redis_id = message.options.get("redis_message_id")
        if library_id is None or redis_id is None:
            return
        runtime = get_runtime()
        # Best effort: an untracked slot only lets a later request queue a duplicate, which
        # then waits for the lease; it never blocks a sync.
        with contextlib.suppress(*INFRASTRUCTURE_ERRORS):
            track_pending(
                runtime.redis,
                library_id,
                message.message_id,
                message.queue_name,
                redis_id,
                runtime.settings.pending_ttl_s,
            )
