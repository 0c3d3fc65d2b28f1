"""Redis and PostgreSQL restarted under a running sync: no crash loop, nothing lost, rows exact."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime

import pytest
import requests

from sync_worker import client, keys
from sync_worker.runtime import Runtime
from sync_worker.simulator import steam_id_for
from sync_worker.store.migrations import migrate
from sync_worker.sync.progress import ProgressPublisher
from tests.conftest import (
    SimulatorAdmin,
    assert_no_secret,
    assert_no_secret_at_rest,
    cli,
    fetch_all,
    library_status,
    redis_contents,
    wait_for,
)
from tests.dashboard.conftest import ADMIN_TOKEN, Dashboard
from tests.dashboard.test_server import read_event
from tests.reliability.conftest import compare_with_simulator, report
from tests.reliability.servers import RestartablePostgres, RestartableRedis
from tests.workers import WorkerGroup

GAMES = 30_000


def committed(runtime: Runtime, library_id: str) -> int:
    rows = fetch_all(
        runtime,
        "SELECT games_processed FROM sync_runs WHERE library_id = %s AND status = 'running'",
        library_id,
    )
    return int(rows[0][0]) if rows else 0


def enqueue(env: dict[str, str], steam_id: str) -> str:
    """`sync-worker enqueue` (the web service's path) against the given servers."""
    result = cli(env, "enqueue", "--steam-id", steam_id)
    assert result.returncode == 0, result.stderr
    return str(json.loads(result.stdout)["library_id"])


@pytest.fixture
def own_redis(tmp_path) -> Iterator[RestartableRedis]:
    """A Redis this test may stop; stopped at the end whatever happens."""
    server = RestartableRedis(tmp_path / "redis")
    yield server
    server.stop()


def outage(stop: Callable[[], None], start: Callable[[], None], down_s: float) -> float:
    """Stop a server, keep it down for `down_s`, start it again; return when it went down."""
    stop()
    down_at = time.monotonic()
    time.sleep(down_s)
    start()
    return down_at


def completed_exactly(
    runtime: Runtime, group: WorkerGroup, library_id: str, steam_id: str, sim: SimulatorAdmin
) -> tuple[int, int]:
    """The worker survived, the one run completed with exact counts, every row matches the
    simulator; returns (rows checked, attempts)."""
    assert group.process.poll() is None and "exited unexpectedly" not in group.text()
    [(status, new_games, total, attempts)] = fetch_all(
        runtime,
        "SELECT status, new_games, total_games, attempts FROM sync_runs WHERE library_id = %s",
        library_id,
    )
    assert (status, new_games, total) == ("completed", GAMES, GAMES)
    truth = compare_with_simulator(runtime, library_id, steam_id, sim)
    assert truth.mismatches == [] and truth.rows_checked == GAMES
    return truth.rows_checked, attempts


def test_redis_restart_mid_sync_loses_nothing(runtime, sim, subprocess_env, workers, own_redis):
    """Redis down for 4.5 s at a third of 30,000 games: the sync completes, every record agrees."""
    server = own_redis
    env = {**subprocess_env, "REDIS_URL": server.url}
    steam_id = steam_id_for(GAMES, seed=111)
    group = workers(env, "redis-restart").wait_ready()
    library_id = enqueue(env, steam_id)
    wait_for(lambda: committed(runtime, library_id) >= GAMES // 3, 60, "a third committed")

    down_at = outage(server.stop, server.start, 4.5)
    wait_for(lambda: library_status(runtime, library_id) == "completed", 90, "the sync")
    recovery_s = time.monotonic() - down_at

    rows, _ = completed_exactly(runtime, group, library_id, steam_id, sim)
    redis_client = server.client()
    assert json.loads(redis_client.get(keys.progress_key(library_id)))["status"] == "completed"
    assert not redis_client.exists(keys.pending_key(library_id))  # the slot was freed
    assert_no_secret(redis_contents(redis_client), "the restarted Redis")
    report(
        "Redis down 4.5 s mid-sync (30k games)",
        "completes, exact rows, slot freed",
        "completed, last event completed",
        rows,
        recovery_s,
    )


@pytest.fixture(scope="module")
def own_postgres(tmp_path_factory) -> Iterator[RestartablePostgres]:
    """A PostgreSQL cluster this module may stop; stopped at the end."""
    server = RestartablePostgres(tmp_path_factory.mktemp("postgres") / "data")
    yield server
    server.stop()


def test_postgres_restart_mid_sync_loses_nothing(
    runtime, settings, sim, subprocess_env, workers, own_postgres
):
    """PostgreSQL down for 3 s at a third of 30,000 games: retried, resumed, rows exact."""
    pg_runtime = Runtime(settings.model_copy(update={"database_url": own_postgres.dsn}))
    with pg_runtime.pool.connection() as conn:
        migrate(conn)
    env = {**subprocess_env, "DATABASE_URL": own_postgres.dsn, "RETRY_MAX": "8"}
    steam_id = steam_id_for(GAMES, seed=112)
    group = workers(env, "postgres-restart").wait_ready()
    library_id = enqueue(env, steam_id)
    wait_for(lambda: committed(pg_runtime, library_id) >= GAMES // 3, 60, "a third committed")

    down_at = outage(own_postgres.stop, own_postgres.start, 3)
    wait_for(lambda: library_status(pg_runtime, library_id) == "completed", 90, "the sync")
    recovery_s = time.monotonic() - down_at

    # Either a batch was cut (a failed attempt, then a resumed one) or the pool waited out
    # the restart; both end with exact counts.
    rows, attempts = completed_exactly(pg_runtime, group, library_id, steam_id, sim)
    assert json.loads(runtime.redis.get(keys.progress_key(library_id)))["status"] == "completed"
    assert_no_secret_at_rest(pg_runtime)
    report(
        "PostgreSQL down 3 s mid-sync (30k games)",
        "retried, resumes, exact counts",
        f"completed after {attempts} attempt(s)",
        rows,
        recovery_s,
    )
    pg_runtime.close()


def test_a_long_postgres_outage_is_waited_out_not_failed(
    runtime, settings, sim, subprocess_env, workers, own_postgres
):
    """PostgreSQL down far longer than the retries last (RETRY_MAX=3, under 3 s of
    backoff): our outage is not the library's failure. The sync waits without spending a
    retry, is never announced failed or retrying, is not dead-lettered, and completes."""
    pg_runtime = Runtime(settings.model_copy(update={"database_url": own_postgres.dsn}))
    with pg_runtime.pool.connection() as conn:
        migrate(conn)
    env = {**subprocess_env, "DATABASE_URL": own_postgres.dsn, "OUTAGE_MAX_BACKOFF_S": "1"}
    games = 3_000
    steam_id = steam_id_for(games, seed=113)
    group = workers(env, "postgres-outage").wait_ready()
    library_id = enqueue(env, steam_id)
    events: list[dict] = []
    watcher = threading.Thread(
        target=lambda: events.extend(client.iter_progress(library_id, timeout_s=60)), daemon=True
    )
    watcher.start()
    wait_for(lambda: committed(pg_runtime, library_id) >= games // 3, 60, "a third committed")

    down_at = outage(own_postgres.stop, own_postgres.start, 12)
    watcher.join(timeout=90)
    recovery_s = time.monotonic() - down_at

    statuses = [event["status"] for event in events]
    assert statuses[-1] == "completed", statuses
    assert "failed" not in statuses and "retrying" not in statuses
    waiting = [e for e in events if e["status"] == "queued" and e.get("error")]
    assert waiting and waiting[0]["error"]["code"] == "database_unavailable"
    assert "Resuming in" in waiting[0]["message"]
    assert runtime.redis.zcard(keys.broker_dead_letters_key("high")) == 0
    assert group.events("sync.waiting_out_outage") and not group.events("sync.retrying")
    [(status, new_games)] = fetch_all(
        pg_runtime, "SELECT status, new_games FROM sync_runs WHERE library_id = %s", library_id
    )
    assert (status, new_games) == ("completed", games)
    truth = compare_with_simulator(pg_runtime, library_id, steam_id, sim)
    assert truth.mismatches == [] and truth.rows_checked == games
    report(
        "PostgreSQL down 12 s, retries last < 3 s",
        "waits (queued), no retry spent, completes",
        f"{statuses.count('queued') - 1} waits announced, completed, 0 dead letters",
        truth.rows_checked,
        recovery_s,
    )
    pg_runtime.close()


def test_the_scheduler_rides_out_redis_down_across_a_tick(subprocess_env, own_redis, tmp_path):
    """Redis down from 4 s before a tick to 6 s after it: the scheduler process (the
    Procfile's `sync-worker scheduler`, periodiq inside) retries sending the tick, sends it once Redis
    is back, and keeps running (periodiq used to exit 1 there, ending every auto-sync)."""
    env = {**subprocess_env, "REDIS_URL": own_redis.url, "AUTO_SYNC_CRON": "* * * * *"}
    log_path = tmp_path / "scheduler.log"
    with log_path.open("w") as log:
        scheduler = subprocess.Popen(
            [sys.executable, "-m", "sync_worker.cli", "scheduler"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(lambda: "Registered periodic actors" in log_path.read_text(), 30, "periodiq")
        seconds_left = 60 - datetime.now().second - datetime.now().microsecond / 1e6
        if seconds_left < 6:  # too close to this tick to stop Redis before it: take the next
            time.sleep(seconds_left + 1)
            seconds_left = 60 - datetime.now().second - datetime.now().microsecond / 1e6
        time.sleep(seconds_left - 4)
        queued = own_redis.client()
        queued.delete("dramatiq:default", "dramatiq:default.msgs")  # the ticks before this one
        down_at = outage(own_redis.stop, own_redis.start, 10)
        wait_for(lambda: queued.llen("dramatiq:default") >= 1, 30, "the tick, sent late")
        recovery_s = time.monotonic() - down_at
        assert scheduler.poll() is None, log_path.read_text()[-3000:]
        text = log_path.read_text()
        assert "schedule.tick_send_retry" in text and "Unhandled error" not in text
        [body] = queued.hvals("dramatiq:default.msgs")
        assert json.loads(body)["actor_name"] == "schedule_auto_syncs"
    finally:
        os.killpg(scheduler.pid, signal.SIGTERM)
        scheduler.wait(timeout=30)
    assert_no_secret(log_path.read_text(), "the scheduler's log")
    report(
        "Redis down 10 s across a scheduler tick",
        "tick sent once Redis is back, scheduler alive",
        "tick sent, scheduler alive",
        0,
        recovery_s,
    )


def test_the_dashboard_rides_out_redis_down(subprocess_env, own_redis, tmp_path):
    """Redis down for 3 s under the dashboard: its JSON answers 503 `redis_unavailable` in
    one line (no URL), its page still loads, and once Redis is back the same process
    answers again and its live stream, reconnected by itself, carries new events."""
    env = {**subprocess_env, "REDIS_URL": own_redis.url, "DASHBOARD_TOKEN": ADMIN_TOKEN}
    served = Dashboard(env, tmp_path / "dashboard.log")
    bearer = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    try:
        assert requests.get(f"{served.url}/api/overview", headers=bearer, timeout=10).ok
        stream = requests.get(f"{served.url}/api/events", headers=bearer, stream=True, timeout=30)
        lines = stream.iter_lines(decode_unicode=True)
        assert read_event(lines)[0] == "overview"

        own_redis.stop()
        down_at = time.monotonic()
        answer = requests.get(f"{served.url}/api/overview", headers=bearer, timeout=10)
        assert answer.status_code == 503
        assert answer.json()["error"]["code"] == "redis_unavailable"
        assert own_redis.url not in answer.text
        page = requests.get(f"{served.url}/", headers=bearer, timeout=10)
        assert page.status_code == 200 and "redis_unavailable" in page.text
        time.sleep(3)
        own_redis.start()

        wait_for(
            lambda: requests.get(f"{served.url}/api/overview", headers=bearer, timeout=10).ok,
            30,
            "the dashboard to answer again",
        )
        recovery_s = time.monotonic() - down_at
        # A worker's events, every half second, until the stream (resubscribed by itself
        # in the meantime) carries one.
        publisher = ProgressPublisher(own_redis.client(), "after-the-outage", ttl_s=60)
        stop = threading.Event()

        def publish() -> None:
            while not stop.wait(0.5):
                publisher.publish("syncing", progress=50, games_processed=5, total_games=10)

        threading.Thread(target=publish, daemon=True).start()
        try:
            while (event := read_event(lines))[0] != "progress":
                pass
        finally:
            stop.set()
        assert event[1]["library_id"] == "after-the-outage" and event[1]["progress"] == 50
        stream.close()
        assert served.process.poll() is None
    finally:
        log = served.stop()
    assert "Traceback" not in log
    report(
        "Redis down 3 s under the dashboard",
        "503 redis_unavailable meanwhile, then answers and streams again",
        "503 meanwhile, answers and streams again",
        0,
        recovery_s,
    )
