"""LogContext: every log line of a job carries its message id, actor, library and attempt."""

from __future__ import annotations

from typing import Any

import dramatiq
import structlog
from dramatiq.middleware import Middleware

from ..sending import library_id_of


class LogContext(Middleware):
    """Binds the job's correlation ids into structlog's contextvars for the worker thread."""

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        """Bind the ids before any other middleware or the actor logs."""
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(
            message_id=message.message_id,
            actor=message.actor_name,
            library_id=library_id_of(message),
            attempt=message.options.get("retries", 0) + 1,
        )

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: Any,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        """Unbind: the thread's next job starts clean."""
        structlog.contextvars.clear_contextvars()

    def after_skip_message(self, broker: dramatiq.Broker, message: Any) -> None:
        """Unbind after a skipped job too."""
        structlog.contextvars.clear_contextvars()
