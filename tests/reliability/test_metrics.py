"""Prometheus metrics, scraped from a worker's ops server after real syncs: one clean,
one through a 429, one whose retries run out into a dead letter."""

from __future__ import annotations

import re

import pytest
import requests

from sync_worker.simulator import steam_id_for
from tests.conftest import free_port
from tests.workers import WorkerGroup, sync_and_collect

pytestmark = pytest.mark.usefixtures("settled_broker")


def sample(scrape: str, name: str, **labels: str) -> float:
    """The value of one sample (0 when absent), its labels in any order."""
    for line in scrape.splitlines():
        match = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if match and dict(re.findall(r'(\w+)="([^"]*)"', match[1])) == labels:
            return float(match[2])
    return 0.0


def test_metrics_count_calls_waits_syncs_and_dead_letters(
    runtime, register, sim, subprocess_env, tmp_path
):
    port = free_port()
    env = {**subprocess_env, "METRICS_PORT": str(port), "dramatiq_prom_db": str(tmp_path)}
    group = WorkerGroup(env, tmp_path / "worker.log", processes=2).wait_ready()
    try:
        clean = register(steam_id_for(120, seed=91))
        assert sync_and_collect(clean)[-1]["status"] == "completed"

        sim.fault(match="GetOwnedGames", kind="status", status=429, count=1)
        through_429 = register(steam_id_for(80, seed=92))
        assert sync_and_collect(through_429)[-1]["status"] == "completed"

        sim.fault(match="GetOwnedGames", kind="status", status=503, count=4)  # RETRY_MAX=3
        dead = register(steam_id_for(10, seed=93))
        assert sync_and_collect(dead)[-1]["status"] == "failed"

        scrape = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    finally:
        group.kill()

    calls = "sync_worker_steam_calls_total"
    assert sample(scrape, calls, bucket="steam_webapi", outcome="ok") == 2
    assert sample(scrape, calls, bucket="steam_webapi", outcome="429") == 1
    assert sample(scrape, calls, bucket="steam_webapi", outcome="error") == 4
    # The 429 paused the bucket 0.5 s, past RATE_LIMIT_MAX_WAIT_S (0.3 s): a deferral.
    assert sample(scrape, "sync_worker_rate_limit_deferrals_total", bucket="steam_webapi") >= 1
    syncs = "sync_worker_syncs_total"
    assert sample(scrape, syncs, status="completed") == 2
    assert sample(scrape, syncs, status="failed") == 1
    assert sample(scrape, "sync_worker_games_written_total", status="completed") == 200
    assert sample(scrape, "sync_worker_sync_duration_seconds_count", status="completed") == 2
    assert (
        sample(
            scrape, "sync_worker_dead_letters_total", actor="sync_library", code="steam_unavailable"
        )
        == 1
    )
    assert (
        sample(
            scrape, "dramatiq_message_rejects_total", actor_name="sync_library", queue_name="high"
        )
        == 1
    )
