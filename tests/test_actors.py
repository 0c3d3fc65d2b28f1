"""Actor wiring, as a pure unit test on Dramatiq's StubBroker."""

from __future__ import annotations

from dramatiq.brokers.stub import StubBroker

from sync_worker.actors import MAX_RETRIES, declare_actors, should_retry
from sync_worker.errors import InvalidSteamId, SteamUnavailable, UnknownLibrary


def test_sync_library_is_declared_with_its_stable_name_and_queue():
    """The web service sends to `sync_library`; manual syncs default to `high`."""
    broker = StubBroker()
    actors = declare_actors(broker)
    actor = actors["sync_library"]
    assert broker.get_actor("sync_library") is actor
    assert actor.queue_name == "high"
    assert actor.options["retry_when"] is should_retry


def test_only_transient_errors_are_retried_and_only_so_often():
    """Permanent errors and foreign exceptions fail at once; transient ones retry up to the cap."""
    assert should_retry(0, SteamUnavailable())
    assert not should_retry(MAX_RETRIES, SteamUnavailable())
    assert not should_retry(0, InvalidSteamId())
    assert not should_retry(0, UnknownLibrary())
    assert not should_retry(0, ValueError("bug"))
