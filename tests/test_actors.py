"""Actor and middleware wiring, as pure unit tests on Dramatiq's StubBroker."""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.stub import StubBroker

from sync_worker.actors import declare_actors
from sync_worker.broker import build_middleware
from sync_worker.middleware import Cancellation, Deferrals, LogContext, Progress, Retries
from sync_worker.settings import Settings


def test_the_scheduler_tick_is_periodic_on_default_and_never_retried():
    """periodiq finds one periodic actor, on AUTO_SYNC_CRON, queued on `default`."""
    settings = Settings(_env_file=None, auto_sync_cron="*/10 * * * *")  # type: ignore[call-arg]
    broker = StubBroker(middleware=build_middleware(settings))
    actors = declare_actors(broker, settings)
    periodic = [a for a in actors.values() if "periodic" in a.options]
    assert [a.actor_name for a in periodic] == ["schedule_auto_syncs"]
    assert str(periodic[0].options["periodic"]) == "*/10 * * * *"
    assert periodic[0].queue_name == "default" and periodic[0].options["max_retries"] == 0


def test_sync_library_is_declared_with_its_stable_name_and_queue():
    """The web service sends to `sync_library`; manual syncs default to `high`, on our middleware."""
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    broker = StubBroker(middleware=build_middleware(settings))
    actor = declare_actors(broker, settings)["sync_library"]
    assert broker.get_actor("sync_library") is actor
    assert actor.queue_name == "high"


def test_middleware_order_puts_progress_after_the_deciders_in_after_hooks():
    """After-hooks run in reverse: Deferrals, then Retries, then Progress, LogContext last."""
    stack = [type(m) for m in build_middleware(Settings(_env_file=None))]  # type: ignore[call-arg]
    after_order = list(reversed(stack))
    assert stack[0] is LogContext and stack[-1] is Cancellation
    assert after_order.index(Deferrals) < after_order.index(Retries) < after_order.index(Progress)
    assert after_order[-1] is LogContext
    dramatiq_own = {t.__name__ for t in stack if t.__module__.startswith("dramatiq")}
    assert not dramatiq_own & {"Retries", "ShutdownNotifications"}  # ours replace them


def test_arguments_that_do_not_fit_the_signature_are_a_malformed_message():
    """Missing arguments and unknown keywords are the sender's mistake, not a bug."""
    import pytest

    from sync_worker.errors import MalformedMessage

    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    actor = declare_actors(StubBroker(middleware=build_middleware(settings)), settings)[
        "sync_library"
    ]
    with pytest.raises(MalformedMessage, match="missing a required argument"):
        actor.fn()
    with pytest.raises(MalformedMessage, match="unexpected keyword argument"):
        actor.fn("00000000-0000-0000-0000-000000000000", colour="blue")
    with pytest.raises(MalformedMessage, match="library_id="):
        actor.fn("x" * 1_000_000)


def test_dead_worker_recovery_runs_on_a_clock_not_per_million_commands():
    """Maintenance (which requeues a dead worker's jobs) runs at most once per interval, on
    any command but acks; Dramatiq's own knob would run it on ~1 command in 1,000."""
    import time

    import redis

    from sync_worker.broker import SyncBroker

    broker = SyncBroker(client=redis.Redis(), interval_s=0.2)  # never connects in this test
    assert [broker._should_do_maintenance(c) for c in ("fetch", "fetch", "ack")] == [1, 0, 0]
    time.sleep(0.25)
    assert broker._should_do_maintenance("nack") == 0
    assert broker._should_do_maintenance("enqueue") == 1


def test_an_in_process_worker_runs_messages_without_a_process_boot(runtime, caplog):
    """The demo's in-process worker never boots like a `dramatiq` process: the metrics
    middleware stays out of the way (Dramatiq would log each hook's failure as critical)."""
    broker = StubBroker(middleware=build_middleware(runtime.settings))
    declare_actors(broker, runtime.settings)
    broker.enqueue(dramatiq.Message("high", "sync_library", (42,), {}, {}))
    worker = dramatiq.Worker(broker, worker_threads=1)
    worker.start()
    try:
        broker.join("high", fail_fast=False)
        worker.join()
    finally:
        worker.stop()
    [dead] = broker.dead_letters
    assert dead.options["error"]["code"] == "malformed_message"
    assert not [r for r in caplog.records if "Unexpected failure" in r.getMessage()]
