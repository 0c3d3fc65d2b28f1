"""The one error tree: every failure a sync can end in, each with a stable short code.

Codes end up in progress events, `user_libraries.sync_error` and `sync_runs.error`,
so they are part of the public contract: never rename one.
"""

from __future__ import annotations

from typing import Any, ClassVar


class SyncWorkerError(Exception):
    """Base of every error this package raises on purpose."""

    code: ClassVar[str] = "internal_error"
    default_message: ClassVar[str] = "An unexpected error happened."

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)

    def to_dict(self) -> dict[str, Any]:
        """The shape stored and published: a short code and one human sentence."""
        return {"code": self.code, "message": self.message}


class TransientError(SyncWorkerError):
    """A failure that may go away by itself: retry with backoff."""

    code = "transient_error"
    retry_after_s: float | None = None


class PermanentError(SyncWorkerError):
    """A failure that retrying cannot fix: fail at once."""

    code = "permanent_error"


# --- transient ---------------------------------------------------------------


class SteamUnavailable(TransientError):
    """Steam answered 5xx or could not be reached."""

    code = "steam_unavailable"
    default_message = "Steam is unavailable right now; the sync will be retried."


class SteamTimeout(TransientError):
    """Steam did not answer in time."""

    code = "steam_timeout"
    default_message = "Steam did not answer in time; the sync will be retried."


class SteamBadResponse(TransientError):
    """Steam sent a body we could not read (truncated or not JSON)."""

    code = "steam_bad_response"
    default_message = "Steam sent an unreadable response; the sync will be retried."


class SteamRateLimited(TransientError):
    """Steam (or our own limiter) says to slow down."""

    code = "steam_rate_limited"
    default_message = "Steam is rate limiting us; the sync will resume when it allows."

    def __init__(self, message: str | None = None, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class DatabaseUnavailable(TransientError):
    """PostgreSQL could not be reached or dropped the connection."""

    code = "database_unavailable"
    default_message = "The database is unavailable; the sync will be retried."


class RedisUnavailable(TransientError):
    """Redis could not be reached or dropped the connection."""

    code = "redis_unavailable"
    default_message = "Redis is unavailable; the sync will be retried."


class LockLost(TransientError):
    """Our lease on the library expired mid-sync (another worker may now own it)."""

    code = "lock_lost"
    default_message = "The sync lost its lock on the library and stopped to stay safe."


# --- permanent ---------------------------------------------------------------


class InvalidSteamId(PermanentError):
    """Not a SteamID64, vanity name or profile URL we can use."""

    code = "invalid_steam_id"
    default_message = "That is not a valid Steam id (expected 17 digits starting 7656119)."


class VanityNotFound(PermanentError):
    """Steam knows no profile with that custom URL name."""

    code = "vanity_not_found"
    default_message = "No Steam profile has that custom URL."


class SteamKeyRejected(PermanentError):
    """Steam refused our API key (HTTP 403)."""

    code = "steam_key_rejected"
    default_message = "Steam rejected the API key; check STEAM_API_KEY."


class SteamBadRequest(PermanentError):
    """Steam refused the request's parameters (HTTP 400)."""

    code = "steam_bad_request"
    default_message = "Steam refused the request as malformed."


class PrivateProfile(PermanentError):
    """The profile, or just its Game details, is not public."""

    code = "private_profile"
    default_message = (
        "Steam did not share this library: set the profile's 'Game details' to Public "
        "(Steam > Profile > Edit Profile > Privacy Settings); stored games were kept."
    )


class UnknownLibrary(PermanentError):
    """No library with that id is registered."""

    code = "unknown_library"
    default_message = "No library with that id exists."


class MalformedMessage(PermanentError):
    """A message's arguments are not what the actor accepts."""

    code = "malformed_message"
    default_message = "The sync request was malformed."


class InternalError(PermanentError):
    """A bug: an exception nothing in the tree describes (retrying a bug does not fix it)."""

    code = "internal_error"
    default_message = "An unexpected error stopped the sync; it was logged for the developers."


class ConfigurationError(PermanentError):
    """Required configuration is missing or invalid."""

    code = "configuration_error"
    default_message = "sync-worker is misconfigured."


class RateLimitDeferred(SyncWorkerError):
    """No rate-limit budget soon enough: the job steps aside and comes back later (not a failure)."""

    code = "rate_limit_wait"
    default_message = "Waiting for Steam rate-limit budget; the sync will resume on its own."

    def __init__(self, retry_after_s: float, bucket: str) -> None:
        wait = f"{retry_after_s:.1f}" if retry_after_s < 10 else f"{retry_after_s:.0f}"
        super().__init__(
            f"Waiting {wait} s for {bucket} rate-limit budget; the sync resumes on its own."
        )
        self.retry_after_s = retry_after_s
        self.bucket = bucket


class SyncCancelled(SyncWorkerError):
    """Somebody cancelled the sync: it stopped at a batch boundary, keeping what it committed."""

    code = "cancelled"
    default_message = "The sync was cancelled; games saved before that are kept."


class SyncAlreadyRunning(SyncWorkerError):
    """Another worker holds this library's lease: this run stands down (not a failure)."""

    code = "sync_already_running"
    default_message = "A sync of this library is already running."
