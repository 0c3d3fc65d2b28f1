"""Unreachable servers and bad configuration: one line with a stable code, fast, and the
documented exit code (3); JSON on stdout for the commands that print JSON."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from sync_worker.simulator import steam_id_for
from tests.conftest import cli, fetch_all

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
    answer = json.loads(result.stdout)
    assert answer["error"]["code"] == "redis_unavailable"
    # A sync's answer says how the sync ended; another command's, the error alone.
    expected_keys = {"library_id", "status", "error"} if args[0] == "sync" else {"error"}
    assert set(answer) == expected_keys


@pytest.mark.parametrize("command", [("migrate",), ("sync", "--steam-id", steam_id_for(5))])
def test_unreachable_database_is_one_line_within_seconds(subprocess_env, command):
    """database_unavailable, exit 3, in seconds (not a 30 s pool timeout)."""
    started = time.monotonic()
    result = cli({**subprocess_env, "DATABASE_URL": UNREACHABLE_DATABASE}, *command)
    assert time.monotonic() - started < 10
    one_line_error(result, "database_unavailable")
    if command == ("migrate",):  # nothing retries a release phase
        assert "nothing was migrated" in result.stderr and "retried" not in result.stderr


def test_a_database_that_never_answers_is_reported_within_seconds(subprocess_env, silent_server):
    """A server that accepts but stays silent: the connect timeout, not a hang."""
    started = time.monotonic()
    result = cli({**subprocess_env, "DATABASE_URL": silent_server}, "migrate")
    assert time.monotonic() - started < 15
    one_line_error(result, "database_unavailable")


def test_a_server_that_does_not_speak_redis_is_one_line(subprocess_env):
    """REDIS_URL pointing at another service: it answers, but not in Redis's protocol."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)

    def answer_garbage() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = listener.accept()
                with conn:
                    conn.recv(1024)
                    conn.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n")

    threading.Thread(target=answer_garbage, daemon=True).start()
    try:
        url = f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
        result = cli({**subprocess_env, "REDIS_URL": url}, "status", "--library-id", "x")
    finally:
        listener.close()
    one_line_error(result, "redis_unavailable")
    assert "does not answer as Redis does" in result.stderr


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


def test_health_with_a_server_down_is_one_line_within_a_couple_of_seconds(subprocess_env):
    for variable, url, reason in (
        ("REDIS_URL", UNREACHABLE_REDIS, "Redis is unreachable at REDIS_URL."),
        ("DATABASE_URL", UNREACHABLE_DATABASE, "PostgreSQL is unreachable at DATABASE_URL."),
    ):
        started = time.monotonic()
        result = cli({**subprocess_env, variable: url}, "health")
        assert time.monotonic() - started < 5
        assert result.returncode == 3
        assert result.stderr == f"sync-worker: unhealthy: {reason}\n"
        assert json.loads(result.stdout)["healthy"] is False


@pytest.fixture
def unmigrated_database(settings) -> Iterator[str]:
    """A new, empty database on the test server; dropped afterwards."""
    name = "sync_worker_unmigrated"
    with psycopg.connect(str(settings.database_url), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    yield make_conninfo(str(settings.database_url), dbname=name)
    with psycopg.connect(str(settings.database_url), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


def test_health_names_a_missing_migration_and_migrate_needs_no_redis(
    subprocess_env, unmigrated_database
):
    """Production's release phase: DATABASE_URL only. Before it, health says what to run."""
    env = {**subprocess_env, "DATABASE_URL": unmigrated_database}
    before = cli(env, "health")
    assert before.returncode == 1
    assert before.stderr == (
        "sync-worker: unhealthy: the database schema lacks migration 0001_initial:"
        " run `sync-worker migrate`.\n"
    )

    release_env = {k: v for k, v in env.items() if k != "REDIS_URL"}
    release = cli({**release_env, "SYNC_WORKER_ENV": "production"}, "migrate")
    assert release.returncode == 0, release.stderr
    assert release.stdout.startswith("applied: 0001_initial, ")
    without_both = cli(
        {**release_env, "SYNC_WORKER_ENV": "production", "DATABASE_URL": ""}, "migrate"
    )
    assert without_both.returncode == 3
    assert without_both.stderr == (
        "sync-worker: configuration_error: DATABASE_URL must be set in production.\n"
    )

    after = cli(env, "health")
    assert after.returncode == 0, after.stderr
    assert json.loads(after.stdout)["schema"]["applied"] == "0011_relink_required"


def test_version_and_every_option_has_help():
    from sync_worker import __version__
    from sync_worker.cli import build_parser

    parser = build_parser()
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args(["--version"])
    assert exit_.value.code == 0
    commands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert {"health", "dead-letters", "sync", "migrate"} <= set(commands)
    for name, command in commands.items():
        assert command.description, name
        for action in command._actions:
            assert action.help, f"{name} {action.option_strings} has no help text"
        assert "STEAM_API_KEY" in command.format_help() and "exit status" in command.format_help()
    assert __version__ in cli({}, "--version").stdout


PASSWORD = "s3cret-Pa55"
BAD_URLS = {
    "bare % in the password": ("DATABASE_URL", f"postgresql://app:{PASSWORD}%@127.0.0.1/app"),
    "postgress:// typo": ("DATABASE_URL", f"postgress://app:{PASSWORD}@127.0.0.1/app"),
    "invalid sslmode": ("DATABASE_URL", f"postgresql://app:{PASSWORD}@127.0.0.1/app?sslmode=on"),
    "Redis URL of another scheme": ("REDIS_URL", f"http://:{PASSWORD}@127.0.0.1:6379/0"),
    "Redis URL missing a slash": ("REDIS_URL", f"rediss:/:{PASSWORD}@127.0.0.1:6379/0"),
    "Redis port not a number": ("REDIS_URL", f"redis://:{PASSWORD}@127.0.0.1:port/0"),
}
PROCESSES = {
    "migrate": [sys.executable, "-m", "sync_worker.cli", "migrate"],
    "enqueue": [sys.executable, "-m", "sync_worker.cli", "enqueue", "--steam-id", steam_id_for(5)],
    "worker": [sys.executable, "-m", "dramatiq", "sync_worker.worker", "--processes", "1"],
    "scheduler": [sys.executable, "-m", "sync_worker.cli", "scheduler"],
}


@pytest.mark.parametrize("process", PROCESSES, ids=list(PROCESSES))
@pytest.mark.parametrize("bad", BAD_URLS, ids=list(BAD_URLS))
def test_a_malformed_url_is_one_line_and_never_prints_its_password(subprocess_env, bad, process):
    """libpq quotes a URL it cannot read, password and all: every process refuses it with
    configuration_error, exit 3, the URL masked."""
    name, url = BAD_URLS[bad]
    result = subprocess.run(
        PROCESSES[process],
        env={**subprocess_env, name: url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = result.stdout + result.stderr
    assert PASSWORD not in output
    assert result.returncode == 3, output
    assert f"sync-worker: configuration_error: invalid configuration: {name}: " in output
    assert "Traceback" not in output


def test_production_without_a_steam_key_is_unhealthy_and_runs_nothing(
    runtime, register, subprocess_env
):
    """health fails naming the key; sync exits 3 before registering the library; enqueue
    of a registered library queues, and says that no worker can run it."""
    env = {k: v for k, v in subprocess_env.items() if k != "STEAM_API_KEY"}
    env["SYNC_WORKER_ENV"] = "production"
    health = cli(env, "health")
    assert health.returncode == 1, health.stderr
    assert json.loads(health.stdout)["reason"] == "STEAM_API_KEY is not set: no sync can run."

    steam_id = steam_id_for(7, seed=77)
    sync = cli(env, "sync", "--steam-id", steam_id)
    one_line_error(sync, "configuration_error")
    registered = "SELECT 1 FROM user_libraries WHERE platform_user_id = %s"
    assert fetch_all(runtime, registered, steam_id) == []

    register(steam_id_for(8, seed=77))
    enqueue = cli(env, "enqueue", "--steam-id", steam_id_for(8, seed=77))
    assert enqueue.returncode == 0, enqueue.stderr
    answer = json.loads(enqueue.stdout)
    assert (answer["queue"], answer["workers"]) == ("high", 0)
    assert "no live worker with a Steam key serves queue high" in enqueue.stderr
