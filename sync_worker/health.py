"""Is the service healthy? Redis, PostgreSQL, schema, queues, dead letters, live workers.

One check, used by `sync-worker health` and the ops server's `/health`. It never calls
Steam, uses its own connections with a one-second budget each (the ops server keeps them
from one check to the next), and answers in well under a second when the servers are up.

Workers announce themselves in `sync:workers` (a sorted set scored by the time of their
last heartbeat, see `heartbeats`).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg
import redis

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
    """Check everything once; `min_workers` live workers per queue and at most
    `max_backlog` ready messages per queue are required when given. Settings' URLs must be
    resolved."""
    checker = HealthChecker(settings)
    try:
        return checker.check(min_workers=min_workers, max_backlog=max_backlog)
    finally:
        checker.close()


class HealthChecker:
    """Health checks on connections kept from one check to the next (the ops server's: a
    flood of probes must not cost PostgreSQL a connection each). Not thread-safe: one
    check at a time."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._postgres: psycopg.Connection[Any] | None = None
        self._redis = redis_client(settings.redis_url or "", settings, timeout_s=CHECK_TIMEOUT_S)

    def check(self, *, min_workers: int = 0, max_backlog: int | None = None) -> HealthReport:
        """One report (see `check_health`)."""
        started = time.monotonic()
        report = HealthReport()
        self._check_postgres(report)
        _check_redis(self._redis, report, min_workers=min_workers, max_backlog=max_backlog)
        report.elapsed_ms = round((time.monotonic() - started) * 1000, 1)
        return report

    def close(self) -> None:
        """Close both connections."""
        if self._postgres is not None:
            self._postgres.close()
        self._redis.close()

    def _check_postgres(self, report: HealthReport) -> None:
        expected = [version for version, _ in available_migrations()]
        try:
            if self._postgres is None or self._postgres.closed:
                self._postgres = psycopg.connect(
                    self._settings.database_url or "",
                    connect_timeout=max(1, round(CHECK_TIMEOUT_S)),
                    autocommit=True,
                )
                self._postgres.execute(f"SET statement_timeout = {int(CHECK_TIMEOUT_S * 1000)}")
            conn = self._postgres
            exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL")
            applied = (
                [row[0] for row in conn.execute("SELECT version FROM schema_migrations")]
                if exists.fetchone() == (True,)
                else []
            )
        except psycopg.Error as exc:
            if self._postgres is not None:
                self._postgres.close()
                self._postgres = None
            report.fail(postgres_problem(exc))
            return
        report.postgres = True
        missing = [v for v in expected if v not in applied]
        unknown = [v for v in applied if v not in expected]
        report.schema = {"expected": expected[-1], "applied": max(applied, default=None)}
        if missing:
            report.fail(
                f"the database schema lacks migration {missing[0]}: run `sync-worker migrate`."
            )
        elif unknown:
            report.fail(f"the database has migration {unknown[-1]}, newer than this release.")


def postgres_problem(exc: psycopg.Error) -> str:
    """What went wrong with PostgreSQL, in one sentence that quotes nothing of its text (a
    server's message may hold the URL): a full server is not a missing one."""
    text = str(exc).lower()
    if "too many" in text:  # "too many clients already", "... connections for role/database"
        return "PostgreSQL refuses new connections: its connection limit is reached."
    if "password authentication failed" in text or "no password supplied" in text:
        return "PostgreSQL refused the credentials in DATABASE_URL."
    if "does not exist" in text:
        return "the database or user named in DATABASE_URL does not exist."
    if "timeout" in text or "canceling statement" in text:
        return f"PostgreSQL did not answer within {CHECK_TIMEOUT_S:g} s."
    return "PostgreSQL is unreachable at DATABASE_URL."


def _check_redis(
    client: redis.Redis, report: HealthReport, *, min_workers: int, max_backlog: int | None
) -> None:
    try:
        with client.pipeline(transaction=False) as pipe:
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
