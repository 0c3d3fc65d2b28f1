"""Is the service healthy? Redis, PostgreSQL, schema, queues, dead letters, live workers.

One check, used by `sync-worker health` and the ops server's `/health`. It never calls
Steam, opens its own short-lived connections with a one-second budget each, and answers
in well under a second when the servers are up.

Workers announce themselves in `sync:workers` (a sorted set scored by the time of their
last heartbeat, see `heartbeats`).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg

from . import keys
from .heartbeats import HEARTBEAT_STALE_S
from .infrastructure import INFRASTRUCTURE_ERRORS
from .runtime import redis_client
from .sending import QUEUES
from .settings import Settings
from .store.migrations import available_migrations

CHECK_TIMEOUT_S = 1.0


@dataclass
class HealthReport:
    """What `sync-worker health` prints; `healthy` is False with a one-line `reason`."""

    healthy: bool = True
    reason: str = ""
    redis: bool = False
    postgres: bool = False
    schema: dict[str, Any] = field(default_factory=dict)
    queues: dict[str, dict[str, int]] = field(default_factory=dict)
    dead_letters: int = 0
    workers: list[dict[str, Any]] = field(default_factory=list)
    elapsed_ms: float = 0.0

    def fail(self, reason: str) -> None:
        """Mark unhealthy, keeping the first reason (the root cause comes first)."""
        if self.healthy:
            self.healthy, self.reason = False, reason

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return asdict(self)


def check_health(
    settings: Settings, *, min_workers: int = 0, max_backlog: int | None = None
) -> HealthReport:
    """Check everything; `min_workers` live workers per queue and at most `max_backlog`
    ready messages per queue are required when given. Settings' URLs must be resolved."""
    started = time.monotonic()
    report = HealthReport()
    _check_postgres(settings, report)
    _check_redis(settings, report, min_workers=min_workers, max_backlog=max_backlog)
    report.elapsed_ms = round((time.monotonic() - started) * 1000, 1)
    return report


def _check_postgres(settings: Settings, report: HealthReport) -> None:
    expected = [version for version, _ in available_migrations()]
    try:
        with psycopg.connect(
            settings.database_url or "", connect_timeout=max(1, round(CHECK_TIMEOUT_S))
        ) as conn:
            conn.execute(f"SET statement_timeout = {int(CHECK_TIMEOUT_S * 1000)}")
            exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL")
            applied = (
                [row[0] for row in conn.execute("SELECT version FROM schema_migrations")]
                if exists.fetchone() == (True,)
                else []
            )
    except psycopg.Error:
        report.fail("PostgreSQL is unreachable at DATABASE_URL.")
        return
    report.postgres = True
    missing = [v for v in expected if v not in applied]
    unknown = [v for v in applied if v not in expected]
    report.schema = {"expected": expected[-1], "applied": max(applied, default=None)}
    if missing:
        report.fail(f"the database schema lacks migration {missing[0]}: run `sync-worker migrate`.")
    elif unknown:
        report.fail(f"the database has migration {unknown[-1]}, newer than this release.")


def _check_redis(
    settings: Settings, report: HealthReport, *, min_workers: int, max_backlog: int | None
) -> None:
    client = redis_client(settings.redis_url or "", settings, timeout_s=CHECK_TIMEOUT_S)
    try:
        with client, client.pipeline(transaction=False) as pipe:
            for queue in QUEUES:
                pipe.llen(keys.broker_queue_key(queue))
                pipe.llen(keys.broker_queue_key(f"{queue}.DQ"))
                # Delayed messages' dead letters land here too.
                pipe.zcard(keys.broker_dead_letters_key(queue))
            pipe.time()
            pipe.zrange(keys.WORKERS_KEY, 0, -1, withscores=True)
            *counts, server_time, beats = pipe.execute()
    except INFRASTRUCTURE_ERRORS:
        report.fail("Redis is unreachable at REDIS_URL.")
        return
    report.redis = True
    for i, queue in enumerate(QUEUES):
        ready, delayed, dead = counts[3 * i : 3 * i + 3]
        report.queues[queue] = {"ready": ready, "delayed": delayed, "dead": dead}
        report.dead_letters += dead
    now_ms = server_time[0] * 1000 + server_time[1] // 1000
    report.workers = [
        {**json.loads(member), "seen_s_ago": round((now_ms - score) / 1000, 1)}
        for member, score in beats
        if now_ms - score <= HEARTBEAT_STALE_S * 1000
    ]
    for queue in QUEUES:
        serving = sum(queue in w["queues"] for w in report.workers)
        if serving < min_workers:
            report.fail(f"{serving} live worker(s) serve queue {queue}; {min_workers} required.")
        if max_backlog is not None and report.queues[queue]["ready"] > max_backlog:
            report.fail(
                f"queue {queue} holds {report.queues[queue]['ready']} ready messages"
                f" (more than {max_backlog})."
            )
