"""A throwaway environment: embedded servers, a scratch database and Redis db, the simulator.

The demo and the benchmarks each run in one. The scratch database and Redis db are
emptied on entry, so runs never see each other's data nor touch anyone else's.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from pydantic import SecretStr

from .errors import ConfigurationError
from .local import EmbeddedServers
from .runtime import Runtime, set_runtime
from .settings import Settings, use_settings
from .simulator import SimulatorServer
from .store.migrations import migrate


@contextmanager
def sandbox(
    base: Settings, *, database: str, redis_db: int, api_key: str
) -> Iterator[tuple[Runtime, SimulatorServer]]:
    """Install a runtime on a wiped scratch database with the simulator as Steam; undo on exit."""
    if base.is_production:
        raise ConfigurationError("sandboxes wipe their database: they do not run in production.")
    servers = EmbeddedServers(base.sync_worker_home)
    urls = servers.acquire()
    servers.ensure_database(urls, database)
    with SimulatorServer(api_key=api_key) as simulator:
        settings = base.model_copy(
            update={
                "database_url": urls.database_url(database),
                "redis_url": urls.redis_url(redis_db),
                "steam_api_key": SecretStr(api_key),
                "steam_api_base_url": simulator.url,
                "steam_store_base_url": simulator.url,
                "gog_auth_base_url": simulator.url,
                "gog_embed_base_url": simulator.url,
                "gog_www_base_url": simulator.url,
            }
        )
        use_settings(settings)
        runtime = Runtime(settings)
        set_runtime(runtime)
        try:
            runtime.redis.flushdb()
            with runtime.pool.connection() as conn:
                conn.execute("DROP SCHEMA public CASCADE")
                conn.execute("CREATE SCHEMA public")
                conn.commit()
                migrate(conn)
            yield runtime, simulator
        finally:
            set_runtime(None)
            use_settings(None)
