"""Shared fixtures: real PostgreSQL, real Redis, the simulator on a real port.

Servers: TEST_DATABASE_URL / TEST_REDIS_URL when set, else the embedded ones (database
`sync_worker_test`, Redis db 1, so a developer's own data is never touched). Every test
starts from empty tables, an empty Redis database and a fresh simulator.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import redis
import requests
from pydantic import SecretStr

from sync_worker import client
from sync_worker.local import EmbeddedServers
from sync_worker.platforms.gog import login_url
from sync_worker.platforms.steam import SteamClient
from sync_worker.runtime import Runtime, set_runtime
from sync_worker.settings import Settings, use_settings
from sync_worker.simulator import SimulatorServer
from sync_worker.store import libraries
from sync_worker.store.migrations import migrate
from sync_worker.sync.engine import AfterBatch, SyncEngine
from sync_worker.sync.gog_run import GogRun

TEST_KEY = "test-key-5EC12E7-do-not-log"
# The suite's embedded servers live in the checkout (`make clean` removes them), not in the
# per-user home: two checkouts' test runs never share a test database. Subprocesses inherit it.
os.environ.setdefault("SYNC_WORKER_HOME", str(Path(__file__).resolve().parents[1] / ".sync-worker"))
TEST_DATABASE = "sync_worker_test"
TEST_REDIS_DB = 1


@pytest.fixture(scope="session")
def server_urls() -> tuple[str, str]:
    """(database_url, redis_url) of the servers the tests use."""
    database_url = os.environ.get("TEST_DATABASE_URL")
    redis_url = os.environ.get("TEST_REDIS_URL")
    if database_url and redis_url:
        return database_url, redis_url
    servers = EmbeddedServers(Path(os.environ["SYNC_WORKER_HOME"]))
    urls = servers.acquire()
    servers.ensure_database(urls, TEST_DATABASE)
    return (
        database_url or urls.database_url(TEST_DATABASE),
        redis_url or urls.redis_url(TEST_REDIS_DB),
    )


@pytest.fixture(scope="session")
def simulator() -> Iterator[SimulatorServer]:
    """The Steam simulator, serving on a free local port for the whole session."""
    with SimulatorServer(api_key=TEST_KEY) as server:
        yield server


@pytest.fixture(scope="session")
def settings(server_urls: tuple[str, str], simulator: SimulatorServer) -> Settings:
    """Settings pointing at the test servers and the simulator; small batches so tests see many."""
    database_url, redis_url = server_urls
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=database_url,
        redis_url=redis_url,
        sync_worker_env="test",
        steam_api_key=SecretStr(TEST_KEY),
        steam_api_base_url=simulator.url,
        steam_store_base_url=simulator.url,
        gog_auth_base_url=simulator.url,
        gog_embed_base_url=simulator.url,
        gog_www_base_url=simulator.url,
        steam_read_timeout_s=5.0,
        sync_batch_size=100,
        sync_lock_ttl_s=5.0,
        progress_min_interval_s=0.0,
        log_format="json",
        steam_webapi_calls_per_window=100_000,  # tests that exercise limits set their own
        steam_429_backoff_s=0.5,
    )


@pytest.fixture(scope="session")
def runtime(settings: Settings) -> Iterator[Runtime]:
    """The process runtime on the test servers, schema migrated."""
    use_settings(settings)
    rt = Runtime(settings)
    set_runtime(rt)
    with rt.pool.connection() as conn:
        migrate(conn)
    # Nothing an aborted earlier session left queued may reach this session's workers,
    # which may start before the first test empties the database.
    rt.redis.flushdb()
    yield rt
    set_runtime(None)
    use_settings(None)


def assert_no_secret(text: str | bytes, where: str, *secrets: str | None) -> None:
    """Fail if the test key (or another given key) appears in `text`."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    for secret in {TEST_KEY, *secrets} - {None, ""}:
        assert secret not in text, f"a Steam API key leaked into {where}"


def redis_contents(client: redis.Redis) -> bytes:
    """Every key and value of a Redis database, concatenated (for leak scans)."""
    parts: list[bytes] = []
    for key in client.scan_iter(count=1_000):
        parts.append(key)
        kind = client.type(key)
        if kind == b"string":
            parts.append(client.get(key) or b"")
        elif kind == b"hash":
            for field, value in client.hgetall(key).items():
                parts += [field, value]
        elif kind == b"list":
            parts += client.lrange(key, 0, -1)
        elif kind == b"set":
            parts += list(client.smembers(key))
        elif kind == b"zset":
            parts += client.zrange(key, 0, -1)
    return b"\n".join(parts)


def assert_no_secret_at_rest(runtime: Runtime, *secrets: str | None) -> None:
    """No key in any Redis key or value, nor in any row of any table."""
    assert_no_secret(redis_contents(runtime.redis), "Redis", *secrets)
    with runtime.pool.connection() as conn:
        for table in ("user_libraries", "games", "library_games", "sync_runs"):
            for secret in {TEST_KEY, *secrets} - {None, ""}:
                [(count,)] = conn.execute(
                    f"SELECT count(*) FROM {table} t WHERE strpos(t::text, %s) > 0",
                    (secret,),
                ).fetchall()
                assert count == 0, f"a Steam API key leaked into the {table} table"


@pytest.fixture(autouse=True)
def clean_state(request: pytest.FixtureRequest) -> Iterator[None]:
    """Empty tables and Redis db, and a fresh simulator, before each test that uses them;
    after it, no Steam key may be left anywhere in them."""
    if "runtime" in request.fixturenames:
        rt: Runtime = request.getfixturevalue("runtime")
        with rt.pool.connection() as conn:
            conn.execute("TRUNCATE user_libraries, games, library_games, sync_runs CASCADE")
        rt.redis.flushdb()
    if "simulator" in request.fixturenames:
        sim: SimulatorServer = request.getfixturevalue("simulator")
        requests.post(f"{sim.url}/_sim/reset", timeout=5).raise_for_status()
    yield
    if "runtime" in request.fixturenames:
        assert_no_secret_at_rest(request.getfixturevalue("runtime"))


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A TCP port that accepts connections and never answers (a hung database)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"postgresql://nobody@127.0.0.1:{listener.getsockname()[1]}/hung"
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    listener.close()


class SimulatorAdmin:
    """The simulator's admin API, spoken over HTTP as any test client would."""

    def __init__(self, url: str) -> None:
        self.url = url

    def stats(self) -> dict[str, Any]:
        """Call counters."""
        response = requests.get(f"{self.url}/_sim/stats", timeout=5)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def calls(self, endpoint: str = "GetOwnedGames") -> int:
        """How many calls one endpoint received."""
        return int(self.stats()["calls"].get(endpoint, 0))

    def change_library(self, steam_id: str, **change: Any) -> None:
        """Bump playtimes, remove or add games in one simulated library."""
        requests.post(
            f"{self.url}/_sim/libraries/{steam_id}", json=change, timeout=5
        ).raise_for_status()

    def fault(self, **fault: Any) -> None:
        """Queue a fault for matching calls."""
        requests.post(f"{self.url}/_sim/faults", json=fault, timeout=5).raise_for_status()

    def owned_games(self, steam_id: str) -> list[dict[str, Any]]:
        """The simulator's GetOwnedGames entries for a profile, names and free games included."""
        response = requests.get(
            f"{self.url}/IPlayerService/GetOwnedGames/v1/",
            params={
                "key": TEST_KEY,
                "steamid": steam_id,
                "include_appinfo": 1,
                "include_played_free_games": 1,
            },
            timeout=30,
        )
        games: list[dict[str, Any]] = response.json()["response"].get("games", [])
        return games

    def owned_app_ids(self, steam_id: str) -> list[int]:
        """The app ids the simulator currently lists for a profile (free games included)."""
        response = requests.get(
            f"{self.url}/IPlayerService/GetOwnedGames/v1/",
            params={"key": TEST_KEY, "steamid": steam_id, "include_played_free_games": 1},
            timeout=10,
        )
        return sorted(g["appid"] for g in response.json()["response"].get("games", []))


@pytest.fixture
def sim(simulator: SimulatorServer) -> SimulatorAdmin:
    """Admin access to the running simulator."""
    return SimulatorAdmin(simulator.url)


@pytest.fixture
def register(runtime: Runtime) -> Callable[[str], str]:
    """Register a Steam library directly (no API calls); returns its library id."""

    def _register(steam_id: str) -> str:
        with runtime.pool.connection() as conn:
            return libraries.register_library(conn, "steam", steam_id)

    return _register


@pytest.fixture
def make_engine(runtime: Runtime) -> Callable[..., SyncEngine]:
    """Build a sync engine on the test runtime, optionally with an after-batch hook."""

    def _make(
        after_batch: AfterBatch | None = None, settings: Settings | None = None
    ) -> SyncEngine:
        s = settings or runtime.settings
        return SyncEngine(
            s,
            runtime.redis,
            runtime.pool,
            lambda: SteamClient(s),
            after_batch=after_batch,
            gate=runtime.limiter(),
            platform_runs={"gog": GogRun},
        )

    return _make


def fetch_all(runtime: Runtime, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Run a query on the test database and return every row."""
    with runtime.pool.connection() as conn:
        return conn.execute(sql, params).fetchall()


@pytest.fixture(scope="session")
def subprocess_env(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for a child process (CLI, worker) on the test servers and simulator."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_", "REDIS_", "STEAM_", "GOG_", "CREDENTIALS_"))
    }
    env.update(
        DATABASE_URL=str(settings.database_url),
        REDIS_URL=str(settings.redis_url),
        STEAM_API_KEY=TEST_KEY,
        STEAM_API_BASE_URL=settings.steam_api_base_url,
        STEAM_STORE_BASE_URL=settings.steam_store_base_url,
        GOG_AUTH_BASE_URL=settings.gog_auth_base_url,
        GOG_EMBED_BASE_URL=settings.gog_embed_base_url,
        GOG_WWW_BASE_URL=settings.gog_www_base_url,
        SYNC_WORKER_ENV="test",
        SYNC_BATCH_SIZE="100",
        LOG_LEVEL="DEBUG",
        LOG_FORMAT="json",
        STEAM_WEBAPI_CALLS_PER_WINDOW="100000",
        # Short waits so retries and deferrals happen within a test's patience.
        RETRY_MAX="3",
        RETRY_MIN_BACKOFF_S="0.2",
        RETRY_MAX_BACKOFF_S="1",
        STEAM_429_BACKOFF_S="0.5",
        RATE_LIMIT_MAX_WAIT_S="0.3",
        PROGRESS_MIN_INTERVAL_S="0",  # every batch's event, so tests can count them
        METRICS_PORT="0",  # concurrent worker groups must not fight over one port
        # The suite's metrics files stay out of the host's shared /tmp/dramatiq-prometheus.
        dramatiq_prom_db=str(tmp_path_factory.mktemp("metrics")),
    )
    return env


def cli(
    env: dict[str, str], *args: str, timeout_s: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run `sync-worker ARGS` as its own process and capture what it prints (never a key)."""
    result = subprocess.run(
        [sys.executable, "-m", "sync_worker.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    assert_no_secret(result.stdout + result.stderr, "the CLI's output", env.get("STEAM_API_KEY"))
    return result


@pytest.fixture
def settled_broker(runtime: Runtime) -> Iterator[None]:
    """The test process's broker on the test Redis database; no job may outlive the test
    (the next test empties the tables: a job still running would collide with that)."""
    from sync_worker.app import reset_broker
    from tests.workers import idle

    reset_broker()
    yield
    wait_for(lambda: idle(runtime), 30, "the worker to finish the test's jobs")
    reset_broker()


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], Any], timeout_s: float = 60, what: str = "condition") -> Any:
    """Poll until predicate() is truthy; return its value or fail after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def library_status(runtime: Runtime, library_id: str) -> str:
    """The library row's sync_status."""
    [(status,)] = fetch_all(
        runtime, "SELECT sync_status FROM user_libraries WHERE library_id = %s", library_id
    )
    return str(status)


def gog_login_code(settings: Settings, user_id: str) -> str:
    """What a user's browser gets from GOG's (simulated) login page: the redirect's code."""
    answer = requests.get(
        f"{login_url(settings)}&login={user_id}", allow_redirects=False, timeout=5
    )
    assert answer.status_code == 302, answer.text
    return parse_qs(urlsplit(answer.headers["Location"]).query)["code"][0]


def link_gog(settings: Settings, user_id: str) -> str:
    """Link a simulated GOG account as the web service does; return its library id."""
    return client.link_gog_library(gog_login_code(settings, user_id))
