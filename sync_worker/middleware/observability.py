"""Observability: Dramatiq's Prometheus metrics plus ours, the ops HTTP server, heartbeats.

Dramatiq's Prometheus middleware does the metric bookkeeping (messages, errors, retries,
dead letters, durations) in Prometheus' multiprocess directory; we add ours there
(`sync_worker.metrics`) and replace its exposition server by `sync_worker.ops_server`,
which also answers `/health` and listens on METRICS_PORT (0: none).

Each worker process also beats in `sync:workers` every few seconds with the queues it
serves, so `sync-worker health` can tell which queues have a live worker.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

import dramatiq
import structlog
from dramatiq.middleware.prometheus import Prometheus

from .. import keys, metrics
from ..health import HEARTBEAT_INTERVAL_S, worker_identity
from ..infrastructure import INFRASTRUCTURE_ERRORS
from ..ops_server import serve

log = structlog.get_logger(__name__)


class Observability(Prometheus):
    """Metrics, the ops server and worker heartbeats (in `dramatiq` worker processes)."""

    def __init__(self, metrics_port: int) -> None:
        super().__init__()
        self._metrics_port = metrics_port
        self._stopped = threading.Event()
        self._member: str | None = None

    @property
    def forks(self) -> list[Callable[[], Any]]:
        """Dramatiq runs these in processes of their own, one per `dramatiq` command."""
        return [serve] if self._metrics_port else []

    def after_process_boot(self, broker: dramatiq.Broker) -> None:
        """Set up Dramatiq's metrics (and the multiprocess directory), then ours."""
        super().after_process_boot(broker)  # type: ignore[no-untyped-call]
        metrics.enable()

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        """Start beating in `sync:workers` with the queues this worker consumes."""
        queues = sorted(q for q in worker.consumers if not q.endswith(".DQ"))
        self._member = worker_identity(broker.broker_id, queues)  # type: ignore[attr-defined]
        threading.Thread(
            target=self._beat, args=(broker, self._member), name="heartbeat", daemon=True
        ).start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        """Stop beating and leave the set: health stops counting this worker at once."""
        self._stopped.set()
        if self._member is not None:
            # If Redis is away, the last beat goes stale on its own.
            with contextlib.suppress(*INFRASTRUCTURE_ERRORS):
                broker.client.zrem(keys.WORKERS_KEY, self._member)  # type: ignore[attr-defined]

    def _beat(self, broker: dramatiq.Broker, member: str) -> None:
        client = broker.client  # type: ignore[attr-defined]
        while True:
            try:
                seconds, micros = client.time()
                now_ms = seconds * 1000 + micros // 1000
                with client.pipeline(transaction=False) as pipe:
                    pipe.zadd(keys.WORKERS_KEY, {member: now_ms})
                    # Members of workers that died without leaving: gone after an hour.
                    pipe.zremrangebyscore(keys.WORKERS_KEY, "-inf", now_ms - 3_600_000)
                    pipe.execute()
            except INFRASTRUCTURE_ERRORS as exc:
                log.warning("worker.heartbeat_failed", error=type(exc).__name__)
            if self._stopped.wait(HEARTBEAT_INTERVAL_S):
                return
