"""GOG libraries through a real worker: requested, retried, dead-lettered and auto-synced
like Steam's, and no GOG token anywhere but sealed in its table."""

from __future__ import annotations

import json

import requests

from sync_worker import client
from sync_worker.app import get_broker
from sync_worker.simulator.gog import gog_user_id_for, is_movie, parse_account
from tests.conftest import (
    assert_no_secret,
    assert_no_secret_at_rest,
    library_status,
    link_gog,
    wait_for,
)
from tests.workers import dead_letters, sync_and_collect, tick_message


def live_tokens(simulator) -> list[str]:
    with simulator.gog.lock:
        return [*simulator.gog._access, *simulator.gog._refresh]


def test_a_gog_library_syncs_through_a_worker_and_no_token_leaks(
    runtime, settings, simulator, worker
):
    requests.post(f"{simulator.url}/_sim/reset", timeout=5).raise_for_status()
    user_id = gog_user_id_for(320, seed=71)
    library_id = link_gog(settings, user_id)
    events = sync_and_collect(library_id)
    account = parse_account(user_id)
    assert account is not None
    games = [p for p in simulator.gog.owned(account) if not is_movie(p)]
    assert events[-1]["status"] == "completed" and events[-1]["total_games"] == len(games)
    assert any(e["status"] == "syncing" and 0 < e["progress"] < 100 for e in events)

    # Steam-style retries and dead letters, for GOG's outages too.
    requests.post(
        f"{simulator.url}/_sim/faults",
        json={"match": "gog_userData", "kind": "status", "status": 503, "count": 4},
        timeout=5,
    ).raise_for_status()
    failed = sync_and_collect(library_id, force=True)
    assert failed[-1]["status"] == "failed" and failed[-1]["error"]["code"] == "gog_unavailable"
    assert dead_letters(runtime) == 1

    tokens = live_tokens(simulator)
    assert tokens
    assert_no_secret_at_rest(runtime, *tokens)  # Redis (events, dead letters) and every table
    assert_no_secret(json.dumps(events + failed), "progress events", *tokens)
    assert_no_secret(worker.text(), "the worker's log", *tokens)


def test_the_scheduler_auto_syncs_gog_libraries(runtime, settings, simulator, worker):
    requests.post(f"{simulator.url}/_sim/reset", timeout=5).raise_for_status()
    library_id = link_gog(settings, gog_user_id_for(60, seed=72))
    get_broker().enqueue(tick_message())
    wait_for(lambda: library_status(runtime, library_id) == "completed", 30, "the auto-sync")
    assert client.get_history(library_id)[0]["sync_type"] == "scheduled"  # as ticks queue them
