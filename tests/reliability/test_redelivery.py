"""Every side effect keyed by its message: a message that comes back after its run ended
(its worker died between the final commit and the ack) is acknowledged, not run again."""

from __future__ import annotations

import json
import threading

import dramatiq

from sync_worker import client, keys, sending
from sync_worker.app import get_broker, reset_broker
from sync_worker.simulator import steam_id_for
from tests.conftest import fetch_all, wait_for
from tests.reliability.conftest import report
from tests.workers import idle, sync_and_collect


def listen(runtime, library_id: str, events: list[dict], stop: threading.Event) -> None:
    pubsub = runtime.redis.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(keys.PROGRESS_CHANNEL)
    for _ in range(600):  # bounded: at most a minute
        if stop.is_set():
            break
        message = pubsub.get_message(timeout=0.1)
        if message is not None:
            event = json.loads(message["data"])
            if event["library_id"] == library_id:
                events.append(event)
    pubsub.close()


def test_a_redelivered_message_whose_run_completed_opens_no_second_run(
    runtime, register, sim, worker
):
    reset_broker()
    library_id = register(steam_id_for(300, seed=171))
    first = sync_and_collect(library_id)
    assert first[-1]["status"] == "completed"
    [(message_id,)] = fetch_all(
        runtime, "SELECT message_id FROM sync_runs WHERE library_id = %s", library_id
    )
    calls = sim.calls()

    # What maintenance puts back for a worker killed before its ack: the same message.
    events: list[dict] = []
    stop = threading.Event()
    listener = threading.Thread(target=listen, args=(runtime, library_id, events, stop))
    listener.start()
    try:
        wait_for(
            lambda: runtime.redis.pubsub_numsub(keys.PROGRESS_CHANNEL)[0][1] > 0, 5, "listening"
        )
        again = sending.sync_message(library_id)
        get_broker().enqueue(dramatiq.Message(**{**again.asdict(), "message_id": message_id}))
        wait_for(lambda: idle(runtime), 30, "the worker to take and ack it")
    finally:
        stop.set()
        listener.join()

    runs = fetch_all(runtime, "SELECT status FROM sync_runs WHERE library_id = %s", library_id)
    assert runs == [("completed",)]
    assert sim.calls() == calls  # no second Steam call
    assert events == []  # the page saw no second starting -> completed
    assert client.get_status(library_id)["status"] == "completed"
    assert runtime.redis.get(keys.pending_key(library_id)) is None
    report(
        "the same message redelivered after its run completed",
        "acked, no second run",
        f"{len(runs)} run, {sim.calls() - calls} Steam calls, {len(events)} events",
        300,
        None,
    )
