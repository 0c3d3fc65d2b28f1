"""Deferrals: a sync that cannot go on now steps back into the queue instead of parking a thread.

Out of rate-limit budget, a lease held by another run, a worker shutting down: the
engine raises SyncDeferred with how long to wait, and this re-enqueues the message with
that delay, without spending one of its retries. Deferrals are unbounded: a 429 storm
only delays a sync.
"""

from __future__ import annotations

import random
from typing import Any

import dramatiq
import structlog
from dramatiq.middleware import Middleware

from ..errors import SyncDeferred
from .messages import outcome_of, until_stored

log = structlog.get_logger(__name__)

JITTER_S = 1.0  # spread deferred jobs so they do not all wake on the same millisecond


class Deferrals(Middleware):
    """Re-enqueues deferred jobs after the delay the engine asked for."""

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: Any,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        """Only SyncDeferred concerns this middleware; Retries ignores it."""
        if not isinstance(exception, SyncDeferred):
            return
        message.options["deferrals"] = message.options.get("deferrals", 0) + 1
        delay_s = exception.retry_after_s + random.uniform(0, JITTER_S)
        until_stored(lambda: broker.enqueue(message, delay=int(delay_s * 1000)), "deferral")
        outcome = outcome_of(message)
        outcome.deferred = exception
        outcome.delay_s = delay_s
        outcome.error = exception
        log.info("sync.deferred", reason=exception.code, delay_s=round(delay_s, 1))
