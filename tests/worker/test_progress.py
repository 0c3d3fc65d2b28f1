"""Progress and log context through a real worker."""

from __future__ import annotations

import json

from sync_worker import keys
from sync_worker.simulator import steam_id_for
from tests.conftest import wait_for
from tests.workers import sync_and_collect


def test_events_arrive_in_order_and_the_key_holds_the_last(runtime, register, worker):
    """queued, starting, per-batch syncing up to 100 %, completed; the key equals the last event."""
    library_id = register(steam_id_for(420, seed=91))

    events = sync_and_collect(library_id)

    statuses = [e["status"] for e in events]
    assert statuses[:2] == ["queued", "starting"] and statuses[-1] == "completed"
    syncing = [e for e in events if e["status"] == "syncing"]
    assert [e["games_processed"] for e in syncing] == [100, 200, 300, 400, 420]
    assert all(isinstance(e["eta_seconds"], int | float) for e in syncing[1:-1])
    assert json.loads(runtime.redis.get(keys.progress_key(library_id))) == events[-1]


def test_every_log_line_of_a_job_carries_its_correlation_ids(runtime, register, worker):
    """message id, actor, library id and attempt on each of the job's log lines."""
    library_id = register(steam_id_for(15, seed=92))
    events = sync_and_collect(library_id)
    assert events[-1]["status"] == "completed"

    def job_lines() -> list[dict]:
        text = worker.log_path.read_text()
        lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
        return [line for line in lines if line.get("library_id") == library_id]

    # The final event is published before the job's last log lines are written.
    lines = wait_for(
        lambda: (
            (found := job_lines())
            and any(line["event"] == "sync.finished" for line in found)
            and found
        ),
        10,
        "the job's last log line",
    )
    assert {"sync.started", "sync.completed", "sync.finished"} <= {line["event"] for line in lines}
    assert all(
        line["actor"] == "sync_library" and line["attempt"] == 1 and line["message_id"]
        for line in lines
    )
    assert len({line["message_id"] for line in lines}) == 1
