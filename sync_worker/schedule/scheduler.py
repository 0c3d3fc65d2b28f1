"""The auto-sync tick: pick the due libraries the Steam budget can serve, and queue them.

One indexed range scan picks the most overdue libraries (never-synced first), at most
as many as the budget can serve before the next tick, and pushes their `next_sync_at`
forward by a claim so an overlapping tick cannot pick them again. They are queued as
`scheduled` syncs on `default` through the same de-duplicating path as the web
service, spread evenly across the tick. A tick lease in Redis makes a tick run once
however many schedulers sent it; a missed tick loses nothing, since whatever is due
stays due in the database until a tick queues it. A tick message redelivered after its
worker died mid-tick queues what it had claimed; a tick that fails to queue gives its
claim back to the next tick.
"""

from __future__ import annotations

import contextlib
import json
import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import pendulum
import structlog
from periodiq import CronSpec, cron

from .. import keys
from ..errors import ConfigurationError
from ..infrastructure import INFRASTRUCTURE_ERRORS
from ..runtime import Runtime
from ..sending import request_syncs
from ..settings import Settings
from ..sync.lease import lease_owners
from ..sync.pending import pending_message

log = structlog.get_logger(__name__)

# Ordered by the indexed column; SKIP LOCKED lets two overlapping ticks split the work.
_CLAIM_DUE = """
WITH due AS (
    SELECT library_id, next_sync_at FROM user_libraries
    WHERE auto_sync AND next_sync_at <= %(now)s
    ORDER BY next_sync_at
    LIMIT %(budget)s
    FOR UPDATE SKIP LOCKED
)
UPDATE user_libraries AS l SET next_sync_at = %(claimed_until)s
FROM due WHERE l.library_id = due.library_id
RETURNING l.library_id::text, extract(epoch FROM due.next_sync_at)::float8  -- -inf: never synced
"""
# The libraries one tick claimed: their next_sync_at is exactly its claim's end (an index scan).
_CLAIMED = """
SELECT library_id::text FROM user_libraries
WHERE auto_sync AND next_sync_at = %(claimed_until)s
ORDER BY library_id
"""
# A tick that could not queue what it claimed gives it back: due again now.
_RELEASE_CLAIM = """
UPDATE user_libraries SET next_sync_at = %(now)s
WHERE auto_sync AND next_sync_at = %(claimed_until)s
"""


# Libraries left `queued` or `syncing` for a while, with the type of their open run if any.
_IN_FLIGHT_FOR_A_WHILE = """
SELECT l.library_id::text, coalesce(r.sync_type, 'manual')
FROM user_libraries AS l
LEFT JOIN sync_runs AS r ON r.library_id = l.library_id AND r.status = 'running'
WHERE l.sync_status IN ('queued', 'syncing')
  AND l.updated_at < now() - make_interval(secs => %(after_s)s)
ORDER BY l.updated_at
LIMIT %(limit)s
"""
RECONCILE_LIMIT = 500  # per tick: a Redis that lost everything is caught up over a few ticks


@dataclass(frozen=True)
class TickResult:
    """What one tick did."""

    ran: bool  # False when another scheduler already ran this tick
    budget: int
    queued: int
    spread_s: float
    requeued: int = 0  # stranded libraries queued again (see requeue_stranded)


def auto_sync_schedule(settings: Settings) -> CronSpec:
    """AUTO_SYNC_CRON, parsed. Checked here rather than with the other settings, so only
    the processes that schedule load periodiq (a web process never does)."""
    try:
        return cron(settings.auto_sync_cron)
    except (ValueError, IndexError, KeyError) as exc:
        raise ConfigurationError(f"AUTO_SYNC_CRON is not a cron schedule ({exc}).") from None


def tick_seconds(settings: Settings, now: datetime) -> float:
    """Seconds between two ticks of AUTO_SYNC_CRON around `now` (a tick run by hand, or
    late, still plans for a whole period)."""
    spec = auto_sync_schedule(settings)
    following = spec.next_valid_date(pendulum.instance(now))
    return float((spec.next_valid_date(following) - following).total_seconds())


def tick_budget(settings: Settings, tick_s: float) -> int:
    """How many syncs the Web API budget serves before the next tick, less the share kept
    for manual syncs: the window's rate or the daily cap's, whichever is lower."""
    per_second = min(
        settings.steam_webapi_calls_per_window / settings.steam_webapi_window_seconds,
        settings.steam_daily_limit / 86_400,
    )
    return math.floor(per_second * tick_s * settings.auto_sync_budget_share)


def run_tick(runtime: Runtime, now: datetime, tick_id: str, owner: str | None = None) -> TickResult:
    """Run the tick `tick_id` once across every scheduler: queue due libraries, spread out.

    `owner` is the tick message's id: a redelivery of the message that took the tick (its
    worker died between claiming and queueing) queues what that delivery claimed. If the
    queueing fails, the claimed libraries are released to the next tick.
    """
    settings = runtime.settings
    tick_s = tick_seconds(settings, now)
    budget = tick_budget(settings, tick_s)
    owner = owner or f"by-hand-{secrets.token_hex(8)}"
    claim = _claim(runtime, now, tick_id, owner, tick_s, budget)
    if claim is None:
        return TickResult(ran=False, budget=budget, queued=0, spread_s=0.0)
    spread_s = tick_s / budget if budget else 0.0
    if claim.library_ids:
        try:
            request_syncs(runtime, claim.library_ids, sync_type="scheduled", spread_s=spread_s)
        except Exception:
            with contextlib.suppress(*INFRASTRUCTURE_ERRORS), runtime.pool.connection() as conn:
                conn.execute(_RELEASE_CLAIM, {"now": now, "claimed_until": claim.claimed_until})
            raise
    requeued = requeue_stranded(runtime)
    return TickResult(
        ran=True,
        budget=budget,
        queued=len(claim.library_ids),
        spread_s=spread_s,
        requeued=requeued,
    )


def record_tick(runtime: Runtime, tick: dict[str, object]) -> None:
    """Keep what the last tick did, with when the next one is due, for the dashboard. A
    Redis blip loses only this note: the tick itself has done its work."""
    now = tick["at"]
    assert isinstance(now, datetime)
    next_tick = auto_sync_schedule(runtime.settings).next_valid_date(pendulum.instance(now))
    note = {**tick, "at": now.isoformat(), "next_tick_at": next_tick.isoformat()}
    with contextlib.suppress(*INFRASTRUCTURE_ERRORS):
        runtime.redis.set(keys.SCHEDULER_LAST_TICK_KEY, json.dumps(note), ex=7 * 86_400)


def requeue_stranded(runtime: Runtime) -> int:
    """Queue again the libraries left `queued` or `syncing` with nothing behind them for
    RECONCILE_AFTER_S: no live message (Redis restarted empty and lost it) and no running
    sync. Each goes back at the type of its open run (`manual`, on `high`, when it has
    none: a user may be waiting). Returns how many."""
    with runtime.pool.connection() as conn:
        rows = conn.execute(
            _IN_FLIGHT_FOR_A_WHILE,
            {"after_s": runtime.settings.reconcile_after_s, "limit": RECONCILE_LIMIT},
        ).fetchall()
    if not rows:
        return 0
    owners = lease_owners(runtime.redis, [library_id for library_id, _ in rows])
    stranded: dict[str, list[str]] = {}
    for library_id, sync_type in rows:
        if owners[library_id] is None and pending_message(runtime.redis, library_id) is None:
            stranded.setdefault(sync_type, []).append(library_id)
    for sync_type, library_ids in stranded.items():
        request_syncs(runtime, library_ids, sync_type=sync_type)
        log.warning("schedule.requeued_stranded", sync_type=sync_type, libraries=len(library_ids))
    return sum(len(library_ids) for library_ids in stranded.values())


@dataclass(frozen=True)
class Claim:
    """The libraries a tick took, most overdue first, and until when they are claimed."""

    library_ids: list[str]
    claimed_until: datetime


def claim_tick(runtime: Runtime, now: datetime, tick_id: str, owner: str) -> Claim | None:
    """Take the tick for `owner` and claim its due libraries; None when another owner took it.

    The tick key records the owner and the claim's end, so a redelivery of the same
    message finds the libraries it claimed (those still claimed: a sync since may have
    moved one on) instead of claiming a second budget's worth.
    """
    tick_s = tick_seconds(runtime.settings, now)
    return _claim(runtime, now, tick_id, owner, tick_s, tick_budget(runtime.settings, tick_s))


def _claim(
    runtime: Runtime, now: datetime, tick_id: str, owner: str, tick_s: float, budget: int
) -> Claim | None:
    """`claim_tick` with the tick's length and budget already worked out (`run_tick`)."""
    settings = runtime.settings
    key = keys.scheduler_tick_key(tick_id)
    claimed_until = now + timedelta(seconds=settings.auto_sync_claim_s)
    taken = runtime.redis.set(
        key, f"{owner} {claimed_until.isoformat()}", nx=True, ex=max(int(tick_s) * 12, 3600)
    )
    if not taken:
        held = runtime.redis.get(key)
        text = held.decode() if isinstance(held, bytes) else str(held or "")
        held_by, _, until = text.partition(" ")
        if held_by != owner or not until:
            return None
        claimed_until = datetime.fromisoformat(until)  # the first delivery's claim
        with runtime.pool.connection() as conn:
            rows = conn.execute(_CLAIMED, {"claimed_until": claimed_until}).fetchall()
        return Claim([library_id for (library_id,) in rows], claimed_until)
    with runtime.pool.connection() as conn:
        due = conn.execute(
            _CLAIM_DUE,
            {"now": now, "budget": budget, "claimed_until": claimed_until},
        ).fetchall()
    return Claim(
        [library_id for library_id, _ in sorted(due, key=lambda row: row[1])], claimed_until
    )
