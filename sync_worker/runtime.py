"""The per-process connections: one Redis client and one PostgreSQL pool, built from settings.

URL resolution lives here: explicit `DATABASE_URL` / `REDIS_URL` win; outside production
the missing ones come from the embedded servers; in production a missing URL is an error.
The embedded default database is migrated on first use. Both clients fail fast (seconds, not minutes) when their server is unreachable.
"""

from __future__ import annotations

import threading
import time
import weakref
from typing import Any

import psycopg
import redis
from psycopg_pool import ConnectionPool
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from .errors import ConfigurationError, DatabaseUnavailable, RedisUnavailable
from .local import EmbeddedServers
from .ratelimit import RateLimiter
from .settings import Settings, get_settings
from .store.migrations import migrate

EMBEDDED_DATABASE = "sync_worker"
# Server-side guards (milliseconds): a statement that hangs, or a transaction left open by
# a stalled worker, must not hold a library's row locks for ever.
STATEMENT_TIMEOUT_MS = 60_000
IDLE_IN_TRANSACTION_TIMEOUT_MS = 10_000
#: A connection back in the pool for less than this is handed out again without a check.
RECHECK_IDLE_S = 1.0


def resolve_settings(settings: Settings, *, need_redis: bool = True) -> Settings:
    """Return settings whose database and Redis URLs are concrete, starting embedded servers
    if needed. `need_redis=False` (migrations) lets production go without REDIS_URL."""
    if settings.database_url and (settings.redis_url or not need_redis):
        return settings
    if settings.is_production:
        required = [("DATABASE_URL", settings.database_url)]
        if need_redis:
            required.append(("REDIS_URL", settings.redis_url))
        missing = [name for name, value in required if not value]
        raise ConfigurationError(f"{' and '.join(missing)} must be set in production.")
    servers = EmbeddedServers(settings.sync_worker_home)
    urls = servers.acquire()
    database_url = settings.database_url
    if not database_url:
        # The embedded default is ready to use by any command, without `migrate` first.
        # Production (an explicit DATABASE_URL) migrates in its release phase only.
        servers.ensure_database(urls, EMBEDDED_DATABASE)
        database_url = urls.database_url(EMBEDDED_DATABASE)
        with psycopg.connect(database_url) as conn:
            migrate(conn)
    return settings.model_copy(
        update={"database_url": database_url, "redis_url": settings.redis_url or urls.redis_url()}
    )


def redis_client(url: str, settings: Settings, *, timeout_s: float | None = None) -> redis.Redis:
    """A Redis client that gives up on an unreachable server within a few seconds.

    `timeout_s` also bounds every command and turns retries off (health checks).
    """
    retry = Retry(ExponentialBackoff(cap=0.5, base=0.1), 0 if timeout_s else 2)
    return redis.Redis.from_url(url, retry=retry, **redis_options(url, settings, timeout_s))


def redis_options(url: str, settings: Settings, timeout_s: float | None = None) -> dict[str, Any]:
    """Timeouts and TLS options, the same for redis-py's sync and asyncio clients."""
    options: dict[str, Any] = {
        "socket_connect_timeout": timeout_s or settings.redis_connect_timeout_s,
    }
    if timeout_s:
        options["socket_timeout"] = timeout_s
    if url.startswith("rediss://"):
        # Heroku Redis presents a self-signed certificate: REDIS_TLS_VERIFY=false accepts it
        # (the connection stays encrypted, but the server is not authenticated).
        options["ssl_cert_reqs"] = "required" if settings.redis_tls_verify else "none"
    return options


class CheckedPool(ConnectionPool):
    """A pool that checks a connection on checkout only once it has sat idle RECHECK_IDLE_S.

    The check is a round trip, and a sync checks out a connection for each of its
    transactions (six for a small library): one returned moments ago is as alive as a
    check would show. A connection that sat longer (the server may have restarted since)
    is checked and, if dead, replaced rather than handed out. If the server dies within
    the second, the next statement fails like any statement would: an outage, waited out.
    """

    def __init__(self, conninfo: str, **kwargs: Any) -> None:
        self._returned_at: weakref.WeakKeyDictionary[psycopg.Connection[Any], float] = (
            weakref.WeakKeyDictionary()
        )
        super().__init__(conninfo, check=self._check_if_idle, **kwargs)

    def putconn(self, conn: psycopg.Connection[Any]) -> None:
        """Return a connection, noting when."""
        self._returned_at[conn] = time.monotonic()
        super().putconn(conn)

    def _check_if_idle(self, conn: psycopg.Connection[Any]) -> None:
        returned = self._returned_at.get(conn)
        if returned is None or time.monotonic() - returned >= RECHECK_IDLE_S:
            ConnectionPool.check_connection(conn)


class Runtime:
    """Connections shared by every thread of this process (both clients are thread-safe)."""

    def __init__(self, settings: Settings) -> None:
        """Raises DatabaseUnavailable at once (before a pool logs its retries) when
        PostgreSQL does not answer within DB_CONNECT_TIMEOUT_S."""
        self.settings = resolve_settings(settings)
        assert self.settings.redis_url and self.settings.database_url
        self._check_database(round(self.settings.db_connect_timeout_s))
        self.redis = redis_client(self.settings.redis_url, self.settings)
        self.pool = CheckedPool(
            self.settings.database_url,
            min_size=1,
            max_size=self.settings.db_pool_max_size,
            kwargs={
                "connect_timeout": max(1, round(self.settings.db_connect_timeout_s)),
                "options": f"-c statement_timeout={STATEMENT_TIMEOUT_MS}"
                f" -c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_TIMEOUT_MS}",
            },
            timeout=2 * self.settings.db_connect_timeout_s,
            open=True,
            name="sync-worker",
        )
        #: Set when this process is shutting down: running syncs stop at their next batch.
        self.stopping = threading.Event()

    def limiter(self) -> RateLimiter:
        """The shared Steam budgets as this process's jobs use them: past
        RATE_LIMIT_MAX_WAIT_S a sync is deferred (Deferrals re-enqueues it) and a
        registration refused, and waits end early when the process is stopping."""
        return RateLimiter.from_settings(
            self.redis,
            self.settings,
            max_wait_s=self.settings.rate_limit_max_wait_s,
            interrupt=self.stopping,
        )

    def check(self, within_s: float = 5.0) -> None:
        """Raise RedisUnavailable / DatabaseUnavailable unless both servers answer within `within_s`."""
        deadline = time.monotonic() + within_s
        while True:
            try:
                self.redis.ping()
                break
            except redis.exceptions.InvalidResponse:
                raise RedisUnavailable(
                    "The server at REDIS_URL does not answer as Redis does (another service's port?)."
                ) from None
            except (redis.ConnectionError, redis.TimeoutError):
                if time.monotonic() > deadline:
                    raise RedisUnavailable("Redis is unreachable at REDIS_URL.") from None
                time.sleep(0.5)
        self._check_database(round(deadline - time.monotonic()))

    def _check_database(self, timeout_s: int) -> None:
        try:
            with psycopg.connect(
                self.settings.database_url or "", connect_timeout=max(1, timeout_s)
            ) as conn:
                conn.execute("SELECT 1")
        except psycopg.OperationalError:
            raise DatabaseUnavailable("PostgreSQL is unreachable at DATABASE_URL.") from None

    def close(self) -> None:
        """Close the pool and the Redis connections."""
        self.pool.close()
        self.redis.close()


_lock = threading.Lock()
_runtime: Runtime | None = None


def get_runtime() -> Runtime:
    """This process's runtime, created on first use from `get_settings()`."""
    global _runtime
    with _lock:
        if _runtime is None:
            _runtime = Runtime(get_settings())
        return _runtime


def set_runtime(runtime: Runtime | None) -> None:
    """Install a runtime (tests, the CLI), closing the previous one."""
    global _runtime
    with _lock:
        if _runtime is not None and _runtime is not runtime:
            _runtime.close()
        _runtime = runtime
