"""Messages through the real Redis broker and a real `dramatiq` worker process."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import dramatiq
import pytest

from sync_worker import client
from sync_worker.broker import get_broker, reset_broker
from sync_worker.simulator import steam_id_for
from tests.conftest import fetch_all


@pytest.fixture(scope="module")
def worker(runtime, subprocess_env, tmp_path_factory) -> Iterator[subprocess.Popen[str]]:
    """`dramatiq sync_worker.worker` on the high and default queues, as the Procfile runs it."""
    log = (tmp_path_factory.mktemp("worker") / "worker.log").open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dramatiq",
            "sync_worker.worker",
            "--processes",
            "1",
            "--threads",
            "2",
            "--queues",
            "high",
            "default",
            "--worker-shutdown-timeout",
            "5000",
        ],
        env={**subprocess_env, "LOG_LEVEL": "INFO"},
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    yield process
    process.terminate()
    process.wait(timeout=30)
    log.close()


@pytest.fixture(autouse=True)
def fresh_broker(runtime) -> Iterator[None]:
    """Each test builds its broker on the test Redis database."""
    reset_broker()
    yield
    reset_broker()


def wait_for_status(runtime, library_id: str, statuses: set[str], timeout_s: float = 60) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        [(status,)] = fetch_all(
            runtime, "SELECT sync_status FROM user_libraries WHERE library_id = %s", library_id
        )
        if status in statuses:
            return str(status)
        time.sleep(0.1)
    raise AssertionError(f"library still {status!r} after {timeout_s} s")


def test_requested_syncs_are_processed_by_a_real_worker(runtime, register, worker, sim):
    """A manual (high) and a scheduled (default) request both complete with exact rows."""
    manual_id = register(steam_id_for(700, seed=41))
    scheduled_id = register(steam_id_for(90, seed=42))

    client.request_sync(manual_id)
    client.request_sync(scheduled_id, sync_type="scheduled")

    assert wait_for_status(runtime, manual_id, {"completed", "failed"}) == "completed"
    assert wait_for_status(runtime, scheduled_id, {"completed", "failed"}) == "completed"
    runs = dict(
        fetch_all(runtime, "SELECT library_id::text, sync_type || ':' || new_games FROM sync_runs")
    )
    assert runs == {manual_id: "manual:700", scheduled_id: "scheduled:90"}
    assert client.get_status(manual_id)["status"] == "completed"


def test_a_malformed_message_fails_at_once_without_retries(runtime, worker):
    """Bad arguments are permanent: dead-lettered on the first attempt, never retried."""
    broker = get_broker()
    message = dramatiq.Message(
        queue_name="high",
        actor_name="sync_library",
        args=(42,),
        kwargs={"sync_type": "weekly"},
        options={},
    )
    broker.enqueue(message)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not runtime.redis.zcard("dramatiq:high.XQ"):
        time.sleep(0.1)
    assert runtime.redis.zcard("dramatiq:high.XQ") == 1  # Dramatiq's dead-letter set for `high`
    assert runtime.redis.zcard("dramatiq:high.DQ") == 0  # and nothing scheduled for a retry
