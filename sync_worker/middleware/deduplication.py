"""Deduplication: keeps each library's request slot pointing at its message's live copy.

Every enqueue of a sync message in a worker (a retry, a deferral, Dramatiq moving a
delayed message onto its queue) creates a new copy in the broker; the slot follows it
(`sending.track_copy`, which new requests use too), so `request_sync` and `cancel_sync`
can tell a live message from one long gone.
"""

from __future__ import annotations

from typing import Any

import dramatiq
from dramatiq.middleware import Middleware

from ..runtime import get_runtime
from ..sending import track_copy


class Deduplication(Middleware):
    """Re-points the de-duplication slot after every enqueue of a sync message."""

    def after_enqueue(self, broker: dramatiq.Broker, message: Any, delay: int | None) -> None:
        """Track the copy just stored (only if the slot belongs to this message)."""
        track_copy(get_runtime(), message)
