"""Cancellation: a queued sync of a cancelled library is skipped, never started.

A running sync is stopped by the engine itself at its next batch boundary.
"""

from __future__ import annotations

import contextlib
from typing import Any

import dramatiq
import structlog
from dramatiq.middleware import Middleware, SkipMessage

from .. import keys
from ..errors import SyncCancelled
from ..runtime import get_runtime
from ..store import libraries
from ..sync.checkpoints import CheckpointStore
from ..sync.engine import INFRASTRUCTURE_ERRORS
from .messages import library_id_of, outcome_of

log = structlog.get_logger(__name__)


class Cancellation(Middleware):
    """Skips sync messages whose library has a pending cancellation."""

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        """Raise SkipMessage (the only way to stop a message here) when cancelled."""
        library_id = library_id_of(message)
        if library_id is None or not get_runtime().redis.exists(keys.cancel_key(library_id)):
            return
        outcome = outcome_of(message)
        outcome.cancelled = True
        outcome.error = SyncCancelled()
        raise SkipMessage(f"library {library_id} was cancelled")

    def after_skip_message(self, broker: dramatiq.Broker, message: Any) -> None:
        """Record the cancellation: flag consumed, a paused run closed, library marked."""
        library_id = library_id_of(message)
        outcome = outcome_of(message)
        if library_id is None or not outcome.cancelled or outcome.error is None:
            return
        runtime = get_runtime()
        with contextlib.suppress(*INFRASTRUCTURE_ERRORS):
            runtime.redis.delete(keys.cancel_key(library_id))
            checkpoints = CheckpointStore(runtime.redis, runtime.settings.sync_checkpoint_ttl_s)
            paused = checkpoints.load(library_id)  # a run waiting for budget or a retry
            with runtime.pool.connection() as conn, conn.transaction():
                if paused is not None:
                    libraries.finish_run(
                        conn,
                        library_id,
                        paused.run_id,
                        "cancelled",
                        paused.totals(paused.games_processed),
                        outcome.error.to_dict(),
                    )
                else:
                    libraries.set_sync_status(conn, library_id, "cancelled")
            checkpoints.clear(library_id)
        log.info("sync.skipped", reason="cancelled")
