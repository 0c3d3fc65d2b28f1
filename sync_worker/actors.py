"""The actors: thin shells that validate a message, build the engine and report its outcome.

Transient errors and deferrals propagate to the middleware (Retries, Deferrals);
outcomes the engine recorded (completed, private, cancelled, failed) end the message;
messages that cannot be processed at all (malformed, unknown library) raise, so Retries
dead-letters them with their error code.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

import dramatiq
import structlog
from dramatiq.middleware import CurrentMessage

from . import metrics
from .broker import PERIODIC_SKIP_DELAY_S
from .enrich.engine import enrich_apps
from .enrich.queueing import max_age, queue_all, queue_for_library
from .errors import LockLost, MalformedMessage, SyncWorkerError
from .infrastructure import INFRASTRUCTURE_ERRORS
from .platforms.steam import SteamClient
from .platforms.steam_store import SteamStore
from .runtime import get_runtime
from .schedule.scheduler import auto_sync_schedule, record_tick, run_tick
from .sending import (
    ENRICH_ACTOR,
    MAX_LIBRARY_ID,
    QUEUE_DEFAULT,
    QUEUE_HIGH,
    QUEUE_LOW,
    SCHEDULE_ACTOR,
    SYNC_ACTOR,
    SYNC_TYPES,
)
from .settings import Settings
from .sync.engine import SyncEngine
from .sync.gog_run import GogRun

log = structlog.get_logger(__name__)

SYNC_TIME_LIMIT_MS = 15 * 60 * 1000
MAX_ENRICH_CHUNK = 1_000
ENRICH_PRIORITY = 100
TICK_SEND_FIRST_PAUSE_S, TICK_SEND_MAX_PAUSE_S = 0.5, 4.0
TICK_FAILURES: tuple[type[BaseException], ...] = (SyncWorkerError, *INFRASTRUCTURE_ERRORS)


def sync_library(library_id: str, force: bool = False, sync_type: str = "manual") -> None:
    """Sync one library to completion (`force` only bypasses de-duplication when enqueuing)."""
    if (
        not isinstance(library_id, str)
        or len(library_id) > MAX_LIBRARY_ID
        or not isinstance(force, bool)
        or sync_type not in SYNC_TYPES
    ):
        raise MalformedMessage(
            f"sync_library got library_id={library_id!r:.60}, force={force!r:.10},"
            f" sync_type={sync_type!r:.20}."
        )
    message = CurrentMessage.get_current_message()
    runtime = get_runtime()
    settings = runtime.settings
    limiter = runtime.limiter()
    engine = SyncEngine(
        settings,
        runtime.redis,
        runtime.pool,
        lambda: SteamClient(settings, gate=limiter),
        stopping=runtime.stopping,
        outages_waited_out=True,
        gate=limiter,
        platform_runs={"gog": GogRun},
    )
    started = time.monotonic()
    try:
        outcome = engine.sync(
            library_id, sync_type, owner=message.message_id if message is not None else None
        )
    except LockLost:
        return  # another attempt took this run over and will finish it
    if not outcome.redelivered:  # a redelivery's run was counted when it ended
        written = outcome.new_games + outcome.updated_games + outcome.removed_games
        metrics.sync_ended(outcome.status, time.monotonic() - started, written)
    log.info("sync.finished", **outcome.to_dict())
    if outcome.status == "completed" and outcome.new_games:
        # Only new games can lack details; stale ones are the tick's (schedule_auto_syncs).
        queue_enrichment(outcome.library_id)


def queue_enrichment(library_id: str) -> None:
    """Queue store details for the apps a synced library owns (best effort: an app missed
    here is queued by the next sync of any library owning it, or `sync-worker enrich`)."""
    try:
        queued = queue_for_library(get_runtime(), library_id)
    except INFRASTRUCTURE_ERRORS as exc:
        log.warning("enrich.not_queued", library_id=library_id, error=type(exc).__name__)
        return
    log.info("enrich.queued", library_id=library_id, apps=queued)


def enrich_games(app_ids: list[str]) -> None:
    """Fetch store details for a chunk of app ids (those another message did are skipped)."""
    if (
        not isinstance(app_ids, list)
        or len(app_ids) > MAX_ENRICH_CHUNK
        or not all(
            isinstance(a, str) and a.isascii() and a.isdigit() and len(a) <= 12 for a in app_ids
        )
    ):
        raise MalformedMessage(f"enrich_games got app_ids={app_ids!r:.80}.")
    runtime = get_runtime()
    result = enrich_apps(
        runtime.pool,
        SteamStore(runtime.settings, gate=runtime.limiter()),
        "steam",
        app_ids,
        max_age(runtime),
        stopping=runtime.stopping,
    )
    log.info("enrich.chunk", apps=len(app_ids), **asdict(result))


def schedule_auto_syncs() -> None:
    """The periodic tick: queue the libraries due for an auto-sync (it never syncs itself),
    then the store details that are missing or past their refresh age (claimed, so an app
    is queued once whatever the cadence).

    A failed tick is not retried: the next one finds whatever is still due.
    """
    message = CurrentMessage.get_current_message()
    now = datetime.now(UTC)
    scheduled_at = message.options.get("scheduled_at") if message is not None else None
    tick_id = scheduled_at or now.strftime("%Y-%m-%dT%H:%M")
    runtime = get_runtime()
    try:
        owner = message.message_id if message is not None else None
        result = run_tick(runtime, now, tick_id, owner)
        details = queue_all(runtime, include_stale=True) if result.ran else 0
    except TICK_FAILURES as exc:
        log.error("schedule.tick_failed", tick=tick_id, error=type(exc).__name__)
        return
    log.info("schedule.tick", tick=tick_id, details_queued=details, **asdict(result))
    if result.ran:
        record_tick(
            runtime, {"tick": tick_id, "at": now, "details_queued": details, **asdict(result)}
        )


class PatientTickActor(dramatiq.Actor[[], None]):
    """The periodic tick's actor. periodiq's scheduler sends it, and lets any error end its
    process: a Redis blip at tick time would stop every auto-sync until someone restarted
    it. Sending is retried with back-off while the tick is still worth running (periodiq's
    middleware skips one PERIODIC_SKIP_DELAY_S late); then this tick is given up and the
    scheduler goes on ticking: the next tick finds whatever is still due."""

    def send_with_options(
        self,
        *,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        delay: timedelta | int | None = None,
        **options: Any,
    ) -> dramatiq.Message[None]:
        """Enqueue the tick, riding out a Redis outage for as long as the tick matters."""
        if isinstance(delay, timedelta):
            delay = int(delay.total_seconds() * 1000)
        message = self.message_with_options(args=args, kwargs=kwargs, **options)
        deadline = time.monotonic() + PERIODIC_SKIP_DELAY_S
        pause_s = TICK_SEND_FIRST_PAUSE_S
        while True:
            try:
                return self.broker.enqueue(message, delay=delay)
            except INFRASTRUCTURE_ERRORS as exc:
                if time.monotonic() + pause_s > deadline:
                    log.error("schedule.tick_not_sent", error=type(exc).__name__)
                    return message
                log.warning(
                    "schedule.tick_send_retry", error=type(exc).__name__, retry_in_s=pause_s
                )
                time.sleep(pause_s)
                pause_s = min(pause_s * 2, TICK_SEND_MAX_PAUSE_S)


def rejecting_bad_arguments(fn: Callable[..., None]) -> Callable[..., None]:
    """Turn a message whose arguments do not fit the actor's signature into MalformedMessage.

    Dramatiq calls `fn(*args, **kwargs)` straight from the message: a missing argument
    or an unknown keyword would otherwise surface as a TypeError, i.e. a bug.
    """
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def checked(*args: Any, **kwargs: Any) -> None:
        try:
            signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise MalformedMessage(f"{fn.__name__}: {exc}.") from None
        fn(*args, **kwargs)

    return checked


def declare_actors(broker: dramatiq.Broker, settings: Settings) -> dict[str, Any]:
    """Bind the actors to `broker` under their stable names."""
    return {
        "enrich_games": dramatiq.actor(
            broker=broker,
            actor_name=ENRICH_ACTOR,
            queue_name=QUEUE_LOW,
            # A process serving `default` and `low` runs the syncs it holds first (Dramatiq
            # orders a worker's fetched messages by priority; larger is later).
            priority=ENRICH_PRIORITY,
            throws=(SyncWorkerError,),
        )(rejecting_bad_arguments(enrich_games)),
        "schedule_auto_syncs": dramatiq.actor(
            actor_class=PatientTickActor,
            broker=broker,
            actor_name=SCHEDULE_ACTOR,
            queue_name=QUEUE_DEFAULT,
            periodic=auto_sync_schedule(settings),
            max_retries=0,
        )(schedule_auto_syncs),
        "sync_library": dramatiq.actor(
            broker=broker,
            actor_name=SYNC_ACTOR,
            queue_name=QUEUE_HIGH,  # manual by default; the client routes the others to `default`
            time_limit=SYNC_TIME_LIMIT_MS,
            # Our errors are expected outcomes, logged by the middleware with their code:
            # Dramatiq keeps its traceback for everything else (bugs).
            throws=(SyncWorkerError,),
        )(rejecting_bad_arguments(sync_library)),
    }
