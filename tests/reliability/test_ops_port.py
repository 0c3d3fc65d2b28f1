"""The ops port is unauthenticated: a flood of /health probes must not exhaust PostgreSQL,
hostile input gets a 400, and a full PostgreSQL is reported as full, not as missing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import requests
from psycopg.conninfo import make_conninfo

from tests.conftest import fetch_all, free_port, wait_for
from tests.reliability.conftest import report

CLIENTS, REQUESTS_EACH = 150, 4


@contextmanager
def ops_server(env: dict[str, str]) -> Iterator[str]:
    """`sync_worker.ops_server.serve` as Dramatiq forks it, on a free port; its base URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", "from sync_worker.ops_server import serve; serve()"],
        env={**env, "METRICS_PORT": str(port), "METRICS_HOST": "127.0.0.1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"

    def answering() -> bool:
        try:
            return requests.get(f"{url}/metrics", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_for(answering, 30, "the ops server")
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def backends(runtime) -> int:
    return int(
        fetch_all(
            runtime, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
        )[0][0]
    )


def test_a_flood_of_health_probes_costs_postgres_one_connection(runtime, subprocess_env):
    with ops_server(subprocess_env) as url:
        requests.get(f"{url}/health", timeout=10)  # its one connection, opened
        before = backends(runtime)
        statuses: Counter[object] = Counter()
        peak = [before]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.05):
                peak.append(backends(runtime))

        def probe() -> None:
            with requests.Session() as session:
                for _ in range(REQUESTS_EACH):
                    try:
                        statuses[session.get(f"{url}/health", timeout=15).status_code] += 1
                    except requests.RequestException as exc:
                        statuses[type(exc).__name__] += 1

        sampler = threading.Thread(target=sample)
        sampler.start()
        started = time.monotonic()
        clients = [threading.Thread(target=probe) for _ in range(CLIENTS)]
        for client in clients:
            client.start()
        for client in clients:
            client.join(60)
        elapsed_s = time.monotonic() - started
        done.set()
        sampler.join()

        assert statuses == Counter({200: CLIENTS * REQUESTS_EACH}), statuses
        assert max(peak) - before <= 1, (before, max(peak))

        huge = requests.get(f"{url}/health", params={"min_workers": "9" * 5_000}, timeout=10)
        arabic = requests.get(f"{url}/health", params={"min_workers": "\u0663"}, timeout=10)
        assert (huge.status_code, arabic.status_code) == (400, 400)
        assert requests.get(f"{url}/health", timeout=10).status_code == 200  # still serving
    report(
        f"{CLIENTS} clients x {REQUESTS_EACH} /health",
        "all answered, <= 1 more PostgreSQL connection",
        f"{statuses[200]} x 200 in {elapsed_s:.1f} s, +{max(peak) - before} connections",
        0,
        None,
    )


def test_a_full_postgres_is_reported_as_full(runtime, settings, subprocess_env):
    """The connection limit reached ("too many clients") is not "unreachable": an
    orchestrator reading /health must not restart healthy workers for it."""
    with psycopg.connect(str(settings.database_url), autocommit=True) as admin:
        admin.execute("DROP ROLE IF EXISTS health_full")
        admin.execute("CREATE ROLE health_full LOGIN CONNECTION LIMIT 0")
        try:
            full = make_conninfo(str(settings.database_url), user="health_full")
            with ops_server({**subprocess_env, "DATABASE_URL": full}) as url:
                answer = requests.get(f"{url}/health", timeout=10)
        finally:
            admin.execute("DROP ROLE health_full")
    assert answer.status_code == 503
    assert answer.json()["reason"] == (
        "PostgreSQL refuses new connections: its connection limit is reached."
    )
