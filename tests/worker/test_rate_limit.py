"""Rate limiting through a real worker: 429s back off the bucket and defer, never dead-letter."""

from __future__ import annotations

from sync_worker import keys
from sync_worker.simulator import steam_id_for
from tests.conftest import fetch_all
from tests.workers import dead_letters, sync_and_collect


def test_a_429_storm_defers_the_sync_until_it_clears(runtime, register, worker, sim):
    """Three 429s in a row: the job steps aside (queued with the reason), then completes."""
    library_id = register(steam_id_for(60, seed=71))
    sim.fault(match="GetOwnedGames", kind="status", status=429, count=3)

    events = sync_and_collect(library_id, timeout_s=90)

    statuses = [e["status"] for e in events]
    assert statuses[-1] == "completed" and "retrying" not in statuses and "failed" not in statuses
    deferrals = [e for e in events[1:] if e["status"] == "queued"]
    assert deferrals and all("rate-limit budget" in e["message"] for e in deferrals)
    assert sim.calls() == 4  # three 429s, one success
    assert fetch_all(runtime, "SELECT status, new_games FROM sync_runs") == [("completed", 60)]
    assert dead_letters(runtime) == 0
    assert (
        runtime.redis.get(keys.rate_strikes_key("steam_webapi")) is None
    )  # success reset the strikes


def test_a_bucket_in_backoff_makes_new_syncs_wait_not_fail(runtime, register, worker, sim):
    """While another worker's 429 backoff holds, a new sync defers and later completes."""
    library_id = register(steam_id_for(20, seed=72))
    runtime.redis.set(keys.rate_backoff_key("steam_webapi"), "429", px=1500)

    events = sync_and_collect(library_id, timeout_s=60)

    assert events[-1]["status"] == "completed"
    assert any(e["status"] == "queued" and "retry_in_s" in e for e in events)
