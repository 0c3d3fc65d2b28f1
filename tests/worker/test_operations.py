"""What an operator runs: `sync-worker health` and `sync-worker dead-letters`, against a
real worker, real servers and the simulator."""

from __future__ import annotations

import json
import time

import dramatiq

from sync_worker import keys
from sync_worker.app import get_broker
from sync_worker.simulator import steam_id_for
from tests.conftest import cli, fetch_all, library_status, wait_for
from tests.workers import dead_letters, sync_and_collect


def wait_for_heartbeat(runtime) -> None:
    """Each test starts on an emptied Redis: wait for the worker's next beat (every 5 s)."""
    wait_for(lambda: runtime.redis.zcard(keys.WORKERS_KEY), 10, "a worker heartbeat")


def test_health_reports_servers_schema_queues_and_workers_and_never_calls_steam(
    runtime, subprocess_env, worker, sim
):
    wait_for_heartbeat(runtime)
    started = time.monotonic()
    result = cli(subprocess_env, "health")
    took_s = time.monotonic() - started

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["healthy"], report["redis"], report["postgres"]) == (True, True, True)
    assert report["schema"]["applied"] == report["schema"]["expected"] == "0011_relink_required"
    assert set(report["queues"]) == {"high", "default", "low"}
    served = sorted(q for w in report["workers"] for q in w["queues"])
    assert served == ["default", "high"]  # this worker group's queues (see tests/worker/conftest)
    assert report["elapsed_ms"] < 1000
    assert took_s < 5  # the check itself; the rest is interpreter start-up
    assert sim.stats()["calls"] == {}


def test_health_is_unhealthy_when_a_queue_has_no_live_worker(runtime, subprocess_env, worker):
    wait_for_heartbeat(runtime)
    result = cli(subprocess_env, "health", "--min-workers", "1")
    assert result.returncode == 1
    assert result.stderr == (
        "sync-worker: unhealthy: 0 live worker(s) serve queue low; 1 required.\n"
    )
    assert json.loads(result.stdout)["healthy"] is False


def test_health_counts_backlog_and_dead_letters(runtime, subprocess_env, register, worker):
    """Ready, prefetched and delayed messages are backlog; running syncs and queues no live
    worker serves are reported."""
    wait_for_heartbeat(runtime)
    broker = get_broker()
    for _ in range(3):  # nobody serves `low` here: they stay ready
        broker.enqueue(dramatiq.Message("low", "enrich_games", (["10"],), {}, {}))
    broker.enqueue(dramatiq.Message("high", "sync_library", (42,), {}, {}))  # malformed
    wait_for(lambda: runtime.redis.zcard("dramatiq:high.XQ"), 30, "the dead letter")
    # Delayed messages a worker has prefetched: out of the delay queue's list, still stored.
    for n in range(4):
        runtime.redis.hset("dramatiq:default.DQ.msgs", f"prefetched-{n}", b"{}")
    library_id = register(steam_id_for(3, seed=64))
    fetch_all(
        runtime,
        "INSERT INTO sync_runs (library_id, sync_type, status, started_at)"
        " VALUES (%s, 'manual', 'running', now() - interval '90 seconds') RETURNING 1",
        library_id,
    )

    result = cli(subprocess_env, "health", "--max-backlog", "3")
    report = json.loads(result.stdout)
    assert report["queues"]["low"]["ready"] == 3 and report["queues"]["high"]["dead"] == 1
    assert report["queues"]["default"]["delayed"] == 4
    assert report["queues"]["default"]["backlog"] == 4
    assert report["dead_letters"] == 1
    assert report["unserved_queues"] == ["low"]
    assert report["running_syncs"]["count"] == 1 and report["running_syncs"]["oldest_s"] >= 90
    assert result.returncode == 1
    assert "queue default holds a backlog of 4 messages" in result.stderr
    runtime.redis.delete("dramatiq:low", "dramatiq:low.msgs", "dramatiq:default.DQ.msgs")
    fetch_all(runtime, "DELETE FROM sync_runs WHERE library_id = %s RETURNING 1", library_id)


def test_dead_letters_list_their_error_and_requeue_into_a_completed_sync(
    runtime, subprocess_env, register, worker, sim
):
    """Steam down past RETRY_MAX: a dead letter saying so; once Steam is back, requeueing
    it completes the sync. A letter that cannot make a sync stays listed, with its reason."""
    library_id = register(steam_id_for(30, seed=63))
    sim.fault(match="GetOwnedGames", kind="status", status=503, count=4)  # RETRY_MAX=3
    assert sync_and_collect(library_id)[-1]["status"] == "failed"
    get_broker().enqueue(dramatiq.Message("high", "sync_library", (42,), {}, {}))
    wait_for(lambda: dead_letters(runtime) == 2, 30, "both dead letters")

    listed = [json.loads(line) for line in cli(subprocess_env, "dead-letters").stdout.splitlines()]
    by_code = {letter["error"]["code"]: letter for letter in listed}
    assert set(by_code) == {"steam_unavailable", "malformed_message"}
    assert by_code["steam_unavailable"]["retries"] == 3
    assert by_code["steam_unavailable"]["error"]["message"]
    assert library_id in by_code["steam_unavailable"]["args"]

    result = cli(subprocess_env, "dead-letters", "--requeue-all")
    outcomes = {
        json.loads(line)["message_id"]: json.loads(line) for line in result.stdout.splitlines()
    }
    assert result.returncode == 1  # one of them could not be requeued
    assert outcomes[by_code["steam_unavailable"]["message_id"]]["requeued"] is True
    refused = outcomes[by_code["malformed_message"]["message_id"]]
    assert refused["requeued"] is False and refused["error"]["code"] == "malformed_message"

    wait_for(lambda: library_status(runtime, library_id) == "completed", 30, "the requeued sync")
    remaining = [
        json.loads(line) for line in cli(subprocess_env, "dead-letters").stdout.splitlines()
    ]
    assert [letter["error"]["code"] for letter in remaining] == ["malformed_message"]

    single = cli(subprocess_env, "dead-letters", "--requeue", "no-such-id")
    assert single.returncode == 2 and "no dead letter has message id" in single.stderr
