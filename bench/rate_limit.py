"""The global limiter with 8 processes on one bucket, beside the `limits` library.

1. Never over the limit: 8 processes acquire from one bucket (LIMIT per WINDOW_S) for
   SECONDS, recording each admission's Redis server time; the busiest sliding window
   of the run must hold at most LIMIT, and the run should use most of the budget.
2. Latency: 8 processes acquire as fast as they can from a bucket that never fills:
   ours (one script: sliding window, daily cap, the shared 429 back-off) beside
   `limits`' MovingWindowRateLimiter.hit on the same Redis (a sliding window only).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from typing import Any

import redis

from sync_worker.ratelimit import Bucket, RateLimiter

from .common import bench_runtime

PROCESSES = 8
LIMIT, WINDOW_S, SECONDS = 50, 1.0, 6.0
LATENCY_SECONDS = 3.0
UNREACHABLE = 10_000_000  # a limit the latency run never reaches


def _child(mode: str, redis_url: str, bucket: str, seconds: float) -> list[float]:
    """One contending process: admission server times (ms), or per-call latencies (s)."""
    client = redis.Redis.from_url(redis_url)
    deadline = time.monotonic() + seconds
    results: list[float] = []
    if mode == "limits":
        from limits import RateLimitItemPerSecond
        from limits.storage import RedisStorage
        from limits.strategies import MovingWindowRateLimiter

        moving = MovingWindowRateLimiter(
            RedisStorage("redis://unused", connection_pool=client.connection_pool)
        )
        item = RateLimitItemPerSecond(UNREACHABLE, 10)
        while time.monotonic() < deadline:
            started = time.perf_counter()
            assert moving.hit(item, bucket)
            results.append(time.perf_counter() - started)
        return results
    limit, window_s = (LIMIT, WINDOW_S) if mode == "contended" else (UNREACHABLE, 10.0)
    limiter = RateLimiter(
        client, {bucket: Bucket(bucket, limit, window_s, 1 << 53)}, max_wait_s=None
    )
    while time.monotonic() < deadline:
        started = time.perf_counter()
        admission = limiter.acquire(bucket)
        elapsed = time.perf_counter() - started
        results.append(admission.server_time_ms if mode == "contended" else elapsed)
    return results


def run_processes(mode: str, redis_url: str, bucket: str, seconds: float) -> list[float]:
    """Start PROCESSES children at once; return all their results together."""
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "bench.rate_limit", mode, redis_url, bucket, str(seconds)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    results: list[float] = []
    for child in children:
        out, _ = child.communicate(timeout=seconds + 60)
        if child.returncode != 0:
            raise SystemExit(f"a {mode} child exited {child.returncode}")
        results += json.loads(out)
    return results


def busiest_window(times_ms: list[float], window_ms: float) -> int:
    """The most admissions in any window of `window_ms` (two pointers over sorted times)."""
    times = sorted(times_ms)
    most, start = 0, 0
    for end, t in enumerate(times):
        while times[start] <= t - window_ms:
            start += 1
        most = max(most, end - start + 1)
    return most


def main() -> dict[str, Any]:
    """Print both parts; return their figures."""
    with bench_runtime() as (runtime, _):
        url = str(runtime.settings.redis_url)
        runtime.redis.flushdb()
        admitted = run_processes("contended", url, "bench_contended", SECONDS)
        ours = run_processes("ours", url, "bench_latency_ours", LATENCY_SECONDS)
        theirs = run_processes("limits", url, "bench_latency_limits", LATENCY_SECONDS)
    span_s = (max(admitted) - min(admitted)) / 1000
    allowed = LIMIT * (span_s / WINDOW_S + 1)  # windows the admissions spanned, the first full
    peak = busiest_window(admitted, WINDOW_S * 1000)

    def per_call(latencies: list[float]) -> tuple[float, float, float]:
        ordered = sorted(latencies)
        median_ms = statistics.median(ordered) * 1000
        p99_ms = ordered[int(len(ordered) * 0.99)] * 1000
        return median_ms, p99_ms, len(ordered) / LATENCY_SECONDS

    figures = {
        "admitted": len(admitted),
        "busiest_window": peak,
        "limit": LIMIT,
        "budget_used": len(admitted) / allowed,
        "ours_ms": per_call(ours),
        "limits_ms": per_call(theirs),
    }
    print(f"rate limiter: {PROCESSES} processes on one bucket of {LIMIT} per {WINDOW_S:g} s")
    print(
        f"  {SECONDS:g} s contended: {len(admitted)} admitted, busiest window {peak}/{LIMIT}"
        f" (must be <= {LIMIT}), budget used {figures['budget_used']:.0%}"
    )
    ours_median, ours_p99, ours_rate = figures["ours_ms"]
    limits_median, limits_p99, limits_rate = figures["limits_ms"]
    print(
        f"  acquire, never full:  ours   median {ours_median:5.2f} ms  p99 {ours_p99:5.2f} ms"
        f"  {ours_rate:7,.0f}/s   (window + daily cap + shared 429 back-off)"
    )
    print(
        f"  baseline: limits      median {limits_median:5.2f} ms  p99 {limits_p99:5.2f} ms"
        f"  {limits_rate:7,.0f}/s   (moving window only)   ours/limits median"
        f" {ours_median / limits_median:4.2f}x"
    )
    return figures


if __name__ == "__main__":
    if len(sys.argv) == 5:  # a child: mode, redis url, bucket, seconds
        print(json.dumps(_child(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]))))
    else:
        main()
