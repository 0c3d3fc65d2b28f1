"""The global rate limiter: a sliding-window log per bucket in Redis, shared by every process.

One atomic Lua script per acquire, on Redis server time (client clocks never matter),
one unique member per unit of weight (so concurrent acquires cannot collide on a
timestamp member and over-admit), and a cap per UTC day. Above 80 % of a window calls
are paced; when budget is further away than `max_wait_s` the caller gets
RateLimitDeferred instead of a parked thread. A 429 backs the whole bucket off.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import redis

from . import keys, metrics
from .errors import RateLimitDeferred
from .settings import Settings

PACE_FROM = 0.8  # fraction of a window after which calls are spread out
DEFERRALS_KEPT_S = 3900  # per-minute deferral counts: the last hour, and a margin

# KEYS: [window zset, backoff key, daily counter prefix]
# ARGV: [limit, window ms, weight, daily limit, unique member prefix]
# -> {admitted 0/1, used in window, limit, retry after ms (-1: never fits), server now ms}
ACQUIRE_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local weight, daily_limit = tonumber(ARGV[3]), tonumber(ARGV[4])
local penalty = redis.call('PTTL', KEYS[2])
if penalty > 0 then
    return {0, -1, limit, penalty, now}
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local used = redis.call('ZCARD', KEYS[1])
if weight > limit or weight > daily_limit then
    return {0, used, limit, -1, now}
end
local day = math.floor(now / 86400000)
local daily_key = KEYS[3] .. ':' .. day
local daily_used = tonumber(redis.call('GET', daily_key) or '0')
if daily_used + weight > daily_limit then
    return {0, used, limit, (day + 1) * 86400000 - now, now}
end
if used + weight > limit then
    local i = used + weight - limit - 1
    local oldest = redis.call('ZRANGE', KEYS[1], i, i, 'WITHSCORES')
    return {0, used, limit, tonumber(oldest[2]) + window - now + 1, now}
end
for n = 1, weight do
    redis.call('ZADD', KEYS[1], now, ARGV[5] .. ':' .. n)
end
redis.call('PEXPIRE', KEYS[1], window)
redis.call('INCRBY', daily_key, weight)
redis.call('PEXPIRE', daily_key, 2 * 86400000)
return {1, used + weight, limit, 0, now}
"""


@dataclass(frozen=True)
class Bucket:
    """One budget: `limit` units per sliding `window_s`, and `daily_limit` per UTC day."""

    name: str
    limit: int
    window_s: float
    daily_limit: int


@dataclass(frozen=True)
class BucketUsage:
    """What a bucket has spent, as the dashboard shows it (read, never written)."""

    bucket: str
    used: int  # units in the current sliding window
    limit: int
    window_s: float
    daily_used: int  # this UTC day
    daily_limit: int | None  # None: no daily cap
    backoff_until: datetime | None  # a 429 pauses the bucket until then
    deferrals_last_hour: int  # jobs sent back to the queue to wait for this budget


@dataclass(frozen=True)
class Admission:
    """The answer to one acquire attempt."""

    admitted: bool
    used: int  # units in the window after this attempt (-1 while backed off)
    limit: int
    retry_after_s: float  # 0 when admitted; inf when the weight can never fit
    server_time_ms: int


NO_DAILY_CAP = 1 << 53  # the store has no daily cap


def buckets_from(settings: Settings) -> dict[str, Bucket]:
    """Every platform's buckets as configured."""
    return {
        "steam_webapi": Bucket(
            "steam_webapi",
            settings.steam_webapi_calls_per_window,
            settings.steam_webapi_window_seconds,
            settings.steam_daily_limit,
        ),
        "steam_store": Bucket(
            "steam_store",
            settings.steam_store_calls_per_window,
            settings.steam_store_window_seconds,
            NO_DAILY_CAP,
        ),
        "gog_api": Bucket(
            "gog_api", settings.gog_calls_per_window, settings.gog_window_seconds, NO_DAILY_CAP
        ),
    }


#: Told before each wait: (bucket, seconds, the admission that caused it). An admitted
#: call waits too when it is paced (the window is more than 80 % used).
WaitNotice = Callable[[str, float, Admission], None]


class RateLimiter:
    """Acquires budget from the shared buckets; also the adapter's CallGate."""

    def __init__(
        self,
        client: redis.Redis,
        buckets: dict[str, Bucket],
        *,
        max_wait_s: float | None,
        backoff_s: float = 30.0,
        backoff_max_s: float = 900.0,
        on_wait: WaitNotice | None = None,
        sleep: Callable[[float], object] = time.sleep,
        interrupt: threading.Event | None = None,
    ) -> None:
        """`max_wait_s=None` waits as long as it takes (the inline CLI path).

        Once `interrupt` is set (the worker is stopping), a wait for budget ends at once
        with RateLimitDeferred instead of holding the thread.
        """
        self._client = client
        self._buckets = buckets
        self._max_wait_s = max_wait_s
        self._backoff_s = backoff_s
        self._backoff_max_s = backoff_max_s
        self._on_wait = on_wait
        self._sleep = sleep
        self._interrupt = interrupt
        self._script = client.register_script(ACQUIRE_SCRIPT)

    @classmethod
    def from_settings(
        cls,
        client: redis.Redis,
        settings: Settings,
        *,
        max_wait_s: float | None,
        on_wait: WaitNotice | None = None,
        interrupt: threading.Event | None = None,
    ) -> RateLimiter:
        """A limiter on the configured Steam buckets."""
        return cls(
            client,
            buckets_from(settings),
            max_wait_s=max_wait_s,
            backoff_s=settings.steam_429_backoff_s,
            backoff_max_s=settings.steam_429_backoff_max_s,
            on_wait=on_wait,
            interrupt=interrupt,
        )

    def try_acquire(self, bucket: str, weight: int = 1) -> Admission:
        """One atomic attempt: admit `weight` units now, or say when they could fit."""
        b = self._buckets[bucket]
        member = secrets.token_hex(8)
        admitted, used, limit, retry_ms, now_ms = self._script(
            keys=[
                keys.rate_window_key(bucket),
                keys.rate_backoff_key(bucket),
                keys.rate_daily_prefix(bucket),
            ],
            args=[b.limit, int(b.window_s * 1000), weight, b.daily_limit, member],
        )
        retry_after = float("inf") if retry_ms < 0 else retry_ms / 1000
        return Admission(bool(admitted), int(used), int(limit), retry_after, int(now_ms))

    def acquire(self, bucket: str, weight: int = 1) -> Admission:
        """Admit `weight` units, waiting up to max_wait_s; beyond that raise RateLimitDeferred."""
        while True:
            admission = self.try_acquire(bucket, weight)
            if admission.admitted:
                self._pace(bucket, admission)
                return admission
            if (
                self._max_wait_s is not None and admission.retry_after_s > self._max_wait_s
            ) or self._wait(bucket, admission.retry_after_s, admission):
                self._deferred(bucket, admission)
                raise RateLimitDeferred(admission.retry_after_s, bucket)

    def penalize(self, bucket: str, retry_after_s: float | None = None) -> float:
        """The platform said 429: pause the whole bucket for every worker; return the pause."""
        strikes = int(self._client.incr(keys.rate_strikes_key(bucket)))
        self._client.expire(keys.rate_strikes_key(bucket), int(self._backoff_max_s * 2))
        pause = retry_after_s or min(self._backoff_s * 2 ** (strikes - 1), self._backoff_max_s)
        self._client.set(keys.rate_backoff_key(bucket), "429", px=max(int(pause * 1000), 1))
        return pause

    def succeeded(self, bucket: str) -> None:
        """A call went through: forget earlier 429 strikes."""
        self._client.delete(keys.rate_strikes_key(bucket))

    def _deferred(self, bucket: str, admission: Admission) -> None:
        """Count a deferral: in the metrics, and per minute in Redis for the dashboard. Only
        a job that goes back to the queue pays for the count, never an admitted call."""
        metrics.rate_limit_deferral(bucket)
        key = f"{keys.rate_deferrals_prefix(bucket)}:{admission.server_time_ms // 60_000}"
        with self._client.pipeline(transaction=False) as pipe:
            pipe.incr(key)
            pipe.expire(key, DEFERRALS_KEPT_S)
            pipe.execute()

    def _pace(self, bucket: str, admission: Admission) -> None:
        """Above 80 % of the window, sleep up to one even share of the window per call.

        Never longer than max_wait_s: a worker thread is not parked beyond that.
        """
        b = self._buckets[bucket]
        fill = admission.used / b.limit
        if fill > PACE_FROM:
            pause = (fill - PACE_FROM) / (1 - PACE_FROM) * b.window_s / b.limit
            pause = pause if self._max_wait_s is None else min(pause, self._max_wait_s)
            self._wait(bucket, pause, admission)

    def _wait(self, bucket: str, seconds: float, admission: Admission) -> bool:
        """Wait for budget (announced, counted); True when cut short by the interrupt."""
        if self._on_wait is not None:
            self._on_wait(bucket, seconds, admission)
        metrics.rate_limit_wait(bucket, seconds)
        if self._interrupt is not None:
            return self._interrupt.wait(seconds)
        self._sleep(seconds)
        return False


def bucket_usage(client: redis.Redis, buckets: dict[str, Bucket]) -> list[BucketUsage]:
    """Each bucket's spending now, in one round trip, on Redis server time (as admitted)."""
    now_ms = _server_ms(client)
    minute, day = now_ms // 60_000, now_ms // 86_400_000
    with client.pipeline(transaction=False) as pipe:
        for name, b in buckets.items():
            pipe.zcount(keys.rate_window_key(name), now_ms - int(b.window_s * 1000) + 1, "+inf")
            pipe.get(f"{keys.rate_daily_prefix(name)}:{day}")
            pipe.pttl(keys.rate_backoff_key(name))
            pipe.mget(
                [f"{keys.rate_deferrals_prefix(name)}:{m}" for m in range(minute - 59, minute + 1)]
            )
        answers = pipe.execute()
    usage = []
    for i, (name, b) in enumerate(buckets.items()):
        used, daily, backoff_ms, deferrals = answers[4 * i : 4 * i + 4]
        usage.append(
            BucketUsage(
                bucket=name,
                used=int(used),
                limit=b.limit,
                window_s=b.window_s,
                daily_used=int(daily or 0),
                daily_limit=b.daily_limit if b.daily_limit < NO_DAILY_CAP else None,
                backoff_until=(
                    datetime.fromtimestamp((now_ms + backoff_ms) / 1000, UTC)
                    if backoff_ms > 0
                    else None
                ),
                deferrals_last_hour=sum(int(n) for n in deferrals if n is not None),
            )
        )
    return usage


def _server_ms(client: redis.Redis) -> int:
    seconds, micros = client.time()
    return int(seconds) * 1000 + int(micros) // 1000
