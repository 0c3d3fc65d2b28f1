"""The per-process connections: one Redis client and one PostgreSQL pool, built from settings.

URL resolution lives here: explicit `DATABASE_URL` / `REDIS_URL` win; outside production
the missing ones come from the embedded servers; in production a missing URL is an error.
"""

from __future__ import annotations

import threading

import redis
from psycopg_pool import ConnectionPool

from .errors import ConfigurationError
from .local import EmbeddedServers
from .settings import Settings, get_settings

EMBEDDED_DATABASE = "sync_worker"


def resolve_settings(settings: Settings) -> Settings:
    """Return settings whose database and Redis URLs are concrete, starting embedded servers if needed."""
    if settings.database_url and settings.redis_url:
        return settings
    if settings.is_production:
        missing = [
            n
            for n, v in (("DATABASE_URL", settings.database_url), ("REDIS_URL", settings.redis_url))
            if not v
        ]
        raise ConfigurationError(f"{' and '.join(missing)} must be set in production.")
    servers = EmbeddedServers(settings.sync_worker_home)
    urls = servers.acquire()
    database_url = settings.database_url
    if not database_url:
        servers.ensure_database(urls, EMBEDDED_DATABASE)
        database_url = urls.database_url(EMBEDDED_DATABASE)
    return settings.model_copy(
        update={"database_url": database_url, "redis_url": settings.redis_url or urls.redis_url()}
    )


class Runtime:
    """Connections shared by every thread of this process (both clients are thread-safe)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = resolve_settings(settings)
        assert self.settings.redis_url and self.settings.database_url
        self.redis: redis.Redis = redis.Redis.from_url(self.settings.redis_url)
        self.pool = ConnectionPool(
            self.settings.database_url,
            min_size=1,
            max_size=self.settings.db_pool_max_size,
            open=True,
            name="sync-worker",
        )

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
