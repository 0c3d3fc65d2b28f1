"""examples/socketio_bridge.py, two bridge processes (uvicorn) sharing python-socketio's
Redis manager: two real Socket.IO clients, one on each, watch one library and both get
the same timeline, ending in `completed`."""

from __future__ import annotations

import functools
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import socketio

from sync_worker import keys
from sync_worker.client import request_sync
from sync_worker.simulator import steam_id_for
from tests.conftest import free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def bridges(subprocess_env, tmp_path) -> Iterator[list[str]]:
    """Two bridge processes; their logs are checked for tracebacks when they stop."""
    started: list[tuple[subprocess.Popen[bytes], Path]] = []
    urls = []
    for n in range(2):
        port = free_port()
        log_path = tmp_path / f"bridge{n}.log"
        with log_path.open("w") as log:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "socketio_bridge:app",
                    "--app-dir",
                    "examples",
                    "--port",
                    str(port),
                ],
                cwd=ROOT,
                env=subprocess_env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        started.append((process, log_path))
        urls.append(f"http://127.0.0.1:{port}")

    def up(url: str, process: subprocess.Popen[bytes], log_path: Path) -> bool:
        try:
            return requests.get(f"{url}/socket.io/?EIO=4&transport=polling", timeout=1).ok
        except requests.ConnectionError:
            assert process.poll() is None, log_path.read_text()
            return False

    for url, (process, log_path) in zip(urls, started, strict=True):
        wait_for(functools.partial(up, url, process, log_path), 30, "a Socket.IO bridge")
    yield urls
    for process, log_path in started:
        process.terminate()
        assert process.wait(timeout=15) in (0, -signal.SIGTERM), log_path.read_text()
        assert "Traceback" not in log_path.read_text(), log_path.read_text()


def test_two_clients_on_two_bridges_see_the_same_timeline(runtime, register, bridges, worker):
    library_id = register(steam_id_for(300, seed=72))
    wait_for(lambda: runtime.redis.zcard(keys.WORKERS_KEY), 30, "the worker's heartbeat")
    timelines: list[list[dict]] = [[], []]
    ended = [threading.Event(), threading.Event()]
    clients = []
    for url, timeline, done in zip(bridges, timelines, ended, strict=True):
        client = socketio.Client()

        @client.on("progress")
        def received(event: dict, timeline=timeline, done=done) -> None:
            timeline.append(event)
            if event["status"] == "completed":
                done.set()

        client.connect(url, wait_timeout=10)
        assert client.call("watch", library_id, timeout=10) == {"library_id": library_id}
        assert client.call("watch", "not-a-library", timeout=10)["error"]["code"] == (
            "unknown_library"
        )
        clients.append(client)

    assert request_sync(library_id)  # the package's worker runs it
    for done in ended:
        assert done.wait(60), timelines
    for client in clients:
        client.disconnect()

    first, second = timelines
    assert first[0]["status"] == "never_synced"  # the current state, at once
    queued = next(e for e in first if e["status"] == "queued")
    assert (queued["queue"], queued["workers"]) == ("high", 1)  # one live worker can run it
    assert [e["status"] for e in first if e["status"] == "syncing"]  # progress came through
    assert first[-1]["status"] == "completed" and first[-1]["games_processed"] == 300
    # Each process forwards each event once to its own clients: same events, no doubles.
    assert first == second
    assert len({(e["status"], e["games_processed"]) for e in first}) == len(first)
