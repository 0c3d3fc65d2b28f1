"""The scheduler's tick through the real broker, and a real worker completing what it queued."""

from __future__ import annotations

from datetime import timedelta

from sync_worker.app import get_broker
from sync_worker.simulator import steam_id_for
from tests.conftest import fetch_all, wait_for
from tests.workers import tick_message


def test_a_tick_queues_due_libraries_and_the_worker_syncs_them(runtime, worker, sim):
    """Rows inserted by the web service are auto-synced on the next tick, nothing else done."""
    ids = [
        fetch_all(
            runtime,
            "INSERT INTO user_libraries (platform, platform_user_id) VALUES ('steam', %s)"
            " RETURNING library_id::text",
            steam_id_for(30 + i, seed=230 + i),
        )[0][0]
        for i in range(3)
    ]
    ticks_before = len(worker.events("schedule.tick"))
    get_broker().enqueue(tick_message())

    def synced() -> list[tuple]:
        rows = fetch_all(
            runtime,
            "SELECT r.sync_type, r.status, l.next_sync_at - l.last_success_at FROM sync_runs r"
            " JOIN user_libraries l USING (library_id)",
        )
        return rows if len(rows) == 3 and all(r[1] == "completed" for r in rows) else []

    runs = wait_for(synced, 60, "the three scheduled syncs")
    assert {(kind, due_after) for kind, _, due_after in runs} == {
        ("scheduled", timedelta(hours=24))
    }
    assert sim.calls() == 3
    assert len(worker.events("schedule.tick")) == ticks_before + 1  # the package's worker
    assert len(ids) == 3
