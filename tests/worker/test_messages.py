"""Messages through the real Redis broker and a real `dramatiq` worker process."""

from __future__ import annotations

import dramatiq

from sync_worker import client
from sync_worker.app import get_broker
from sync_worker.simulator import steam_id_for
from tests.conftest import fetch_all, library_status, wait_for
from tests.workers import dead_letters


def wait_for_status(runtime, library_id: str, statuses: set[str], timeout_s: float = 60) -> str:
    return wait_for(
        lambda: (s := library_status(runtime, library_id)) in statuses and s,
        timeout_s,
        f"library {library_id} to reach {statuses}",
    )


def test_requested_syncs_are_processed_by_a_real_worker(runtime, register, worker, sim):
    """A manual (high) and a scheduled (default) request both complete with exact rows."""
    manual_id = register(steam_id_for(700, seed=41))
    scheduled_id = register(steam_id_for(90, seed=42))

    client.request_sync(manual_id)
    client.request_sync(scheduled_id, sync_type="scheduled")

    assert wait_for_status(runtime, manual_id, {"completed", "failed"}) == "completed"
    assert wait_for_status(runtime, scheduled_id, {"completed", "failed"}) == "completed"
    runs = dict(
        fetch_all(runtime, "SELECT library_id::text, sync_type || ':' || new_games FROM sync_runs")
    )
    assert runs == {manual_id: "manual:700", scheduled_id: "scheduled:90"}
    wait_for(
        lambda: client.get_status(manual_id)["status"] == "completed", 10, "the completed event"
    )


def test_a_malformed_message_fails_at_once_without_retries(runtime, worker):
    """Bad arguments are permanent: dead-lettered on the first attempt, never retried."""
    broker = get_broker()
    message = dramatiq.Message(
        queue_name="high",
        actor_name="sync_library",
        args=(42,),
        kwargs={"sync_type": "weekly"},
        options={},
    )
    broker.enqueue(message)
    wait_for(lambda: runtime.redis.zcard("dramatiq:high.XQ"), 30, "the message to be dead-lettered")
    assert dead_letters(runtime) == 1  # Dramatiq's dead-letter set for `high`
    assert runtime.redis.zcard("dramatiq:high.DQ") == 0  # and nothing scheduled for a retry
