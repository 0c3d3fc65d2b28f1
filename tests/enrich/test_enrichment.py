"""Store enrichment through real workers: global, once per app, resumable, never in a loop."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest

from sync_worker import client
from sync_worker.app import get_broker, reset_broker
from sync_worker.enrich.queueing import max_age
from sync_worker.simulator import steam_id_for
from sync_worker.store.catalog import enrichment_counts
from tests.conftest import cli, fetch_all, wait_for
from tests.workers import WorkerGroup, dead_letters, tick_message

ENV = {"STEAM_STORE_CALLS_PER_WINDOW": "100000", "ENRICH_CHUNK_SIZE": "25"}


@pytest.fixture(scope="module")
def enrich_worker(runtime, subprocess_env, tmp_path_factory) -> Iterator[WorkerGroup]:
    """A worker serving every queue, enrichment's `low` included (each test waits until
    enrichment settles, so none leaves work behind)."""
    runtime.redis.flushdb()  # nothing a previous module left may reach this worker
    log = tmp_path_factory.mktemp("enrich") / "worker.log"
    group = WorkerGroup({**subprocess_env, **ENV}, log, queues=("high", "default", "low"))
    yield group.wait_ready()
    group.stop()
    group.kill()


@pytest.fixture(autouse=True)
def fresh_broker(runtime) -> Iterator[None]:
    reset_broker()
    yield
    reset_broker()


def counts(runtime) -> dict[str, int]:
    with runtime.pool.connection() as conn:
        return enrichment_counts(conn, "steam", max_age(runtime), timedelta(days=1))


def settled_enrichment(runtime, syncs: int = 1) -> dict[str, int] | None:
    """The counts once `syncs` syncs completed and no app waits for details; else None."""
    done = fetch_all(runtime, "SELECT count(*) FROM sync_runs WHERE status = 'completed'")[0][0]
    now = counts(runtime)
    queued = sum(runtime.redis.llen(f"dramatiq:{q}") for q in ("low", "low.DQ"))
    settled = done >= syncs and now["pending"] == 0 and now["not_queued"] == 0 and not queued
    return now if settled else None


def test_libraries_sharing_apps_fetch_each_app_once(runtime, register, sim, enrich_worker):
    """Two libraries, 330 distinct apps (300 shared): exactly 330 store calls, all recorded."""
    small = register(steam_id_for(300, seed=301))
    large = register(steam_id_for(330, seed=301))  # the same 300 apps, and 30 more
    client.request_sync(small)
    client.request_sync(large)

    final = wait_for(lambda: settled_enrichment(runtime, 2), 90, "enrichment to finish")

    owned = sim.owned_app_ids(steam_id_for(330, seed=301))
    unavailable = sum(1 for a in owned if a % 97 == 0)
    assert sim.stats()["calls"]["appdetails"] == len(set(owned)) == 330  # 1.00 per distinct app
    assert final == {
        "enriched": 330 - unavailable,
        "unavailable": unavailable,
        "stale": 0,
        "pending": 0,
        "not_queued": 0,
    }
    a_game = next(a for a in owned if a % 97 and a % 11 and a % 19 and a % 23)
    [(kind, genres, developers, header, description, details_name)] = fetch_all(
        runtime,
        "SELECT game_type, genres, developers, header_image, short_description, details->>'name'"
        " FROM games WHERE platform_game_id = %s",
        str(a_game),
    )
    assert kind == "game" and genres and developers and header and description and details_name
    assert dead_letters(runtime, "low") == 0

    # A re-sync of both libraries queues nothing: every app has fresh details (or none).
    client.request_sync(small)
    client.request_sync(large)
    wait_for(
        lambda: (
            fetch_all(runtime, "SELECT count(*) FROM sync_runs WHERE status = 'completed'")
            == [(4,)]
        ),
        60,
        "the re-syncs",
    )
    wait_for(lambda: settled_enrichment(runtime), 30, "nothing left to enrich")
    assert sim.stats()["calls"]["appdetails"] == 330


def test_a_store_rate_limit_defers_enrichment_until_it_clears(
    runtime, register, sim, simulator, enrich_worker
):
    """The store answers 429 above 40 calls per 2 s: enrichment waits, finishes, no dead letter."""
    import requests

    requests.post(
        f"{simulator.url}/_sim/rate-limit",
        json={"api": "store", "calls": 40, "window_s": 2},
        timeout=5,
    ).raise_for_status()
    library_id = register(steam_id_for(150, seed=302))
    client.request_sync(library_id)

    final = wait_for(lambda: settled_enrichment(runtime), 120, "enrichment under a store limit")

    stats = sim.stats()
    assert stats["rejected_429"] > 0  # the limit was met ...
    assert final["enriched"] + final["unavailable"] == 150  # ... and everything got done
    assert stats["calls"]["appdetails"] - stats["rejected_429"] == 150
    assert dead_letters(runtime, "low") == 0


def test_enrichment_stopped_by_a_deploy_resumes_without_refetching(
    runtime, register, sim, subprocess_env, tmp_path
):
    """SIGTERM while chunks are in flight: the new worker fetches only what was not done."""
    slow_store = {**subprocess_env, **ENV}
    library_id = register(steam_id_for(200, seed=303))
    sim.fault(match="appdetails", kind="delay", delay_s=0.05, count=10_000)
    old = WorkerGroup(slow_store, tmp_path / "old.log", queues=("high", "default", "low"))
    old.wait_ready()
    reset_broker()
    client.request_sync(library_id)
    wait_for(lambda: counts(runtime)["enriched"] >= 40, 60, "enrichment to be under way")

    assert old.stop() == 0
    done_by_old = sim.stats()["calls"]["appdetails"]
    new = WorkerGroup(slow_store, tmp_path / "new.log", queues=("high", "default", "low"))
    new.wait_ready()
    try:
        final = wait_for(lambda: settled_enrichment(runtime), 90, "the new worker to finish")
    finally:
        new.kill()
        old.kill()

    assert 40 <= done_by_old < 200
    assert final["enriched"] + final["unavailable"] == 200
    assert sim.stats()["calls"]["appdetails"] == 200  # nothing fetched twice


def test_enrich_status_and_all_stale_refresh_old_details(
    runtime, register, sim, subprocess_env, enrich_worker
):
    """Details past the refresh age show as stale; `enrich --all-stale` fetches them again."""
    library_id = register(steam_id_for(60, seed=304))
    client.request_sync(library_id)
    wait_for(lambda: settled_enrichment(runtime), 60, "the first enrichment")
    fetch_all(
        runtime,
        "UPDATE games SET enriched_at = enriched_at - interval '31 days'"
        " WHERE platform_game_id IN (SELECT platform_game_id FROM games ORDER BY 1 LIMIT 10)"
        " RETURNING 1",
    )
    env = {**subprocess_env, **ENV}
    status = json.loads(cli(env, "enrich", "--status").stdout)
    assert status["stale"] == 10

    assert json.loads(cli(env, "enrich").stdout) == {"queued": 0}  # nothing without details
    assert json.loads(cli(env, "enrich", "--all-stale").stdout) == {"queued": 10}
    wait_for(
        lambda: counts(runtime)["stale"] == 0 and settled_enrichment(runtime), 60, "the refresh"
    )
    assert sim.stats()["calls"]["appdetails"] == 60 + 10


def test_an_unchanged_resync_claims_nothing_and_the_tick_refreshes_stale_details(
    runtime, register, sim, enrich_worker
):
    """Only new games can lack details: a re-sync that found none leaves enrichment alone
    (the claim cost a third of an unchanged sync), and details past their refresh age are
    fetched again on the scheduler's tick instead."""
    library_id = register(steam_id_for(40, seed=305))
    client.request_sync(library_id)
    wait_for(lambda: settled_enrichment(runtime), 60, "the first enrichment")
    calls = sim.stats()["calls"]["appdetails"]
    fetch_all(
        runtime,
        "UPDATE games SET enriched_at = enriched_at - interval '31 days'"
        " WHERE platform_game_id IN (SELECT platform_game_id FROM games ORDER BY 1 LIMIT 5)"
        " RETURNING 1",
    )

    client.request_sync(library_id)
    wait_for(lambda: settled_enrichment(runtime, 2), 60, "the unchanged re-sync")
    assert counts(runtime)["stale"] == 5
    assert sim.stats()["calls"]["appdetails"] == calls

    get_broker().enqueue(tick_message())
    wait_for(
        lambda: counts(runtime)["stale"] == 0 and settled_enrichment(runtime, 2), 60, "the refresh"
    )
    assert sim.stats()["calls"]["appdetails"] == calls + 5
    [tick_line] = enrich_worker.events("schedule.tick")[-1:]
    assert tick_line["details_queued"] == 5
