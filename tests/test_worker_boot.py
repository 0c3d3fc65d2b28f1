"""A worker that cannot work refuses to start: one line, exit 3, never "ready for action"."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest


def boot(env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "dramatiq",
            "sync_worker.worker",
            "--processes",
            "1",
            "--threads",
            "1",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result, time.monotonic() - started


@pytest.mark.parametrize(
    ("override", "code"),
    [
        ({"REDIS_URL": "redis://127.0.0.1:1/0"}, "redis_unavailable"),
        ({"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/nothing"}, "database_unavailable"),
        ({"SYNC_WORKER_ENV": "production", "STEAM_API_KEY": ""}, "configuration_error"),
        ({"SYNC_WORKER_ENV": "production", "CREDENTIALS_KEY": ""}, "configuration_error"),
        ({"CREDENTIALS_KEY": "not-a-fernet-key"}, "configuration_error"),
        ({"LOG_LEVEL": "LOUD"}, "configuration_error"),
        ({"AUTO_SYNC_CRON": "every five minutes"}, "configuration_error"),
    ],
    ids=[
        "redis down",
        "postgres down",
        "production without key",
        "production without credentials key",
        "bad credentials key",
        "bad log level",
        "bad cron",
    ],
)
def test_a_worker_that_cannot_work_exits_at_once(subprocess_env, override, code):
    """Exit status 3 within seconds, with the reason on one line."""
    env = {k: v for k, v in {**subprocess_env, **override}.items() if v != ""}
    result, elapsed_s = boot(env)

    output = result.stdout + result.stderr
    assert result.returncode == 3, output
    assert elapsed_s < 20
    assert f"sync-worker: {code}: " in output
    assert "ready for action" not in output


def test_a_worker_whose_database_never_answers_exits_within_seconds(subprocess_env, silent_server):
    """A database that accepts connections and stays silent: database_unavailable, not a hang."""
    result, elapsed_s = boot({**subprocess_env, "DATABASE_URL": silent_server})
    assert result.returncode == 3 and elapsed_s < 20
    assert "sync-worker: database_unavailable: " in result.stdout + result.stderr
