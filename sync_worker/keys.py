"""Every Redis key and channel name the service uses, in one place.

The web service reads `PROGRESS_CHANNEL` and `progress_key()`; the rest are internal.
"""

from __future__ import annotations

PREFIX = "sync"

#: Pub/sub channel carrying one JSON event per progress change, for every library.
PROGRESS_CHANNEL = f"{PREFIX}:progress"


def progress_key(library_id: str) -> str:
    """The latest progress event of a library (JSON, with a TTL)."""
    return f"{PREFIX}:progress:{library_id}"


def checkpoint_key(library_id: str) -> str:
    """The resumable state of a library's sync in flight."""
    return f"{PREFIX}:state:{library_id}"


def lock_key(library_id: str) -> str:
    """The lease lock that lets one worker at a time sync a library."""
    return f"{PREFIX}:lock:{library_id}"


def cancel_key(library_id: str) -> str:
    """Set while a cancellation of the library's sync is pending."""
    return f"{PREFIX}:cancel:{library_id}"


def pending_key(library_id: str) -> str:
    """The message id of the library's queued or running sync (de-duplicates requests)."""
    return f"{PREFIX}:pending:{library_id}"


def rate_window_key(bucket: str) -> str:
    """Sorted set: one member per admitted unit of weight, scored by Redis server time (ms)."""
    return f"{PREFIX}:ratelimit:{bucket}:window"


def rate_backoff_key(bucket: str) -> str:
    """Exists while the platform told us to back off (a 429): nobody calls until it expires."""
    return f"{PREFIX}:ratelimit:{bucket}:backoff"


def rate_strikes_key(bucket: str) -> str:
    """Consecutive 429s, for doubling the backoff."""
    return f"{PREFIX}:ratelimit:{bucket}:strikes"


def rate_daily_prefix(bucket: str) -> str:
    """Prefix of the per-UTC-day counter; the Lua script appends the day number itself."""
    return f"{PREFIX}:ratelimit:{bucket}:day"
