"""Shutdown: a stopping worker stops its syncs at a batch boundary and loses no message.

Heroku and honcho send SIGTERM to every process of a dyno, and Dramatiq's main process
relays its own SIGTERM to its workers too, so a worker process often gets two; Dramatiq
kills the process on the second. Like Celery's REMAP_SIGTERM and RQ's HerokuWorker,
we make repeated SIGTERMs mean what the first one meant (SIGKILL still kills).

On shutdown the engine stops each running sync after its current batch (the message
goes back on the queue at once, see Deferrals). A sync still inside a Steam call when
the shutdown timeout ends has its message put back on the queue before the process
exits, instead of waiting for another worker to notice a missing heartbeat.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

import dramatiq
import structlog
from dramatiq.middleware import Middleware

from ..infrastructure import INFRASTRUCTURE_ERRORS
from ..runtime import get_runtime

log = structlog.get_logger(__name__)


class Shutdown(Middleware):
    """Graceful stop for worker processes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._in_flight: dict[str, Any] = {}  # redis message id -> message being processed

    def after_process_boot(self, broker: dramatiq.Broker) -> None:
        """In a `dramatiq` worker process: the first SIGTERM stops syncs at once, later ones
        are ignored."""
        on_first_sigterm(get_runtime().stopping.set)

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        """Tell running syncs to stop at their next batch boundary (in-process workers too)."""
        log.info("worker.stopping", in_flight=len(self._in_flight))
        get_runtime().stopping.set()

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        """Remember the message while a worker thread holds it."""
        with self._lock:
            self._in_flight[message.options.get("redis_message_id", message.message_id)] = message

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: Any,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        """The message is settled: forget it."""
        self._forget(message)

    def after_skip_message(self, broker: dramatiq.Broker, message: Any) -> None:
        """A skipped message is settled too."""
        self._forget(message)

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        """Put back on their queues the messages whose threads outlived the shutdown timeout."""
        with self._lock:
            stuck = list(self._in_flight.values())
            self._in_flight.clear()
        for message in stuck:
            try:
                broker.do_requeue(message.queue_name, message.options["redis_message_id"])  # type: ignore[attr-defined]
                log.warning("worker.requeued_unfinished", message_id=message.message_id)
            except INFRASTRUCTURE_ERRORS as exc:  # Redis down: maintenance recovers it later
                log.error(
                    "worker.requeue_failed", message_id=message.message_id, error=type(exc).__name__
                )

    def _forget(self, message: Any) -> None:
        with self._lock:
            self._in_flight.pop(message.options.get("redis_message_id", message.message_id), None)


def on_first_sigterm(stop_now: Callable[[], None]) -> None:
    """Wrap the current SIGTERM handler: the first SIGTERM calls `stop_now` (Dramatiq's own
    handler only notices a second later) and reaches that handler; later ones are ignored."""
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be set from the main thread
    original = signal.getsignal(signal.SIGTERM)
    if not callable(original):
        return
    received = False

    def first_sigterm_only(signum: int, frame: FrameType | None) -> Any:
        nonlocal received
        if received:
            log.info("worker.sigterm_ignored", reason="already shutting down")
            return None
        received = True
        stop_now()
        return original(signum, frame)

    signal.signal(signal.SIGTERM, first_sigterm_only)
