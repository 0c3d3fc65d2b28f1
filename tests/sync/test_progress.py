"""The progress publisher's throttle, on a fake clock and real Redis."""

from __future__ import annotations

import json

from sync_worker import keys
from sync_worker.sync.progress import ProgressPublisher


def test_batch_updates_are_throttled_but_first_and_last_always_go_out(runtime):
    """At 1 event/s with batches every 0.3 s: first, one per second, and the last."""
    now = [0.0]
    publisher = ProgressPublisher(
        runtime.redis, "lib-1", ttl_s=60, min_interval_s=1.0, clock=lambda: now[0]
    )
    publisher.publish("starting")
    sent = []
    for done in range(100, 1001, 100):
        now[0] += 0.3
        event = publisher.batch(done, 1000, current_game=None, started_at="t0")
        if event is not None:
            sent.append(event["games_processed"])
    # t=0.3 first; then the first batch at least 1 s after the previous send; the last.
    assert sent == [100, 500, 900, 1000]
    latest = json.loads(runtime.redis.get(keys.progress_key("lib-1")))
    assert latest["games_processed"] == 1000 and latest["progress"] == 100


def test_eta_follows_the_observed_rate(runtime):
    """100 games per second observed, 500 left: about five seconds."""
    now = [0.0]
    publisher = ProgressPublisher(
        runtime.redis, "lib-2", ttl_s=60, min_interval_s=0, clock=lambda: now[0]
    )
    publisher.batch(100, 1000, current_game=None, started_at="t0")
    now[0] = 4.0
    assert publisher.batch(500, 1000, current_game="X", started_at="t0")["eta_seconds"] == 5.0
