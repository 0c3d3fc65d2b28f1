"""examples/socketio_bridge.py, two bridge processes (uvicorn) sharing python-socketio's
Redis manager: two real Socket.IO clients, one on each, watch one library and both get
the same timeline, ending in `completed`."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import socketio

from sync_worker import keys
from sync_worker.client import request_sync
from sync_worker.simulator import steam_id_for
from tests.conftest import wait_for
from tests.workers import ExampleServer


@pytest.fixture
def bridges(subprocess_env, tmp_path) -> Iterator[list[str]]:
    """Two bridge processes; their logs are checked for tracebacks when they stop."""
    servers = [
        ExampleServer("socketio_bridge:app", subprocess_env, tmp_path / f"bridge{n}.log")
        for n in range(2)
    ]
    for server in servers:
        server.wait_up("/socket.io/?EIO=4&transport=polling", "a Socket.IO bridge")
    yield [server.url for server in servers]
    for server in servers:
        log = server.stop()
        assert "Traceback" not in log, log


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
