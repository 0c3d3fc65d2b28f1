"""The Steam key, through every failure a worker meets at DEBUG, reaches no log, event,
dead letter, Redis value or row. (Every other test checks the same on its way out: the
CLI's output, each worker's log, and Redis and PostgreSQL after every test.)"""

from __future__ import annotations

from sync_worker import client
from sync_worker.app import reset_broker
from sync_worker.simulator import steam_id_for
from tests.conftest import TEST_KEY, assert_no_secret, assert_no_secret_at_rest, wait_for
from tests.reliability.conftest import report
from tests.workers import dead_letters, idle, sync_and_collect


def test_the_key_survives_no_failure_path(runtime, register, sim, subprocess_env, workers):
    """Reset, timeout, 500s to a dead letter, the bad-key page: the key is nowhere afterwards."""
    env = {**subprocess_env, "LOG_LEVEL": "DEBUG", "STEAM_READ_TIMEOUT_S": "1"}
    group = workers(env, "secrets").wait_ready()
    reset_broker()
    library_id = register(steam_id_for(30, seed=151))
    faults = [
        {"kind": "reset"},
        {"kind": "delay", "delay_s": 2},
        {"kind": "status", "status": 500, "count": 4},  # RETRY_MAX=3: all 4 attempts fail
    ]
    for fault in faults:
        sim.fault(match="GetOwnedGames", **fault)
        sync_and_collect(library_id)
    sim.fault(match="GetOwnedGames", kind="bad_key")
    assert sync_and_collect(library_id)[-1]["error"]["code"] == "steam_key_rejected"
    wait_for(lambda: idle(runtime), 30, "the worker to settle")

    log = group.text()
    assert "key=[redacted]" in log  # urllib3 logged request URLs, and they were masked
    assert_no_secret(log, "the worker's DEBUG log")
    assert dead_letters(runtime) >= 1  # the 500s exhausted their retries into a dead letter
    assert_no_secret_at_rest(runtime)  # events, dead letters, checkpoints, rows
    assert TEST_KEY not in str(client.get_status(library_id))
    report("key through reset/timeout/500/403 at DEBUG", "nowhere", "nowhere", 30, None)
