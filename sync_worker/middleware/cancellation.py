"""Cancellation: a queued sync whose message was cancelled is skipped, never started.

A running sync is stopped by the engine itself at its next batch boundary; Progress
records a skipped one on the library (closing a run it had paused).
"""

from __future__ import annotations

from typing import Any

import dramatiq
from dramatiq.middleware import Middleware, SkipMessage

from ..errors import SyncCancelled
from ..runtime import get_runtime
from ..sending import library_id_of
from ..sync.cancels import is_cancelled
from .messages import outcome_of


class Cancellation(Middleware):
    """Skips sync messages named by a cancellation."""

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        """Raise SkipMessage (the only way to stop a message here) when cancelled."""
        library_id = library_id_of(message)
        if library_id is None or not is_cancelled(
            get_runtime().redis, library_id, message.message_id
        ):
            return
        outcome = outcome_of(message)
        outcome.cancelled = True
        outcome.error = SyncCancelled()
        raise SkipMessage(f"the sync of library {library_id} was cancelled")
