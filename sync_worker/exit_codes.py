"""The exit statuses of every process we start: the `sync-worker` commands and the worker.

Documented in `sync-worker --help` and docs/behaviour.md; platforms restart a worker that
exits EXIT_UNAVAILABLE with back-off.
"""

from __future__ import annotations

from .errors import (
    ConfigurationError,
    DatabaseUnavailable,
    Interrupted,
    InvalidSteamId,
    MalformedMessage,
    RedisUnavailable,
    SyncWorkerError,
    UnknownLibrary,
    VanityNotFound,
)

EXIT_OK, EXIT_SYNC_FAILED, EXIT_BAD_INPUT, EXIT_UNAVAILABLE, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
BAD_INPUT_ERRORS = (InvalidSteamId, VanityNotFound, UnknownLibrary, MalformedMessage)
UNAVAILABLE_ERRORS = (RedisUnavailable, DatabaseUnavailable, ConfigurationError)


def exit_code_for(error: SyncWorkerError) -> int:
    """The status a command that failed with `error` exits with."""
    if isinstance(error, Interrupted):
        return EXIT_INTERRUPTED
    if isinstance(error, BAD_INPUT_ERRORS):
        return EXIT_BAD_INPUT
    if isinstance(error, UNAVAILABLE_ERRORS):
        return EXIT_UNAVAILABLE
    return EXIT_SYNC_FAILED
