"""Progress: announces what the engine cannot see, the message's life around its runs.

The engine publishes `starting`, per-batch `syncing`, and the final event of every run
it ends. This middleware adds `queued` (stepped back for budget or a shutdown),
`retrying`, and ends the library's sync when a message ends without a run to end it:
retries exhausted or a bad message (`failed`), or skipped as cancelled (`cancelled`).
Listed before Deferrals and Retries, so its after-hook runs after theirs.
"""

from __future__ import annotations

import contextlib
from typing import Any

import dramatiq
from dramatiq.middleware import Middleware

from ..errors import MalformedMessage, SyncAlreadyRunning, UnknownLibrary
from ..infrastructure import INFRASTRUCTURE_ERRORS
from ..runtime import get_runtime
from ..sending import library_id_of
from ..sync.abandon import abandon
from ..sync.progress import ProgressPublisher
from .messages import MessageOutcome, outcome_of, until_stored


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
        """Announce a deferral or a retry; end the library's sync when the message gave up."""
        library_id = library_id_of(message)
        if library_id is not None:
            self._announce(library_id, message, outcome_of(message))

    def after_skip_message(self, broker: dramatiq.Broker, message: Any) -> None:
        """End the library's sync when its message was skipped as cancelled."""
        library_id = library_id_of(message)
        if library_id is not None:
            self._announce(library_id, message, outcome_of(message))

    @staticmethod
    def _announce(library_id: str, message: Any, outcome: MessageOutcome) -> None:
        runtime = get_runtime()
        error = outcome.error
        if error is None:
            return
        publisher = ProgressPublisher(
            runtime.redis,
            library_id,
            ttl_s=runtime.settings.progress_ttl_s,
            message_id=message.message_id,
        )
        delay_s = round(outcome.delay_s or 0.0, 1)
        if outcome.deferred is not None:
            # A lease held elsewhere means a live run owns the library's events: stay quiet.
            if not isinstance(outcome.deferred, SyncAlreadyRunning):
                with contextlib.suppress(*INFRASTRUCTURE_ERRORS):
                    publisher.lifecycle("queued", error.message, retry_in_s=delay_s)
        elif outcome.outage:
            # Our outage, not the user's problem: the sync is queued and resumes by itself.
            with contextlib.suppress(*INFRASTRUCTURE_ERRORS):
                publisher.lifecycle(
                    "queued",
                    f"{error.message} Resuming in {delay_s:.0f} s.",
                    error=error.to_dict(),
                    retry_in_s=delay_s,
                )
        elif outcome.delay_s is not None:
            with contextlib.suppress(*INFRASTRUCTURE_ERRORS):
                retry = message.options["retries"]
                publisher.lifecycle(
                    "retrying",
                    f"{error.message} Retry {retry} in {delay_s:.0f} s.",
                    error=error.to_dict(),
                    retry_in_s=delay_s,
                )
        elif isinstance(error, UnknownLibrary | MalformedMessage):
            return  # no such library to record anything on
        elif outcome.dead_lettered or outcome.cancelled:
            status = "cancelled" if outcome.cancelled else "failed"
            settings = runtime.settings
            until_stored(
                lambda: abandon(
                    settings,
                    runtime.redis,
                    runtime.pool,
                    library_id,
                    message.message_id,
                    status,
                    error,
                ),
                f"{status} sync",
            )
