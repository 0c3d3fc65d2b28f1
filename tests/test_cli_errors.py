"""Unreachable servers and bad configuration: one line with a stable code, fast, and the
documented exit code (3); JSON on stdout for the commands that print JSON."""

from __future__ import annotations

import json
import socket
import time

import pytest

from sync_worker.simulator import steam_id_for
from tests.conftest import cli

UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"
UNREACHABLE_DATABASE = "postgresql://nobody@127.0.0.1:1/nothing"


def one_line_error(result, code: str) -> None:
    assert result.returncode == 3, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines == [lines[0]] and lines[0].startswith(f"sync-worker: {code}: "), result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("status", "--library-id", "00000000-0000-0000-0000-000000000000"),
        ("enqueue", "--steam-id", steam_id_for(5)),
        ("sync", "--steam-id", steam_id_for(5), "--json"),
    ],
    ids=["status", "enqueue", "sync"],
)
def test_unreachable_redis_is_one_line_within_seconds(subprocess_env, args):
    """redis_unavailable, exit 3, within a few seconds; JSON commands print JSON too."""
    started = time.monotonic()
    result = cli({**subprocess_env, "REDIS_URL": UNREACHABLE_REDIS}, *args)
    assert time.monotonic() - started < 10
    one_line_error(result, "redis_unavailable")
    assert json.loads(result.stdout)["error"]["code"] == "redis_unavailable"


@pytest.mark.parametrize("command", [("migrate",), ("sync", "--steam-id", steam_id_for(5))])
def test_unreachable_database_is_one_line_within_seconds(subprocess_env, command):
    """database_unavailable, exit 3, in seconds (not a 30 s pool timeout)."""
    started = time.monotonic()
    result = cli({**subprocess_env, "DATABASE_URL": UNREACHABLE_DATABASE}, *command)
    assert time.monotonic() - started < 10
    one_line_error(result, "database_unavailable")


def test_a_database_that_never_answers_is_reported_within_seconds(subprocess_env, silent_server):
    """A server that accepts but stays silent: the connect timeout, not a hang."""
    started = time.monotonic()
    result = cli({**subprocess_env, "DATABASE_URL": silent_server}, "migrate")
    assert time.monotonic() - started < 15
    one_line_error(result, "database_unavailable")


@pytest.mark.parametrize(
    ("variable", "value"), [("LOG_LEVEL", "LOUD"), ("LOG_FORMAT", "xml"), ("SYNC_BATCH_SIZE", "0")]
)
def test_bad_configuration_is_one_line_naming_the_variable(subprocess_env, variable, value):
    """configuration_error with the variable's name, exit 3, no traceback."""
    result = cli({**subprocess_env, variable: value}, "status", "--library-id", "x")
    one_line_error(result, "configuration_error")
    assert variable in result.stderr


def test_a_simulator_port_in_use_is_one_line(subprocess_env):
    """The simulator's --port taken by someone else: a clear line, exit 3."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        result = cli(subprocess_env, "simulator", "--port", str(taken.getsockname()[1]))
    one_line_error(result, "configuration_error")
    assert "already in use" in result.stderr
