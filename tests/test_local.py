"""Embedded servers are shared by processes and stopped by the last one to leave."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import psycopg
import redis

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
        with redis.Redis(unix_socket_path=urls["redis"]) as client:
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
