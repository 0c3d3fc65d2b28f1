"""examples/webapp.py, run as a web developer would (uvicorn, real HTTP) against a real
worker: register, sync, three browsers streaming progress over one Redis subscription."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
import requests

from sync_worker import keys
from sync_worker.simulator import steam_id_for
from tests.conftest import wait_for
from tests.workers import ExampleServer


@pytest.fixture
def webapp(subprocess_env, tmp_path) -> Iterator[str]:
    server = ExampleServer(
        "webapp:app",
        subprocess_env,
        tmp_path / "webapp.log",
        "--timeout-graceful-shutdown",  # as documented: followed streams end
        "3",
    ).wait_up("/", "the example web service")
    yield server.url
    # Shut down cleanly (streams still open included); no client that left, nor the
    # shutdown, logged a traceback.
    log = server.stop()
    assert "Application shutdown complete." in log
    assert "Traceback" not in log and "RuntimeError" not in log, log


def read_stream(url: str, into: list[dict]) -> None:
    """A browser's EventSource: every `data:` line until the server ends the stream."""
    with requests.get(url, stream=True, timeout=60) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines(decode_unicode=True):
            if line.startswith("data: "):
                into.append(json.loads(line.removeprefix("data: ")))


def test_register_sync_and_stream_progress_to_three_browsers(runtime, webapp, worker):
    steam_id = steam_id_for(420, seed=71)
    created = requests.post(f"{webapp}/libraries", json={"steam_id": steam_id}, timeout=10)
    assert created.status_code == 201, created.text
    library_id = created.json()["library_id"]

    browsers: list[list[dict]] = [[], [], []]
    readers = [
        threading.Thread(target=read_stream, args=(f"{webapp}/libraries/{library_id}/events", b))
        for b in browsers
    ]
    for reader in readers:
        reader.start()
    numsub = lambda: dict(runtime.redis.pubsub_numsub(keys.PROGRESS_CHANNEL))[  # noqa: E731
        keys.PROGRESS_CHANNEL.encode()
    ]
    wait_for(lambda: numsub() == 1, 10, "the web service's subscription")

    queued = requests.post(f"{webapp}/libraries/{library_id}/sync", timeout=10)
    assert queued.status_code == 202 and len(queued.json()["message_id"]) == 36
    for reader in readers:
        reader.join(timeout=60)
        assert not reader.is_alive(), "the stream did not end after the sync"

    assert numsub() == 1  # three browsers, one Redis subscription
    assert browsers[0] == browsers[1] == browsers[2]
    statuses = [event["status"] for event in browsers[0]]
    assert statuses[0] == "queued" and statuses[-1] == "completed"
    assert "syncing" in statuses
    assert browsers[0][-1]["games_processed"] == browsers[0][-1]["total_games"] == 420

    status = requests.get(f"{webapp}/libraries/{library_id}/status", timeout=10).json()
    assert status["status"] == "completed" and status["progress"] == 100


def test_errors_are_json_with_their_code_and_a_fitting_status(runtime, webapp, worker):
    unknown = requests.post(f"{webapp}/libraries/{uuid.uuid4()}/sync", timeout=10)
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "unknown_library"
    bad = requests.post(f"{webapp}/libraries", json={"steam_id": "7656119800"}, timeout=10)
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_steam_id"
    no_stream = requests.get(f"{webapp}/libraries/{uuid.uuid4()}/events", timeout=10)
    assert no_stream.status_code == 404
    assert "EventSource" in requests.get(webapp, timeout=10).text


def test_validation_errors_and_the_schema_are_documented(webapp):
    """FastAPI's own validation errors take the documented shape; the OpenAPI schema lists
    every error answer, the event model and the SSE content type."""
    missing = requests.post(f"{webapp}/libraries", json={}, timeout=10)
    assert missing.status_code == 422
    assert missing.json()["error"]["code"] == "invalid_request"
    assert "steam_id" in missing.json()["error"]["message"]

    schema = requests.get(f"{webapp}/openapi.json", timeout=10).json()
    sync_answers = schema["paths"]["/libraries/{library_id}/sync"]["post"]["responses"]
    assert {"202", "404", "422", "503"} <= set(sync_answers)
    events = schema["paths"]["/libraries/{library_id}/events"]["get"]["responses"]["200"]
    event_schema = events["content"]["text/event-stream"]["schema"]
    assert {"library_id", "status", "progress"} <= set(event_schema["required"])
    assert "application/json" not in events["content"]


def test_clients_leaving_mid_stream_and_a_shutdown_with_streams_open_end_cleanly(
    runtime, register, webapp
):
    """Browsers closing a followed stream leave no traceback (checked when the fixture's
    server stops, with two more streams still open)."""
    library_id = register(steam_id_for(3, seed=73))
    url = f"{webapp}/libraries/{library_id}/events?follow=true"
    for _ in range(3):
        with requests.get(url, stream=True, timeout=10) as response:
            assert response.status_code == 200
    kept = [requests.get(url, stream=True, timeout=30) for _ in range(2)]
    time.sleep(0.5)  # the server is streaming to them when the fixture stops it
    assert all(r.status_code == 200 for r in kept)
