"""The one place a worker's Dramatiq broker is built: queues, middleware order, recovery
tuning. The actors are declared on it by `app`; processes that only send use `sending`."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import redis
from dramatiq.brokers.redis import MAINTENANCE_COMMAND_BLACKLIST, RedisBroker
from dramatiq.middleware import (
    AgeLimit,
    Callbacks,
    CurrentMessage,
    Middleware,
    Pipelines,
    TimeLimit,
)
from periodiq import PeriodiqMiddleware

from . import keys
from .middleware import (
    Cancellation,
    Deduplication,
    Deferrals,
    LogContext,
    Observability,
    Progress,
    Retries,
    Shutdown,
)
from .sending import QUEUES
from .settings import Settings

PERIODIC_SKIP_DELAY_S = 30


def build_middleware(
    settings: Settings, forks: Sequence[Callable[[], Any]] = ()
) -> list[Middleware]:
    """The middleware stack, in order. Before-hooks run top to bottom, after-hooks bottom to top.

    `forks` are what Dramatiq's CLI runs in processes of their own (the ops server).
    """
    return [
        # First, so every later hook and the actor log with the job's ids; its after-hook
        # runs last, unbinding only when everyone else is done.
        LogContext(),
        # Dramatiq's Prometheus metrics plus ours, the ops server (/metrics, /health) and
        # worker heartbeats; first among the rest so its timings include their hooks.
        Observability(forks, can_sync=settings.steam_api_key is not None),
        # The actor learns its message id here: the id owns the library's lease.
        CurrentMessage(),
        # Dramatiq's defaults, minus its Retries (ours below decides what is transient)
        # and its ShutdownNotifications (our Shutdown stops syncs at batch boundaries).
        AgeLimit(),
        TimeLimit(),
        Callbacks(),
        Pipelines(),
        # periodiq: declares the `periodic` option and skips ticks older than 30 s (a late
        # or restarted scheduler catches up from the database, not from missed ticks).
        PeriodiqMiddleware(skip_delay=PERIODIC_SKIP_DELAY_S),
        # On SIGTERM it stops syncs at batch boundaries; at exit it requeues what is unacked.
        Shutdown(),
        # after_enqueue only: keeps the request slot on the message's live copy.
        Deduplication(),
        # Above Deferrals and Retries: its after-hook runs after theirs and announces (or
        # records on the library) what they decided.
        Progress(),
        Retries(
            max_retries=settings.retry_max,
            min_backoff_ms=int(settings.retry_min_backoff_s * 1000),
            max_backoff_ms=int(settings.retry_max_backoff_s * 1000),
            outage_patience_s=settings.outage_patience_s,
            outage_max_backoff_s=settings.outage_max_backoff_s,
        ),
        # After Retries in the list, so its after-hook runs first: a deferral is settled
        # (re-enqueued, no retry spent) before Retries looks at the exception.
        Deferrals(),
        # Last before-hook: a cancelled job is skipped after the context is bound, and
        # SkipMessage from here is the one exception that stops a message.
        Cancellation(),
    ]


class SyncBroker(RedisBroker):
    """Dramatiq's Redis broker with dead-worker recovery on a clock instead of a dice roll.

    Dramatiq requeues a dead worker's unacked messages only during "maintenance", run on
    `maintenance_chance` commands per *million* (default 1,000: about one fetch in a
    thousand, i.e. minutes apart). Here every process runs it at most once per
    `interval_s` on its next broker command, so a dead worker's messages come back about
    `heartbeat_timeout` after its last heartbeat, at a bounded cost (maintenance is a
    couple of sorted-set reads unless a dead worker is actually being cleaned up).
    """

    def __init__(self, *, interval_s: float, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[no-untyped-call]
        self._maintenance_interval_s = interval_s
        self._next_maintenance = 0.0
        self._maintenance_lock = threading.Lock()

    def _should_do_maintenance(self, command: str) -> int:
        if command in MAINTENANCE_COMMAND_BLACKLIST:
            return 0
        now = time.monotonic()
        with self._maintenance_lock:
            if now < self._next_maintenance:
                return 0
            self._next_maintenance = now + self._maintenance_interval_s
            return 1


def create_broker(
    settings: Settings, client: redis.Redis, forks: Sequence[Callable[[], Any]] = ()
) -> SyncBroker:
    """A Redis broker on `client`, with our middleware and queues."""
    broker = SyncBroker(
        client=client,
        namespace=keys.BROKER_NAMESPACE,
        middleware=build_middleware(settings, forks),
        # Live workers heartbeat on every broker command (idle consumers poll every second).
        heartbeat_timeout=int(settings.worker_heartbeat_timeout_s * 1000),
        interval_s=settings.broker_maintenance_interval_s,
    )
    for queue in QUEUES:
        broker.declare_queue(queue)
    return broker
