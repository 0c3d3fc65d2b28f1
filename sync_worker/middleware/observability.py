"""Observability: Dramatiq's Prometheus metrics plus ours, the ops HTTP server, heartbeats.

Dramatiq's Prometheus middleware does the metric bookkeeping (messages, errors, retries,
dead letters, durations) in Prometheus' multiprocess directory; we add ours there
(`sync_worker.metrics`) and run, instead of its exposition server, the forks we are
given: `sync_worker.app` hands over the ops server, which also answers `/health` and
listens on METRICS_PORT (0: none).

Each worker process also beats in `sync:workers` every few seconds with the queues it
serves, so `sync-worker health` can tell which queues have a live worker.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Sequence
from typing import Any

import dramatiq
import redis
import structlog
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import Middleware

from .. import keys, metrics
from ..heartbeats import HEARTBEAT_INTERVAL_S, worker_identity
from ..infrastructure import INFRASTRUCTURE_ERRORS

log = structlog.get_logger(__name__)


def _hand_over(hook: str) -> Callable[..., None]:
    """A hook that passes its call to Dramatiq's Prometheus middleware once it exists."""

    def delegate(self: Observability, *args: Any, **kwargs: Any) -> None:
        if self._prometheus is not None:
            getattr(self._prometheus, hook)(*args, **kwargs)

    delegate.__name__ = hook
    delegate.__doc__ = f"Dramatiq's Prometheus `{hook}`, once this process booted."
    return delegate


class Observability(Middleware):
    """Metrics, the ops server and worker heartbeats (in `dramatiq` worker processes).

    Dramatiq's Prometheus middleware only works in a process Dramatiq's CLI booted: it is
    created there, and every hook is handed to it from then on. In-process workers (the
    demo) and the web service's client, which never boot, record nothing.
    """

    def __init__(self, forks: Sequence[Callable[[], Any]] = (), *, can_sync: bool = True) -> None:
        """`can_sync`: this process has a Steam key (its heartbeat says so)."""
        self._forks = list(forks)
        self._can_sync = can_sync
        self._prometheus: Any = None  # dramatiq's Prometheus, once this process booted
        self._stopped = threading.Event()
        self._client: redis.Redis | None = None  # the broker's, once a Redis worker booted
        self._member: str | None = None

    @property
    def forks(self) -> list[Callable[[], Any]]:
        """Dramatiq runs these in processes of their own, one per `dramatiq` command (the
        ops server, which the worker's entry point hands over)."""
        return self._forks

    def after_process_boot(self, broker: dramatiq.Broker) -> None:
        """Set up Dramatiq's metrics (and the multiprocess directory), then ours."""
        # Imported here: the import creates Dramatiq's metrics directory.
        from dramatiq.middleware.prometheus import Prometheus

        self._prometheus = Prometheus()
        self._prometheus.after_process_boot(broker)
        metrics.enable()

    after_nack = _hand_over("after_nack")
    after_enqueue = _hand_over("after_enqueue")
    before_delay_message = _hand_over("before_delay_message")
    before_process_message = _hand_over("before_process_message")
    after_process_message = _hand_over("after_process_message")
    after_skip_message = _hand_over("after_skip_message")

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        """Start beating in `sync:workers` with the queues this worker consumes."""
        if not isinstance(broker, RedisBroker):
            return  # unit tests' StubBroker: no Redis to beat in
        queues = sorted(q for q in worker.consumers if not q.endswith(".DQ"))
        self._client = broker.client
        self._member = worker_identity(broker.broker_id, queues, can_sync=self._can_sync)
        threading.Thread(target=self._beat, name="heartbeat", daemon=True).start()

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        """Dramatiq's Prometheus marks this process's gauges dead."""
        if self._prometheus is not None:
            self._prometheus.after_worker_shutdown(broker, worker)

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        """Stop beating and leave the set: health stops counting this worker at once."""
        self._stopped.set()
        if self._client is not None and self._member is not None:
            # If Redis is away, the last beat goes stale on its own.
            with contextlib.suppress(*INFRASTRUCTURE_ERRORS):
                self._client.zrem(keys.WORKERS_KEY, self._member)

    def _beat(self) -> None:
        assert self._client is not None and self._member is not None
        while True:
            try:
                seconds, micros = self._client.time()
                now_ms = seconds * 1000 + micros // 1000
                with self._client.pipeline(transaction=False) as pipe:
                    pipe.zadd(keys.WORKERS_KEY, {self._member: now_ms})
                    # Members of workers that died without leaving: gone after an hour.
                    pipe.zremrangebyscore(keys.WORKERS_KEY, "-inf", now_ms - 3_600_000)
                    pipe.execute()
            except INFRASTRUCTURE_ERRORS as exc:
                log.warning("worker.heartbeat_failed", error=type(exc).__name__)
            if self._stopped.wait(HEARTBEAT_INTERVAL_S):
                return
