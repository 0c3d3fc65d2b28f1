"""What the middleware share: the after-hooks' decisions, and writing to the broker in a
way that never loses a message while Redis is away.

After-hooks run in reverse order, so Deferrals and Retries decide first and Progress,
listed before them, announces what they decided; they hand it over on the message.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dramatiq
import structlog

from .. import keys, metrics
from ..errors import InternalError, SyncDeferred, SyncWorkerError
from ..infrastructure import INFRASTRUCTURE_ERRORS, infrastructure_error

log = structlog.get_logger(__name__)

RESEND_BACKOFF_MAX_S = 2.0


@dataclass
class MessageOutcome:
    """What the after-hooks decided about the message just processed."""

    deferred: SyncDeferred | None = None  # re-enqueued to resume later (no retry spent)
    delay_s: float | None = None  # re-enqueued (as a deferral or a retry) with this delay
    outage: bool = False  # re-enqueued to wait out our own outage (no retry spent)
    dead_lettered: bool = False  # given up
    cancelled: bool = False  # skipped: its library's sync was cancelled
    error: SyncWorkerError | None = None


def outcome_of(message: Any) -> MessageOutcome:
    """The outcome record attached to this message proxy (created on first use)."""
    outcome: MessageOutcome | None = getattr(message, "__dict__", {}).get("sync_outcome")
    if outcome is None:
        outcome = MessageOutcome()
        message.sync_outcome = outcome
    return outcome


def as_sync_error(exception: BaseException) -> SyncWorkerError:
    """Our error for anything an actor raised: lost connections are transient, the unknown is a bug."""
    if isinstance(exception, SyncWorkerError):
        return exception
    if isinstance(exception, INFRASTRUCTURE_ERRORS):
        return infrastructure_error(exception)
    return InternalError()


def until_stored(action: Callable[[], object], what: str) -> None:
    """Run a broker write, retrying while Redis is unreachable.

    A retry or deferral that was not stored must never be followed by the ack of the
    message it replaces (Dramatiq swallows after-hook errors, then acks). Dramatiq itself
    retries a failed ack the same way; if the worker is stopped meanwhile, the message
    stays unacked and comes back to another worker.
    """
    delay_s = 0.5
    while True:
        try:
            action()
            return
        except INFRASTRUCTURE_ERRORS as exc:
            log.warning(
                "broker.write_retry", what=what, error=type(exc).__name__, retry_in_s=delay_s
            )
            time.sleep(delay_s)
            delay_s = min(delay_s * 2, RESEND_BACKOFF_MAX_S)


def dead_letter(broker: dramatiq.Broker, message: Any, error: SyncWorkerError) -> None:
    """Fail the message so Dramatiq dead-letters it, keeping our error code and sentence on it.

    The Redis broker moves the stored copy of a message to its dead-letter set, so the
    error is written into that copy first.
    """
    message.options["error"] = error.to_dict()
    metrics.dead_lettered(message.actor_name, error.code)
    client = getattr(broker, "client", None)
    redis_id = message.options.get("redis_message_id")
    if client is not None and redis_id is not None:
        key = keys.broker_messages_key(message.queue_name)
        until_stored(lambda: client.hset(key, redis_id, message.encode()), "dead-letter error")
    message.fail()
