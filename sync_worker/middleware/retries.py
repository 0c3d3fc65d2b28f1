"""Retries: transient failures retry with exponential backoff and jitter; the rest fail at once.

Replaces Dramatiq's own Retries (which would retry everything). `Retry-After` from
Steam wins when it asks for longer. An outage of our own PostgreSQL or Redis is not the
library's failure: it is waited out for OUTAGE_PATIENCE_S, backing off to at most
OUTAGE_MAX_BACKOFF_S, without spending a retry; only then do retries count again. A message that runs out of retries, or cannot be
processed at all (malformed, unknown library, a bug), is dead-lettered with its error
code and sentence; Progress then records the failure on the library.
"""

from __future__ import annotations

import random
import time
from typing import Any

import dramatiq
import structlog
from dramatiq.middleware import Middleware

from ..errors import InternalError, LockLost, OwnOutage, SyncDeferred, TransientError
from .messages import as_sync_error, dead_letter, outcome_of, until_stored

log = structlog.get_logger(__name__)


class Retries(Middleware):
    """Decides retry or dead-letter for a failed message."""

    def __init__(
        self,
        *,
        max_retries: int = 5,
        min_backoff_ms: int = 5_000,
        max_backoff_ms: int = 600_000,
        outage_patience_s: float = 1800.0,
        outage_max_backoff_s: float = 30.0,
    ) -> None:
        self.max_retries = max_retries
        self.min_backoff_ms = min_backoff_ms
        self.max_backoff_ms = max_backoff_ms
        self.outage_patience_s = outage_patience_s
        self.outage_max_backoff_s = outage_max_backoff_s

    @property
    def actor_options(self) -> set[str]:
        """Options an actor (or a message) may override; message beats actor beats default.

        `throws` is Dramatiq's own (its worker reads it to log expected errors without a
        traceback); its Retries declares it, so ours, which replaces it, does too.
        """
        return {"max_retries", "min_backoff", "max_backoff", "throws"}

    def _option(self, broker: dramatiq.Broker, message: Any, name: str, default: int) -> int:
        actor_options = broker.get_actor(message.actor_name).options
        return int(message.options.get(name, actor_options.get(name, default)))

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: Any,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        """Retry transient errors while retries last; dead-letter everything else."""
        if exception is None or isinstance(exception, SyncDeferred | LockLost):
            return  # success, a deferral (Deferrals' business) or a run another attempt took over
        error = as_sync_error(exception)
        outcome = outcome_of(message)
        outcome.error = error
        if self._waits_out_outage(broker, message, error):
            return
        retries = message.options.get("retries", 0)
        max_retries = self._option(broker, message, "max_retries", self.max_retries)
        if isinstance(error, TransientError) and retries < max_retries:
            delay_s = self._backoff_s(broker, message, retries, error)
            message.options["retries"] = retries + 1
            until_stored(lambda: broker.enqueue(message, delay=int(delay_s * 1000)), "retry")
            outcome.delay_s = delay_s
            log.warning(
                "sync.retrying",
                error_code=error.code,
                retry_in_s=round(delay_s, 1),
                retry=retries + 1,
                max_retries=max_retries,
            )
            return
        dead_letter(broker, message, error)
        outcome.dead_lettered = True
        # A bug's traceback is worth logging (we are still inside the worker's except block).
        log.error(
            "sync.gave_up",
            error_code=error.code,
            reason=error.message,
            retries=retries,
            exc_info=isinstance(error, InternalError),
        )

    def _waits_out_outage(self, broker: dramatiq.Broker, message: Any, error: Exception) -> bool:
        """Re-enqueue a message that met our own outage, without spending a retry, while
        the outage is younger than the patience; True when it did."""
        if not isinstance(error, OwnOutage):
            message.options.pop("outage_since", None)  # a later outage gets all the patience
            message.options.pop("outage_waits", None)
            return False
        now = time.time()
        since = float(message.options.setdefault("outage_since", now))
        if now - since >= self.outage_patience_s:
            return False  # an outage this long: retries count again, and run out
        waits = int(message.options.get("outage_waits", 0))
        delay_s = jittered_backoff_s(self.min_backoff_ms / 1000, self.outage_max_backoff_s, waits)
        message.options["outage_waits"] = waits + 1
        until_stored(lambda: broker.enqueue(message, delay=int(delay_s * 1000)), "outage wait")
        outcome = outcome_of(message)
        outcome.delay_s = delay_s
        outcome.outage = True
        log.warning(
            "sync.waiting_out_outage",
            error_code=error.code,
            retry_in_s=round(delay_s, 1),
            waited_s=round(now - since),
            patience_s=self.outage_patience_s,
        )
        return True

    def _backoff_s(
        self, broker: dramatiq.Broker, message: Any, retries: int, error: TransientError
    ) -> float:
        low = self._option(broker, message, "min_backoff", self.min_backoff_ms) / 1000
        high = self._option(broker, message, "max_backoff", self.max_backoff_ms) / 1000
        return max(jittered_backoff_s(low, high, retries), error.retry_after_s or 0.0)


def jittered_backoff_s(low_s: float, high_s: float, attempt: int) -> float:
    """Exponential backoff from `low_s`, capped at `high_s`, with "equal jitter": spread
    across the upper half, so retries scatter but never come back near zero."""
    ceiling = min(high_s, low_s * 2**attempt)
    return random.uniform(ceiling / 2, ceiling)
