"""One real worker process for every test in this package, plus event collection helpers."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from sync_worker import client
from sync_worker.broker import reset_broker
from tests.conftest import running_worker, wait_for


@pytest.fixture(scope="package")
def worker(runtime, subprocess_env, tmp_path_factory) -> Iterator[subprocess.Popen[str]]:
    """`dramatiq sync_worker.worker` on high and default, with short retry and backoff settings."""
    log_path = tmp_path_factory.mktemp("worker") / "worker.log"
    with running_worker(subprocess_env, log_path) as process:
        process.log_path = log_path  # type: ignore[attr-defined]
        yield process


@pytest.fixture(autouse=True)
def fresh_broker(runtime) -> Iterator[None]:
    """The test process's broker on the test Redis database; no work may outlive the test."""
    reset_broker()
    yield
    # The next test empties the tables: a job still running would collide with that.
    wait_for(lambda: idle(runtime), 30, "the worker to finish the test's jobs")
    reset_broker()


def idle(runtime) -> bool:
    """No message queued, delayed or in a worker's hands."""
    queues = ("high", "high.DQ", "default", "default.DQ")
    return settled(runtime) and all(runtime.redis.llen(f"dramatiq:{q}") == 0 for q in queues)


def sync_and_collect(
    library_id: str, timeout_s: float = 60, **request: Any
) -> list[dict[str, Any]]:
    """Request a sync and collect its events until a final one (queued first)."""
    client.request_sync(library_id, **request)
    return list(client.iter_progress(library_id, timeout_s=timeout_s))


def settled(runtime) -> bool:
    """True once no worker holds a message unacknowledged: every ack or dead-letter is done."""
    return all(
        runtime.redis.scard(key) == 0 for key in runtime.redis.scan_iter("dramatiq:__acks__.*")
    )


def dead_letters(runtime, queue: str = "high") -> int:
    """Messages in Dramatiq's dead-letter set of a queue, once the broker has settled."""
    wait_for(lambda: settled(runtime), 10, "the worker to ack or dead-letter")
    return int(runtime.redis.zcard(f"dramatiq:{queue}.XQ"))
