"""The actors: thin shells that validate a message, build the engine and map its outcome.

Transient errors and rate-limit deferrals propagate to the middleware (Retries,
RateLimit); permanent outcomes are already recorded by the engine and end the message.
"""

from __future__ import annotations

from typing import Any

import dramatiq
import structlog

from .broker import QUEUE_HIGH
from .errors import MalformedMessage, PermanentError, SyncAlreadyRunning
from .platforms.steam import SteamClient
from .ratelimit import RateLimiter
from .runtime import get_runtime
from .sync.engine import SyncEngine

log = structlog.get_logger(__name__)

SYNC_TYPES = ("manual", "scheduled", "auto")
SYNC_TIME_LIMIT_MS = 15 * 60 * 1000


def sync_library(library_id: str, force: bool = False, sync_type: str = "manual") -> None:
    """Sync one library to completion (`force` only bypasses de-duplication when enqueuing)."""
    if (
        not isinstance(library_id, str)
        or not isinstance(force, bool)
        or sync_type not in SYNC_TYPES
    ):
        raise MalformedMessage(
            f"sync_library got library_id={library_id!r:.60}, sync_type={sync_type!r:.20}."
        )
    runtime = get_runtime()
    settings = runtime.settings
    # Past max_wait the limiter raises RateLimitDeferred; the RateLimit middleware re-enqueues.
    limiter = RateLimiter.from_settings(
        runtime.redis, settings, max_wait_s=settings.rate_limit_max_wait_s
    )
    engine = SyncEngine(
        settings, runtime.redis, runtime.pool, lambda: SteamClient(settings, gate=limiter)
    )
    try:
        outcome = engine.sync(library_id, sync_type)
    except SyncAlreadyRunning:
        log.info("sync.skipped", library_id=library_id, reason="another worker holds the lease")
        return
    except PermanentError as exc:
        log.warning("sync.failed", library_id=library_id, error_code=exc.code, reason=exc.message)
        return
    log.info("sync.finished", **outcome.to_dict())


def declare_actors(broker: dramatiq.Broker) -> dict[str, Any]:
    """Bind the actors to `broker` under their stable names."""
    return {
        "sync_library": dramatiq.actor(
            broker=broker,
            actor_name="sync_library",
            queue_name=QUEUE_HIGH,  # manual by default; the client routes the others to `default`
            time_limit=SYNC_TIME_LIMIT_MS,
        )(sync_library),
    }
