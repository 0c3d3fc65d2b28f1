"""Shared bench setup: embedded servers, a dedicated database and Redis db, the simulator."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from sync_worker.runtime import Runtime
from sync_worker.sandbox import sandbox
from sync_worker.settings import Settings
from sync_worker.simulator import SimulatorServer

BENCH_DATABASE = "sync_worker_bench"
BENCH_REDIS_DB = 3
BENCH_KEY = "bench-key"

T = TypeVar("T")


@contextmanager
def bench_runtime() -> Iterator[tuple[Runtime, SimulatorServer]]:
    """A runtime on an emptied bench database, and a running simulator."""
    base = Settings(_env_file=None, log_level="WARNING")  # type: ignore[call-arg]
    with sandbox(base, database=BENCH_DATABASE, redis_db=BENCH_REDIS_DB, api_key=BENCH_KEY) as env:
        yield env


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


@contextmanager
def simulator_process(runtime: Runtime) -> Iterator[Runtime]:
    """The runtime re-pointed at a simulator in its own process.

    A simulator thread in the measuring process competes for the GIL with the parsing
    thread on every chunk it sends (a 10 MB answer is ~160 hand-overs): the figures
    would include that, which a real Steam never costs.
    """
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sync_worker.cli",
            "simulator",
            "--port=0",
            f"--api-key={BENCH_KEY}",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        url = child.stdout.readline().split()[3]  # "Steam simulator on <url> (key ...)"
        settings = runtime.settings.model_copy(
            update={"steam_api_base_url": url, "steam_store_base_url": url}
        )
        moved = Runtime(settings)
        try:
            yield moved
        finally:
            moved.close()
    finally:
        child.terminate()
        child.wait(timeout=10)


def wait(predicate: Callable[[], T], timeout_s: float, what: str, poll_s: float = 0.05) -> T:
    """The predicate's first truthy value, polled every `poll_s`; SystemExit after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll_s)
    raise SystemExit(f"timed out waiting for {what}")


def completed_runs(runtime: Runtime) -> int:
    """How many sync runs have completed so far."""
    with runtime.pool.connection() as conn:
        [(done,)] = conn.execute(
            "SELECT count(*) FROM sync_runs WHERE status = 'completed'"
        ).fetchall()
    return int(done)
