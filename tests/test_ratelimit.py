"""The global limiter on real Redis: exact under concurrency, weights, daily cap, server time."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from freezegun import freeze_time

from sync_worker.errors import RateLimitDeferred
from sync_worker.ratelimit import NO_DAILY_CAP, Bucket, RateLimiter, bucket_usage

WORKER = """
import json, sys, time
import redis
from sync_worker.ratelimit import Bucket, RateLimiter
url, limit, window_s, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
limiter = RateLimiter(redis.Redis.from_url(url), {"t": Bucket("t", limit, window_s, 10**9)}, max_wait_s=0)
admitted, attempts, deadline = [], 0, time.monotonic() + seconds
while time.monotonic() < deadline:
    attempts += 1
    a = limiter.try_acquire("t")
    if a.admitted:
        admitted.append(a.server_time_ms)
print(json.dumps({"admitted": admitted, "attempts": attempts}))
"""


def limiter_for(
    runtime, limit: int = 10, window_s: float = 60, daily: int = 10**9, name: str = "t", **kw
) -> RateLimiter:
    bucket = Bucket(name, limit, window_s, daily)
    return RateLimiter(runtime.redis, {name: bucket}, max_wait_s=kw.pop("max_wait_s", 0), **kw)


def max_in_any_window(times_ms: list[int], window_ms: int) -> int:
    times, best, start = sorted(times_ms), 0, 0
    for end, t in enumerate(times):
        while times[start] <= t - window_ms:
            start += 1
        best = max(best, end - start + 1)
    return best


def test_eight_processes_never_admit_more_than_the_limit_in_any_window(runtime, settings):
    """8 processes hammering one bucket: no window over N, and close to N admitted."""
    limit, window_s, seconds = 50, 1.0, 3.5
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WORKER,
                str(settings.redis_url),
                str(limit),
                str(window_s),
                str(seconds),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    results = [json.loads(p.communicate(timeout=60)[0]) for p in procs]
    admitted = [t for r in results for t in r["admitted"]]
    attempts = sum(r["attempts"] for r in results)

    worst = max_in_any_window(admitted, int(window_s * 1000))
    print(
        f"\n8 processes, limit {limit}/{window_s:.0f}s, {seconds}s: {attempts} attempts, "
        f"{len(admitted)} admitted, busiest window {worst}"
    )
    assert worst <= limit
    assert worst == limit  # saturated: the limit is reached, not undershot
    assert len(admitted) >= 3 * limit  # at least three full windows' worth in 3.5 s


def test_weights_count_fully(runtime):
    """A weight-5 acquire takes five slots; one that cannot ever fit says so."""
    limiter = limiter_for(runtime, limit=10)
    assert limiter.try_acquire("t", 5).admitted and limiter.try_acquire("t", 5).admitted
    third = limiter.try_acquire("t", 5)
    assert not third.admitted and third.used == 10 and 59 < third.retry_after_s <= 60.01
    assert runtime.redis.zcard("sync:ratelimit:t:window") == 10
    assert limiter.try_acquire("t", 11).retry_after_s == float("inf")


def test_daily_cap_holds_until_the_next_utc_day(runtime):
    """Past the daily cap nothing is admitted, whatever the window says; retry-after is midnight UTC."""
    limiter = limiter_for(runtime, limit=100, daily=7)
    assert sum(limiter.try_acquire("t").admitted for _ in range(10)) == 7
    refused = limiter.try_acquire("t")
    seconds_to_midnight = 86_400 - (refused.server_time_ms // 1000) % 86_400
    assert not refused.admitted and abs(refused.retry_after_s - seconds_to_midnight) <= 1


def test_client_clock_skew_cannot_over_admit(runtime):
    """Windows use Redis time: a client clock far off, or jumping ahead, frees no slot."""
    limiter = limiter_for(runtime, limit=5)
    with freeze_time("2031-03-01 12:00:00") as clock:
        assert sum(limiter.try_acquire("t").admitted for _ in range(5)) == 5
        clock.tick(timedelta(hours=2))  # this process now believes the window is long over
        assert not limiter.try_acquire("t").admitted
    assert (
        not limiter_for(runtime, limit=5).try_acquire("t").admitted
    )  # nor does an unskewed client


def test_calls_above_80_percent_are_paced_increasingly(runtime):
    """No pause below 80 % of the window; then pauses growing to one even share of the window."""
    pauses: list[float] = []
    limiter = limiter_for(runtime, limit=10, window_s=60, max_wait_s=None, sleep=pauses.append)
    for _ in range(10):
        limiter.acquire("t")
    # 9/10 used: half of 6 s (60 s / 10 calls); 10/10 used: the full 6 s.
    assert pauses == pytest.approx([3.0, 6.0])


def test_long_waits_defer_and_short_waits_sleep(runtime):
    """Within max_wait the caller sleeps and gets through; beyond it, RateLimitDeferred."""
    limiter = limiter_for(runtime, limit=1, window_s=0.3, max_wait_s=1.0)
    limiter.acquire("t")
    assert limiter.acquire("t").admitted  # waited ~0.3 s in-thread
    pauses: list[float] = []
    patient = limiter_for(
        runtime, limit=2, window_s=30, max_wait_s=1.0, name="slow", sleep=pauses.append
    )
    patient.acquire("slow")
    patient.acquire("slow")
    assert pauses == [1.0]  # pacing would be 15 s; capped at max_wait
    with pytest.raises(RateLimitDeferred) as deferred:
        patient.acquire("slow")
    assert 28 < deferred.value.retry_after_s <= 30.01 and deferred.value.bucket == "slow"


def test_a_429_backs_the_bucket_off_for_every_limiter_then_resumes(runtime):
    """penalize() pauses all workers' limiters, doubles per strike, and clears on success."""
    ours = limiter_for(runtime, limit=100, backoff_s=0.2, backoff_max_s=10)
    theirs = limiter_for(runtime, limit=100)
    assert ours.penalize("t") == pytest.approx(0.2)
    refused = theirs.try_acquire("t")
    assert not refused.admitted and refused.used == -1 and 0 < refused.retry_after_s <= 0.2
    assert ours.penalize("t") == pytest.approx(0.4)  # second strike in a row
    assert ours.penalize("t", retry_after_s=0.1) == pytest.approx(0.1)  # Retry-After wins
    theirs_waits = limiter_for(runtime, limit=100, max_wait_s=1.0)
    assert theirs_waits.acquire("t").admitted
    ours.succeeded("t")
    assert ours.penalize("t") == pytest.approx(0.2)  # strikes reset


def test_bucket_usage_reads_the_window_the_day_the_backoff_and_the_deferrals(runtime):
    """What the dashboard shows: used in the window, used today, a 429 back-off and until
    when, and the deferrals of the last hour (counted only when a job steps back)."""
    buckets = {"t": Bucket("t", 3, 60, 100), "u": Bucket("u", 5, 60, NO_DAILY_CAP)}
    limiter = RateLimiter(runtime.redis, buckets, max_wait_s=0)
    for _ in range(3):
        assert limiter.acquire("t").admitted
    for _ in range(2):
        with pytest.raises(RateLimitDeferred):
            limiter.acquire("t")
    limiter.penalize("u", retry_after_s=30)

    t, u = bucket_usage(runtime.redis, buckets)
    assert (t.bucket, t.used, t.limit, t.window_s) == ("t", 3, 3, 60)
    assert (t.daily_used, t.daily_limit, t.deferrals_last_hour) == (3, 100, 2)
    assert t.backoff_until is None
    assert (u.used, u.daily_used, u.daily_limit, u.deferrals_last_hour) == (0, 0, None, 0)
    assert u.backoff_until is not None
    assert 25 < (u.backoff_until - datetime.now(UTC)).total_seconds() <= 30.5
