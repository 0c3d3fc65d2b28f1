"""The one place the Dramatiq broker is built: queues, middleware order, Redis tuning."""

from __future__ import annotations

import threading

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import (
    AgeLimit,
    Callbacks,
    Middleware,
    Pipelines,
    ShutdownNotifications,
    TimeLimit,
)

from .middleware import Cancellation, LogContext, Progress, RateLimit, Retries
from .settings import Settings

#: Priority is by queue, each served by its own processes (see the Procfile):
#: Dramatiq on Redis has no priority across queues.
QUEUE_HIGH = "high"  # manual syncs: a user is watching
QUEUE_DEFAULT = "default"  # scheduled / auto syncs
QUEUE_LOW = "low"  # enrichment
QUEUES = (QUEUE_HIGH, QUEUE_DEFAULT, QUEUE_LOW)

# A dead worker's messages come back only in a maintenance pass, once its heartbeat is
# older than this: 60 s (Dramatiq's default) balances quick recovery against false alarms.
HEARTBEAT_TIMEOUT_MS = 60_000
# Run maintenance on ~1 in 100 fetches (default 1 in 1000) so recovery happens in seconds.
MAINTENANCE_CHANCE = 10  # per mille


def build_middleware(settings: Settings) -> list[Middleware]:
    """The middleware stack, in order. Before-hooks run top to bottom, after-hooks bottom to top."""
    return [
        # First, so every later hook and the actor log with the job's ids; its after-hook
        # runs last, unbinding only when everyone else is done.
        LogContext(),
        # Dramatiq's defaults, minus its Retries (ours below decides what is transient).
        AgeLimit(),
        TimeLimit(),
        ShutdownNotifications(),
        Callbacks(),
        Pipelines(),
        # Above RateLimit and Retries: its after-hook runs after theirs and announces what
        # they decided (queued / retrying / failed / cancelled).
        Progress(),
        Retries(
            max_retries=settings.retry_max,
            min_backoff_ms=int(settings.retry_min_backoff_s * 1000),
            max_backoff_ms=int(settings.retry_max_backoff_s * 1000),
        ),
        # After Retries in the list, so its after-hook runs first: a deferral is settled
        # (re-enqueued, no retry spent) before Retries looks at the exception.
        RateLimit(),
        # Last before-hook: a cancelled job is skipped after the context is bound, and
        # SkipMessage from here is the one exception that stops a message.
        Cancellation(),
    ]


def create_broker(settings: Settings) -> RedisBroker:
    """A Redis broker with our middleware and queues."""
    assert settings.redis_url is not None
    broker = RedisBroker(  # type: ignore[no-untyped-call]
        url=settings.redis_url,
        middleware=build_middleware(settings),
        heartbeat_timeout=HEARTBEAT_TIMEOUT_MS,
        maintenance_chance=MAINTENANCE_CHANCE,
    )
    for queue in QUEUES:
        broker.declare_queue(queue)
    return broker


_lock = threading.Lock()
_broker: RedisBroker | None = None


def get_broker() -> RedisBroker:
    """This process's broker, built on first use, installed globally, with the actors declared."""
    global _broker
    with _lock:
        if _broker is None:
            from . import actors  # actors need a broker to bind to; built just above them
            from .runtime import get_runtime

            broker = create_broker(get_runtime().settings)
            dramatiq.set_broker(broker)
            actors.declare_actors(broker)
            _broker = broker
        return _broker


def reset_broker() -> None:
    """Forget the process's broker (tests switch Redis databases between sessions)."""
    global _broker
    with _lock:
        if _broker is not None:
            _broker.close()
        _broker = None
