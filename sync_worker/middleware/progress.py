"""Progress: announces what the engine cannot see, the message's lifecycle around the run.

The engine publishes `starting`, per-batch `syncing`, and `completed` / `failed` /
`cancelled` for the runs it finishes. This middleware adds `queued` (deferred for
rate-limit budget), `retrying`, `failed` (retries exhausted) and `cancelled` (skipped
before it started), then frees the library's de-duplication slot when no follow-up
message exists. Listed before RateLimit and Retries, so its after-hook runs after theirs.
"""

from __future__ import annotations

import contextlib
from typing import Any

import dramatiq
from dramatiq.middleware import Middleware

from ..runtime import get_runtime
from ..sync.engine import INFRASTRUCTURE_ERRORS
from ..sync.pending import release_pending
from ..sync.progress import publish_lifecycle, utc_now_iso
from .messages import MessageOutcome, library_id_of, outcome_of


class Progress(Middleware):
    """Publishes lifecycle events decided by the other after-hooks."""

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: Any,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        """Announce a deferral, a retry or giving up; free the slot when the job is over."""
        library_id = library_id_of(message)
        if library_id is not None:
            self._announce(library_id, message, outcome_of(message))

    def after_skip_message(self, broker: dramatiq.Broker, message: Any) -> None:
        """Announce a skipped (cancelled) job."""
        library_id = library_id_of(message)
        if library_id is not None:
            self._announce(library_id, message, outcome_of(message))

    @staticmethod
    def _announce(library_id: str, message: Any, outcome: MessageOutcome) -> None:
        runtime = get_runtime()
        error = outcome.error
        with contextlib.suppress(*INFRASTRUCTURE_ERRORS):
            if outcome.deferred_s is not None and error is not None:
                publish_lifecycle(
                    runtime,
                    library_id,
                    "queued",
                    error.message,
                    retry_in_s=round(outcome.deferred_s, 1),
                )
            elif outcome.retry_in_s is not None and error is not None:
                publish_lifecycle(
                    runtime,
                    library_id,
                    "retrying",
                    f"{error.message} Retry {message.options['retries']} in {outcome.retry_in_s:.0f} s.",
                    error=error.to_dict(),
                    retry_in_s=round(outcome.retry_in_s, 1),
                )
            elif outcome.dead_lettered and error is not None:
                publish_lifecycle(
                    runtime,
                    library_id,
                    "failed",
                    error.message,
                    error=error.to_dict(),
                    completed_at=utc_now_iso(),
                )
            elif outcome.cancelled and error is not None:
                publish_lifecycle(
                    runtime,
                    library_id,
                    "cancelled",
                    error.message,
                    error=error.to_dict(),
                    completed_at=utc_now_iso(),
                )
            if outcome.deferred_s is None and outcome.retry_in_s is None:
                release_pending(runtime.redis, library_id, message.message_id)
