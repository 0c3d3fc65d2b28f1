"""Retries through a real worker: transient errors retry, permanent ones fail at once."""

from __future__ import annotations

from sync_worker.simulator import ProfileKind, steam_id_for
from tests.conftest import fetch_all
from tests.workers import dead_letters, sync_and_collect


def test_transient_errors_retry_with_backoff_then_complete(runtime, register, worker, sim):
    """Two 503s: two `retrying` events, then the same run completes on the third attempt."""
    library_id = register(steam_id_for(150, seed=61))
    sim.fault(match="GetOwnedGames", kind="status", status=503, count=2)

    events = sync_and_collect(library_id)

    statuses = [e["status"] for e in events]
    assert statuses[0] == "queued" and statuses[-1] == "completed"
    retrying = [e for e in events if e["status"] == "retrying"]
    assert len(retrying) == 2 and all(e["error"]["code"] == "steam_unavailable" for e in retrying)
    assert all(e["retry_in_s"] > 0 for e in retrying)
    assert fetch_all(runtime, "SELECT status, attempts, new_games FROM sync_runs") == [
        ("completed", 3, 150)
    ]
    assert dead_letters(runtime) == 0


def test_exhausted_retries_dead_letter_and_every_record_agrees(runtime, register, worker, sim):
    """Past RETRY_MAX the message is dead-lettered; row, run and last event say the same thing."""
    library_id = register(steam_id_for(40, seed=62))
    sim.fault(match="GetOwnedGames", kind="status", status=503, count=50)

    events = sync_and_collect(library_id)

    final = events[-1]
    assert [e["status"] for e in events].count("retrying") == 3  # RETRY_MAX=3 in the test env
    assert final["status"] == "failed" and final["error"]["code"] == "steam_unavailable"
    [(status, sync_error)] = fetch_all(
        runtime, "SELECT sync_status, sync_error FROM user_libraries"
    )
    [(run_status, run_error, attempts)] = fetch_all(
        runtime, "SELECT status, error, attempts FROM sync_runs"
    )
    assert (status, run_status, attempts) == ("failed", "failed", 4)
    assert sync_error == run_error == final["error"]
    assert dead_letters(runtime) == 1
    assert sim.calls() == 4


def test_permanent_errors_fail_at_once_without_retrying(runtime, register, worker, sim):
    """A private profile is not retried: one call, no `retrying`, nothing dead-lettered."""
    library_id = register(steam_id_for(10, ProfileKind.PRIVATE_GAME_DETAILS, seed=63))

    events = sync_and_collect(library_id)

    assert [e["status"] for e in events] == ["queued", "starting", "failed"]
    assert events[-1]["error"]["code"] == "private_profile"
    assert sim.calls() == 1 and dead_letters(runtime) == 0
