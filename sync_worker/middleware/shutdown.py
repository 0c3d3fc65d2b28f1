"""Shutdown: a stopping worker stops its syncs at a batch boundary and loses no message.

Heroku and honcho send SIGTERM to every process of a dyno, and Dramatiq's main process
relays its own SIGTERM to its workers too, so a worker process often gets two; Dramatiq
kills the process on the second. Like Celery's REMAP_SIGTERM and RQ's HerokuWorker,
we make repeated SIGTERMs mean what the first one meant (SIGKILL still kills).

On shutdown the engine stops each running sync after its current batch (the message
goes back to the broker at once, due a second later, see Deferrals). When Dramatiq has
stopped, every message this process still holds unacked goes back on its queue before
the process exits, instead of waiting for another worker to notice a missing heartbeat:
a sync still inside a Steam call when the shutdown timeout ends, and messages Dramatiq's
Redis consumer had fetched but not yet handed out (its stop does not requeue those).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

import dramatiq
import structlog
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import Middleware

from .. import keys
from ..infrastructure import INFRASTRUCTURE_ERRORS
from ..runtime import get_runtime

log = structlog.get_logger(__name__)


class Shutdown(Middleware):
    """Graceful stop for worker processes."""

    def after_process_boot(self, broker: dramatiq.Broker) -> None:
        """In a `dramatiq` worker process: the first SIGTERM stops syncs at once, later ones
        are ignored."""
        on_first_sigterm(get_runtime().stopping.set)

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        """Tell running syncs to stop at their next batch boundary (in-process workers too)."""
        log.info("worker.stopping")
        get_runtime().stopping.set()

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        """Put back on their queues the messages this process still holds unacked."""
        if not isinstance(broker, RedisBroker):
            return
        for queue_name in worker.consumers:
            try:
                held = broker.client.smembers(keys.broker_acks_key(broker.broker_id, queue_name))
                if held:
                    broker.do_requeue(queue_name, *held)
                    log.warning("worker.requeued_unfinished", queue=queue_name, messages=len(held))
            except INFRASTRUCTURE_ERRORS as exc:  # Redis down: maintenance recovers them later
                log.error("worker.requeue_failed", queue=queue_name, error=type(exc).__name__)


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
