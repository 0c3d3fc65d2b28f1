"""Embedded servers are shared by processes and stopped by the last one to leave."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.conftest import wait_for

USER = """
import json, sys
from pathlib import Path
from sync_worker.local import EmbeddedServers
urls = EmbeddedServers(Path(sys.argv[1])).acquire()
print(json.dumps({"pg": urls.postgres_dsn, "redis": str(urls.redis_socket)}), flush=True)
sys.stdin.readline()
"""


def start_user(home: Path) -> tuple[subprocess.Popen[str], dict[str, str]]:
    process = subprocess.Popen(
        [sys.executable, "-c", USER, str(home)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    return process, json.loads(process.stdout.readline())


def servers_up(urls: dict[str, str]) -> tuple[bool, bool]:
    try:
        with psycopg.connect(urls["pg"], connect_timeout=2) as conn:
            pg = conn.execute("SELECT 1").fetchone() == (1,)
    except psycopg.OperationalError:
        pg = False
    try:
        with redis.Redis(unix_socket_path=urls["redis"], retry=Retry(NoBackoff(), 0)) as client:
            rd = bool(client.ping())
    except (redis.ConnectionError, FileNotFoundError):
        rd = False
    return pg, rd


def finish(process: subprocess.Popen[str]) -> None:
    assert process.stdin is not None and process.stdout is not None
    process.stdin.close()
    process.wait(timeout=60)
    process.stdout.close()


def test_processes_share_servers_and_the_last_one_out_stops_them(tmp_path):
    """A second process reuses the running servers; a killed one does not keep them alive; Redis data survives."""
    home = tmp_path / "home"
    first, first_urls = start_user(home)
    second, second_urls = start_user(home)
    assert first_urls == second_urls and servers_up(first_urls) == (True, True)

    first.send_signal(signal.SIGKILL)  # dies without unregistering
    first.wait(timeout=10)
    assert first.stdin is not None and first.stdout is not None
    first.stdin.close()
    first.stdout.close()
    assert servers_up(first_urls) == (True, True)

    with redis.Redis(unix_socket_path=first_urls["redis"]) as client:
        client.set("queued-work", "kept")
    finish(second)  # the last live user leaves: both servers stop

    assert servers_up(first_urls) == (False, False)
    assert not (home / "postgres" / "postmaster.pid").exists()

    third, third_urls = start_user(home)  # a later process starts them again, data intact
    with redis.Redis(unix_socket_path=third_urls["redis"]) as client:
        assert client.get("queued-work") == b"kept"
    finish(third)


EXITS_WITHOUT_CLEANUP = """
import os, sys
from pathlib import Path
from sync_worker.local import EmbeddedServers
EmbeddedServers(Path(sys.argv[1])).acquire()
os._exit(0)  # what Dramatiq's worker processes do: no atexit
"""


def servers_stop(urls: dict[str, str], timeout_s: float = 15) -> float:
    """Seconds until both servers are down (fails after timeout_s)."""
    started = time.monotonic()
    wait_for(lambda: servers_up(urls) == (False, False), timeout_s, "both servers to stop")
    return time.monotonic() - started


def test_a_last_user_killed_with_sigkill_still_stops_the_servers(tmp_path):
    """No atexit runs on SIGKILL: the reaper notices the last user is gone and stops both."""
    home = tmp_path / "home"
    user, urls = start_user(home)
    user.send_signal(signal.SIGKILL)
    user.wait(timeout=10)
    assert user.stdin is not None and user.stdout is not None
    user.stdin.close()
    user.stdout.close()

    print(f"\nservers stopped {servers_stop(urls):.1f} s after the last user's SIGKILL")
    assert json.loads((home / "users.json").read_text()) == []  # the registry was repaired


def test_a_last_user_ending_with_os_exit_still_stops_the_servers(tmp_path):
    """Dramatiq's worker processes end with os._exit: the servers still stop."""
    home = tmp_path / "home"
    subprocess.run([sys.executable, "-c", EXITS_WITHOUT_CLEANUP, str(home)], check=True, timeout=60)
    pg_uri = (home / "postgres").as_posix()
    urls = {
        "pg": f"postgresql://postgres:@/postgres?host={pg_uri}",
        "redis": str(home / "redis" / "redis.sock"),
    }
    servers_stop(urls)


def test_a_stale_registry_is_repaired_by_the_next_user(tmp_path):
    """users.json listing a dead process (or a reused pid) does not keep servers alive."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "users.json").write_text(json.dumps([[999_999, 1], [os.getpid(), 1]]))
    user, urls = start_user(home)

    listed = json.loads((home / "users.json").read_text())
    assert [pid for pid, _ in listed] == [user.pid]
    finish(user)
    servers_stop(urls)


def test_stop_command_stops_the_servers_under_their_users(tmp_path):
    """`python -m sync_worker.local stop HOME` (make clean) stops them whoever still runs."""
    home = tmp_path / "home"
    user, urls = start_user(home)
    subprocess.run(
        [sys.executable, "-m", "sync_worker.local", "stop", str(home)], check=True, timeout=60
    )
    assert servers_up(urls) == (False, False)
    finish(user)
