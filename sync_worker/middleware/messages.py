"""What the middleware share: reading a sync message, and the after-hooks' decisions.

After-hooks run in reverse order, so RateLimit and Retries decide first and Progress,
listed before them, announces what they decided; they hand it over on the message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import InternalError, SyncWorkerError
from ..sync.engine import INFRASTRUCTURE_ERRORS, infrastructure_error

SYNC_ACTOR = "sync_library"


@dataclass
class MessageOutcome:
    """What the after-hooks decided about the message just processed."""

    deferred_s: float | None = None  # re-enqueued for rate-limit budget (no retry spent)
    retry_in_s: float | None = None  # re-enqueued as a retry
    dead_lettered: bool = False  # given up
    cancelled: bool = False  # skipped: its library was cancelled
    error: SyncWorkerError | None = None


def outcome_of(message: Any) -> MessageOutcome:
    """The outcome record attached to this message proxy (created on first use)."""
    outcome: MessageOutcome | None = getattr(message, "__dict__", {}).get("sync_outcome")
    if outcome is None:
        outcome = MessageOutcome()
        message.sync_outcome = outcome
    return outcome


def library_id_of(message: Any) -> str | None:
    """The library a sync message is about, or None for other messages."""
    if message.actor_name != SYNC_ACTOR:
        return None
    value = message.args[0] if message.args else message.kwargs.get("library_id")
    return value if isinstance(value, str) else None


def as_sync_error(exception: BaseException) -> SyncWorkerError:
    """Our error for anything an actor raised: lost connections are transient, the unknown is a bug."""
    if isinstance(exception, SyncWorkerError):
        return exception
    if isinstance(exception, INFRASTRUCTURE_ERRORS):
        return infrastructure_error(exception)
    return InternalError()
