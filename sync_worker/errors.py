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


class PlatformRateLimited(TransientError):
    """A platform says to slow down (HTTP 429), maybe with how long to wait."""

    def __init__(self, message: str | None = None, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class SteamRateLimited(PlatformRateLimited):
    """Steam (or our own limiter) says to slow down."""

    code = "steam_rate_limited"
    default_message = "Steam is rate limiting us; the sync will resume when it allows."


class GogUnavailable(TransientError):
    """GOG answered 5xx or could not be reached."""

    code = "gog_unavailable"
    default_message = "GOG is unavailable right now; the sync will be retried."


class GogTimeout(TransientError):
    """GOG did not answer in time."""

    code = "gog_timeout"
    default_message = "GOG did not answer in time; the sync will be retried."


class GogBadResponse(TransientError):
    """GOG sent a body we could not read (truncated, not JSON, an HTML page)."""

    code = "gog_bad_response"
    default_message = "GOG sent an unreadable response; the sync will be retried."


class GogRateLimited(PlatformRateLimited):
    """GOG answered 429."""

    code = "gog_rate_limited"
    default_message = "GOG is rate limiting us; the sync will resume when it allows."


class GogUnauthorized(TransientError):
    """GOG refused the access token (expired or revoked): refresh it, then try again."""

    code = "gog_unauthorized"
    default_message = "GOG refused the access token; it will be refreshed."


class RateLimitExhausted(TransientError):
    """A call made outside a sync (registering a library) found no budget soon enough."""

    code = "rate_limit_exhausted"
    default_message = "Steam's rate-limit budget is used up for now; try again later."

    def __init__(self, retry_after_s: float, bucket: str) -> None:
        super().__init__(
            f"The {bucket} rate-limit budget is used up; try again in {retry_after_s:.0f} s."
        )
        self.retry_after_s = retry_after_s


class OwnOutage(TransientError):
    """Our own PostgreSQL or Redis failed: not Steam's doing and not the library's. Work
    waits it out (OUTAGE_PATIENCE_S) without spending the retries meant for Steam."""

    code = "own_outage"


class DatabaseUnavailable(OwnOutage):
    """PostgreSQL could not be reached or dropped the connection."""

    code = "database_unavailable"
    default_message = "The database is unavailable; the sync will be retried."


class DatabaseConflict(OwnOutage):
    """PostgreSQL rolled the transaction back to resolve a conflict (a deadlock, a
    serialization failure): trying again works."""

    code = "database_conflict"
    default_message = "The database rolled back a conflicting write; the sync will be retried."


class RedisUnavailable(OwnOutage):
    """Redis could not be reached or dropped the connection."""

    code = "redis_unavailable"
    default_message = "Redis is unavailable; the sync will be retried."


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


class SteamResponseTooLarge(PermanentError):
    """Steam's answer is bigger than STEAM_MAX_RESPONSE_MB: we refuse to hold it in memory."""

    code = "steam_response_too_large"
    default_message = "Steam's answer was too large to process."


class SteamBadRequest(PermanentError):
    """Steam refused the request's parameters (HTTP 400)."""

    code = "steam_bad_request"
    default_message = "Steam refused the request as malformed."


class GogResponseTooLarge(PermanentError):
    """GOG's answer is bigger than STEAM_MAX_RESPONSE_MB (the same bound for every platform)."""

    code = "gog_response_too_large"
    default_message = "GOG's answer was too large to process."


class GogRefused(PermanentError):
    """GOG refused the request itself (HTTP 400, 403, 404): asking again will not help."""

    code = "gog_refused"
    default_message = "GOG refused the request."


class GogLoginRejected(PermanentError):
    """GOG refused the login code: used already, expired (about a minute) or issued for
    another redirect URI."""

    code = "gog_login_rejected"
    default_message = (
        "GOG refused the login code (used already, expired, or for another redirect URI):"
        " log in to GOG again and exchange the new code at once."
    )


class RelinkRequired(PermanentError):
    """GOG no longer accepts the account's refresh token: the user must link it again."""

    code = "relink_required"
    default_message = (
        "GOG no longer accepts this account's authorization: link the GOG account again;"
        " stored games were kept."
    )


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


# --- not failures: the job steps aside or stands down -------------------------


class SyncDeferred(SyncWorkerError):
    """The sync cannot go on now: its message steps back into the queue (no retry spent)."""

    code = "deferred"
    default_message = "The sync will resume on its own."

    def __init__(self, message: str | None = None, *, retry_after_s: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class RateLimitDeferred(SyncDeferred):
    """No rate-limit budget soon enough: wait in the queue, not in a worker thread."""

    code = "rate_limit_wait"
    default_message = "Waiting for Steam rate-limit budget; the sync will resume on its own."

    def __init__(self, retry_after_s: float, bucket: str) -> None:
        wait = f"{retry_after_s:.1f}" if retry_after_s < 10 else f"{retry_after_s:.0f}"
        super().__init__(
            f"Waiting {wait} s for {bucket} rate-limit budget; the sync resumes on its own.",
            retry_after_s=retry_after_s,
        )
        self.bucket = bucket


class SyncAlreadyRunning(SyncDeferred):
    """Another sync holds this library's lease: try again once it is free ("later", never "drop")."""

    code = "sync_already_running"
    default_message = "A sync of this library is already running; this one waits for it."


class WorkerStopping(SyncDeferred):
    """The worker is shutting down: the sync stopped at a batch boundary and goes back to the queue."""

    code = "worker_stopping"
    default_message = "The worker is restarting; the sync resumes where it stopped."

    # Due a second later, not at once: Dramatiq stops fetching up to a second after the
    # SIGTERM, and until then a stopping process would take the message back and bounce it.
    STOP_LATENCY_S = 1.0

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message, retry_after_s=self.STOP_LATENCY_S)


class LockLost(SyncWorkerError):
    """Another run took this library's sync over (our lease lapsed): this one stands down."""

    code = "lock_lost"
    default_message = "Another worker took this sync over; this attempt stood down."


class SyncCancelled(SyncWorkerError):
    """Somebody cancelled the sync: it stopped at a batch boundary, keeping what it committed."""

    code = "cancelled"
    default_message = "The sync was cancelled; games saved before that are kept."


class Interrupted(SyncWorkerError):
    """An inline sync was stopped by Ctrl-C or SIGTERM at a batch boundary; the next sync resumes."""

    code = "interrupted"
    default_message = "The sync was interrupted; the next sync resumes where it stopped."
