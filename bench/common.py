"""Shared bench setup: embedded servers, a dedicated database and Redis db, the simulator."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from pydantic import SecretStr

from sync_worker.local import EmbeddedServers
from sync_worker.runtime import Runtime, set_runtime
from sync_worker.settings import Settings, use_settings
from sync_worker.simulator import SimulatorServer
from sync_worker.store.migrations import migrate

BENCH_DATABASE = "sync_worker_bench"
BENCH_REDIS_DB = 3
BENCH_KEY = "bench-key"


@contextmanager
def bench_runtime() -> Iterator[tuple[Runtime, SimulatorServer]]:
    """A runtime on an emptied bench database, and a running simulator."""
    base = Settings(_env_file=None, log_level="WARNING")  # type: ignore[call-arg]
    servers = EmbeddedServers(base.sync_worker_home)
    urls = servers.acquire()
    servers.ensure_database(urls, BENCH_DATABASE)
    with SimulatorServer(api_key=BENCH_KEY) as simulator:
        settings = base.model_copy(
            update={
                "database_url": urls.database_url(BENCH_DATABASE),
                "redis_url": urls.redis_url(BENCH_REDIS_DB),
                "steam_api_key": SecretStr(BENCH_KEY),
                "steam_api_base_url": simulator.url,
                "steam_store_base_url": simulator.url,
            }
        )
        use_settings(settings)
        runtime = Runtime(settings)
        set_runtime(runtime)
        runtime.redis.flushdb()
        with runtime.pool.connection() as conn:
            conn.execute("DROP SCHEMA public CASCADE")
            conn.execute("CREATE SCHEMA public")
            conn.commit()
            migrate(conn)
        try:
            yield runtime, simulator
        finally:
            set_runtime(None)
            use_settings(None)


def child_env(runtime: Runtime) -> dict[str, str]:
    """Environment for a `sync-worker` child process on the bench servers."""
    s = runtime.settings
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_", "STEAM_"))
    }
    env.update(
        DATABASE_URL=str(s.database_url),
        REDIS_URL=str(s.redis_url),
        STEAM_API_KEY=BENCH_KEY,
        STEAM_API_BASE_URL=s.steam_api_base_url,
        LOG_LEVEL="WARNING",
    )
    return env
