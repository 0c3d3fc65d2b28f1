"""One real worker process for every test in this package."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.workers import WorkerGroup


@pytest.fixture(scope="package")
def worker(runtime, subprocess_env, tmp_path_factory) -> Iterator[WorkerGroup]:
    """`dramatiq sync_worker.worker` on high and default, with short retry and backoff settings."""
    group = WorkerGroup(subprocess_env, tmp_path_factory.mktemp("worker") / "worker.log")
    yield group.wait_ready()
    group.kill()


@pytest.fixture(autouse=True)
def _settled(settled_broker: None) -> None:
    """Every test here starts on a fresh broker and leaves no job behind."""
