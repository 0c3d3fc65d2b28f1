"""Is the service healthy? Redis, PostgreSQL, schema, queues, dead letters, live workers.

One check, used by `sync-worker health` and the ops server's `/health`. It never calls
Steam, uses its own connections with a one-second budget each (the ops server keeps them
from one check to the next), and answers in well under a second when the servers are up.

Workers announce themselves in `sync:workers` (a sorted set scored by the time of their
last heartbeat, see `heartbeats`).

A queue's backlog is everything not yet done: ready messages, those the workers have
prefetched (Dramatiq moves a worker's next messages, and delayed ones, out of the queue
list into its own acknowledgement set), and delayed ones (`<queue>.DQ.msgs`).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg
import redis

from . import keys
from .heartbeats import fresh_workers
from .infrastructure import INFRASTRUCTURE_ERRORS
from .runtime import redis_client
from .sending import QUEUES, serving
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
    unserved_queues: list[str] = field(default_factory=list)  # no live worker can run them
    running_syncs: dict[str, Any] = field(default_factory=dict)  # count, oldest_s
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
        if self._settings.is_production and self._settings.steam_api_key is None:
            report.fail("STEAM_API_KEY is not set: no sync can run.")
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
            if applied:
                count, oldest_s = conn.execute(
                    "SELECT count(*), extract(epoch FROM now() - min(started_at))::float8"
                    " FROM sync_runs WHERE status = 'running'"
                ).fetchone() or (0, None)
                report.running_syncs = {
                    "count": count,
                    "oldest_s": round(oldest_s, 1) if oldest_s is not None else None,
                }
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
                pipe.hlen(f"{keys.broker_queue_key(queue)}.msgs")  # ready and prefetched
                pipe.hlen(f"{keys.broker_queue_key(queue)}.DQ.msgs")  # delayed, wherever held
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
        ready, held, delayed, dead = counts[4 * i : 4 * i + 4]
        report.queues[queue] = {
            "ready": ready,
            "prefetched": max(held - ready, 0),
            "delayed": delayed,
            "backlog": max(held, ready) + delayed,
            "dead": dead,
        }
        report.dead_letters += dead
    report.workers = fresh_workers(server_time, beats)
    served = {queue: serving(report.workers, queue) for queue in QUEUES}
    report.unserved_queues = [queue for queue, count in served.items() if count == 0]
    for queue, count in served.items():
        if count < min_workers:
            report.fail(f"{count} live worker(s) serve queue {queue}; {min_workers} required.")
        backlog = report.queues[queue]["backlog"]
        if max_backlog is not None and backlog > max_backlog:
            report.fail(
                f"queue {queue} holds a backlog of {backlog} messages (ready, prefetched and"
                f" delayed; more than {max_backlog})."
            )
