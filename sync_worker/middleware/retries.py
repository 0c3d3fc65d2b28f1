"""Retries: transient failures retry with exponential backoff and jitter; the rest fail at once.

Replaces Dramatiq's own Retries (which would retry everything). `Retry-After` from
Steam wins when it asks for longer. A message that runs out of retries, or fails
permanently, is dead-lettered and its library marked failed with the error's code.
"""

from __future__ import annotations

import contextlib
import random
from typing import Any

import dramatiq
import structlog
from dramatiq.middleware import Middleware

from ..errors import (
    InternalError,
    RateLimitDeferred,
    SyncWorkerError,
    TransientError,
    UnknownLibrary,
)
from ..runtime import get_runtime
from ..store import libraries
from ..sync.engine import INFRASTRUCTURE_ERRORS
from .messages import as_sync_error, library_id_of, outcome_of

log = structlog.get_logger(__name__)


class Retries(Middleware):
    """Decides retry or dead-letter for a failed message."""

    def __init__(
        self, *, max_retries: int = 5, min_backoff_ms: int = 5_000, max_backoff_ms: int = 600_000
    ) -> None:
        self.max_retries = max_retries
        self.min_backoff_ms = min_backoff_ms
        self.max_backoff_ms = max_backoff_ms

    @property
    def actor_options(self) -> set[str]:
        """Options an actor (or a message) may override; message beats actor beats default."""
        return {"max_retries", "min_backoff", "max_backoff"}

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
        if exception is None or isinstance(exception, RateLimitDeferred):
            return  # success, or RateLimit's business (deferral spends no retry)
        error = as_sync_error(exception)
        outcome = outcome_of(message)
        outcome.error = error
        retries = message.options.get("retries", 0)
        max_retries = self._option(broker, message, "max_retries", self.max_retries)
        if isinstance(error, TransientError) and retries < max_retries:
            outcome.retry_in_s = self._backoff_s(broker, message, retries, error)
            message.options["retries"] = retries + 1
            broker.enqueue(message, delay=int(outcome.retry_in_s * 1000))
            log.warning(
                "sync.retrying",
                error_code=error.code,
                retry_in_s=round(outcome.retry_in_s, 1),
                retry=retries + 1,
                max_retries=max_retries,
            )
            return
        message.fail()  # the broker dead-letters failed messages
        outcome.dead_lettered = True
        # A bug's traceback is worth logging (we are still inside the worker's except block).
        log.error(
            "sync.gave_up",
            error_code=error.code,
            reason=error.message,
            retries=retries,
            exc_info=isinstance(error, InternalError),
        )
        self._mark_failed(message, error)

    def _backoff_s(
        self, broker: dramatiq.Broker, message: Any, retries: int, error: TransientError
    ) -> float:
        low = self._option(broker, message, "min_backoff", self.min_backoff_ms) / 1000
        high = self._option(broker, message, "max_backoff", self.max_backoff_ms) / 1000
        ceiling = min(high, low * 2**retries)
        delay = random.uniform(ceiling / 2, ceiling)  # "equal jitter": spread, but never near zero
        return max(delay, error.retry_after_s or 0.0)

    @staticmethod
    def _mark_failed(message: Any, error: SyncWorkerError) -> None:
        """The library row says what the last attempt failed with (if there is such a library)."""
        library_id = library_id_of(message)
        if library_id is None:
            return
        with (
            contextlib.suppress(UnknownLibrary, *INFRASTRUCTURE_ERRORS),
            get_runtime().pool.connection() as conn,
        ):
            libraries.get_library(conn, library_id)
            libraries.record_failure(conn, library_id, error.to_dict())
