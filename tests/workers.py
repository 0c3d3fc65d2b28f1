"""The worker harness shared by the test packages: `dramatiq sync_worker.worker` started
exactly as the Procfile starts it, in its own process group, helpers that wait for the
broker to settle and collect a sync's events, and the examples served as documented."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dramatiq
import requests

from sync_worker import client
from tests.conftest import assert_no_secret, free_port, wait_for

ROOT = Path(__file__).resolve().parents[1]


class WorkerGroup:
    """One `dramatiq sync_worker.worker` command and its worker processes."""

    def __init__(
        self,
        env: dict[str, str],
        log_path: Path,
        *,
        processes: int = 1,
        threads: int = 2,
        queues: tuple[str, ...] = ("high", "default"),
        shutdown_timeout_ms: int = 25_000,
    ) -> None:
        self.log_path = log_path
        self.env = env
        with log_path.open("w") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "dramatiq",
                    "sync_worker.worker",
                    "--processes",
                    str(processes),
                    "--threads",
                    str(threads),
                    "--queues",
                    *queues,
                    "--worker-shutdown-timeout",
                    str(shutdown_timeout_ms),
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,  # its own process group, like a dyno
            )
        self.processes = processes

    def wait_ready(self, timeout_s: float = 60) -> WorkerGroup:
        """Until every worker process said it is ready (fails at once if the group died).

        It reads Dramatiq's "ready for action" line, logged at INFO: LOG_LEVEL must allow it.
        """

        def booted() -> bool:
            if self.process.poll() is not None:
                self.process.wait()
                raise AssertionError(f"the worker group exited:\n{self.text()[-3000:]}")
            return self.text().count("Worker process is ready for action") >= self.processes

        try:
            wait_for(booted, timeout_s, "the worker processes to boot")
        except AssertionError:
            self.kill()
            raise
        return self

    def signal(self, sig: signal.Signals) -> float:
        """Send `sig` to every process of the group (as Heroku does); return when it was sent."""
        os.killpg(self.process.pid, sig)
        return time.monotonic()

    def wait(self, timeout_s: float = 60) -> int:
        """The main process's exit status."""
        return self.process.wait(timeout=timeout_s)

    def text(self) -> str:
        """Everything the group logged so far."""
        return self.log_path.read_text(errors="replace")

    def events(self, event: str) -> list[dict[str, Any]]:
        """The JSON log lines whose event is `event`."""
        found = []
        for line in self.text().splitlines():
            if line.startswith("{") and f'"{event}"' in line:
                record = json.loads(line)
                if record.get("event") == event:
                    found.append(record)
        return found

    def stop(self, timeout_s: float = 60) -> int:
        """SIGTERM the group, as a deploy does, and wait for it to exit."""
        self.signal(signal.SIGTERM)
        return self.wait(timeout_s)

    def kill(self) -> None:
        """SIGKILL whatever is left of the group; its log must hold no key, even at DEBUG."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
        assert_no_secret(self.text(), self.log_path.name, self.env.get("STEAM_API_KEY"))


def tick_message() -> dramatiq.Message[None]:
    """The scheduler's tick as periodiq sends it, scheduled now."""
    return dramatiq.Message(
        queue_name="default",
        actor_name="schedule_auto_syncs",
        args=(),
        kwargs={},
        options={"scheduled_at": datetime.now(UTC).isoformat()},
    )


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


class ExampleServer:
    """One app of `examples/` under uvicorn, run as its docstring runs it, on a free port."""

    def __init__(self, app: str, env: dict[str, str], log_path: Path, *uvicorn_args: str):
        self.log_path = log_path
        port = str(free_port())
        self.url = f"http://127.0.0.1:{port}"
        with log_path.open("w") as log:
            command = [sys.executable, "-m", "uvicorn", app, "--app-dir", "examples"]
            self.process = subprocess.Popen(
                [*command, "--port", port, *uvicorn_args],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_up(self, path: str, what: str) -> ExampleServer:
        """Until GET `path` answers 200 (fails at once if the server died)."""

        def up() -> bool:
            try:
                return requests.get(f"{self.url}{path}", timeout=1).status_code == 200
            except requests.ConnectionError:
                assert self.process.poll() is None, self.log_path.read_text()
                return False

        wait_for(up, 30, what)
        return self

    def stop(self) -> str:
        """SIGTERM it, as a deploy does; uvicorn shuts down cleanly, then re-raises SIGTERM
        for the default handler. Returns what it logged."""
        self.process.terminate()
        assert self.process.wait(timeout=15) in (0, -signal.SIGTERM), self.log_path.read_text()
        return self.log_path.read_text()
