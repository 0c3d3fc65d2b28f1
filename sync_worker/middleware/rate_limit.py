"""RateLimit: a job out of rate-limit budget steps aside instead of parking a worker thread.

The limiter (`sync_worker.ratelimit`) raises RateLimitDeferred when budget is further
away than `RATE_LIMIT_MAX_WAIT_S`; this re-enqueues the message with that delay, without
spending one of its retries. Deferrals are unbounded: a 429 storm only delays a sync.
"""

from __future__ import annotations

import random
from typing import Any

import dramatiq
import structlog
from dramatiq.middleware import Middleware

from ..errors import RateLimitDeferred
from .messages import outcome_of

log = structlog.get_logger(__name__)

JITTER_S = 2.0  # spread deferred jobs so they do not all wake on the same millisecond


class RateLimit(Middleware):
    """Re-enqueues deferred jobs with the limiter's retry-after delay."""

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: Any,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        """Only RateLimitDeferred concerns this middleware; Retries ignores it."""
        if not isinstance(exception, RateLimitDeferred):
            return
        delay_s = exception.retry_after_s + random.uniform(0, JITTER_S)
        message.options["deferrals"] = message.options.get("deferrals", 0) + 1
        broker.enqueue(message, delay=int(delay_s * 1000))
        outcome = outcome_of(message)
        outcome.deferred_s = delay_s
        outcome.error = exception
        log.info("sync.deferred", bucket=exception.bucket, delay_s=round(delay_s, 1))
