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
