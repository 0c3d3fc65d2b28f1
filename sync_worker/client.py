"""What the web service imports: register libraries, request syncs, read their status.

It loads the sending path, the progress reader and the library repository, never the
worker (actors, middleware, the sync engine): see docs/architecture.md.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from typing import Any, cast

from . import keys, sending
from .errors import RateLimitDeferred, RateLimitExhausted
from .platforms.gog import REDIRECT_URI, GogAuth, GogLibrary
from .platforms.steam import SteamClient
from .runtime import get_runtime
from .store import credentials, libraries, runs
from .sync.cancels import request_cancel
from .sync.progress import FINAL_STATUSES, EventError, ProgressEvent, last_event
from .vault import Vault


def register_steam_library(identity: str, *, steam: SteamClient | None = None) -> str:
    """Register (or find) the library of a SteamID64, profile URL or vanity name; return its id.

    Vanity names cost one ResolveVanityURL call; a new library also one GetPlayerSummaries
    call for its display name. Both go through the workers' global rate limit and daily
    cap, waiting at most RATE_LIMIT_MAX_WAIT_S. Raises InvalidSteamId / VanityNotFound for
    bad input, RateLimitExhausted (with `retry_after_s`) when there is no budget soon.
    """
    runtime = get_runtime()
    steam = steam or SteamClient(runtime.settings, gate=runtime.limiter())
    try:
        steam_id = steam.resolve_identity(identity)
        with runtime.pool.connection() as conn:
            existing = libraries.find_library(conn, "steam", steam_id)
        if existing is not None:
            return existing
        name = steam.display_name(steam_id)
    except RateLimitDeferred as exc:
        raise RateLimitExhausted(exc.retry_after_s, exc.bucket) from None
    with runtime.pool.connection() as conn:
        return libraries.register_library(conn, "steam", steam_id, name)


def link_gog_library(code: str, *, redirect_uri: str = REDIRECT_URI) -> str:
    """Link (or find) the GOG account a login code stands for; return its library id.

    The web service sends the user to `platforms.gog.login_url()`; GOG's login page ends
    on `redirect_uri` with `?code=...`, valid about a minute and once: call this at once.
    Exchanges the code for tokens, reads the account's id and name (2 GOG calls, through
    the global `gog_api` budget), registers the library (`platform = 'gog'`) and stores
    the tokens sealed with CREDENTIALS_KEY, in one transaction. An account linked before
    returns its library, with the new tokens (one waiting in `relink_required` becomes due
    at the next scheduler tick). Raises GogLoginRejected for a code GOG
    refuses, ConfigurationError in production without CREDENTIALS_KEY (before the code
    is spent), RateLimitExhausted when there is no budget soon.
    """
    runtime = get_runtime()
    vault = Vault.from_settings(runtime.settings)
    limiter = runtime.limiter()
    try:
        tokens = GogAuth(runtime.settings, gate=limiter).exchange_code(code, redirect_uri)
        user = GogLibrary(runtime.settings, tokens.access_token, gate=limiter).user()
    except RateLimitDeferred as exc:
        raise RateLimitExhausted(exc.retry_after_s, exc.bucket) from None
    sealed = vault.seal(tokens.refresh_token, tokens.access_token, tokens.expires_at)
    with runtime.pool.connection() as conn, conn.transaction():
        library_id = libraries.register_library(conn, "gog", tokens.user_id, user.username)
        credentials.save(conn, library_id, sealed)
        libraries.relinked(conn, library_id)
    return library_id


def request_sync(library_id: str, *, force: bool = False, sync_type: str = "manual") -> str:
    """Queue a sync of a registered library and return its message id.

    While a live sync message of the library is queued or running, returns that one's
    id instead of queueing a second (`force=True` queues anyway; it then runs after the
    current one). A cancelled message no longer counts as pending.
    """
    with get_runtime().pool.connection() as conn:
        library = libraries.get_library(conn, library_id)  # UnknownLibrary before anything
    return request_syncs([str(library.library_id)], force=force, sync_type=sync_type)[0]


def request_syncs(
    library_ids: Sequence[str],
    *,
    force: bool = False,
    sync_type: str = "manual",
    spread_s: float = 0.0,
) -> list[str]:
    """`request_sync` for many registered libraries at once (the scheduler's path); the
    i-th new message is delayed by `i * spread_s`. Returns each library's message id."""
    return sending.request_syncs(
        get_runtime(), library_ids, force=force, sync_type=sync_type, spread_s=spread_s
    )


def cancel_sync(library_id: str) -> bool:
    """Cancel the library's queued and running syncs; False (and nothing changes) when there is none.

    A queued message is skipped when a worker takes it; a running sync stops at its next
    batch boundary, keeping what it committed. Either way it ends `cancelled`. The
    cancellation names those syncs only: it can never stop a later one.
    """
    runtime = get_runtime()
    with runtime.pool.connection() as conn:
        library_id = str(libraries.get_library(conn, library_id).library_id)
    return bool(request_cancel(runtime.redis, library_id, runtime.settings.cancel_ttl_s))


def iter_progress(
    library_id: str | None = None, *, until_done: bool = True, timeout_s: float | None = None
) -> Iterator[ProgressEvent]:
    """Yield progress events as they are published (one library's, or all).

    For one library the current state comes first (so nothing between a page load and
    the subscription is missed); with `until_done` the generator ends after a final
    event (completed / failed / cancelled). `timeout_s` bounds the wait for each event.
    """
    runtime = get_runtime()
    pubsub = runtime.redis.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
    pubsub.subscribe(keys.PROGRESS_CHANNEL)
    try:
        if library_id is not None:
            current = last_event(runtime.redis, library_id)
            if current is not None:
                yield cast(ProgressEvent, current)
                if until_done and current["status"] in FINAL_STATUSES:
                    return
        deadline = time.monotonic() + timeout_s if timeout_s is not None else None
        while True:
            # get_message also returns None for subscription confirmations: wait on a deadline.
            wait_s = 1.0 if deadline is None else deadline - time.monotonic()
            if wait_s <= 0:
                return
            message = pubsub.get_message(timeout=min(wait_s, 1.0))
            if message is None:
                continue
            event: ProgressEvent = json.loads(message["data"])
            if library_id is not None and event["library_id"] != library_id:
                continue
            yield event
            if until_done and library_id is not None and event["status"] in FINAL_STATUSES:
                return
            if timeout_s is not None:
                deadline = time.monotonic() + timeout_s  # the timeout is per event
    finally:
        pubsub.close()


def get_status(library_id: str) -> ProgressEvent:
    """The library's latest progress event; from the database when Redis has none (expired, restarted).

    Raises UnknownLibrary for a library that does not exist, deleted ones included (their
    last event may outlive them in Redis).
    """
    runtime = get_runtime()
    with runtime.pool.connection() as conn:
        library = libraries.get_library(conn, library_id)
    event = last_event(runtime.redis, str(library.library_id))
    if event is not None:
        return cast(ProgressEvent, event)
    return {
        "library_id": str(library.library_id),
        "status": library.sync_status,
        "progress": 100 if library.sync_status == "completed" else 0,
        "games_processed": library.total_games if library.sync_status == "completed" else 0,
        "total_games": library.total_games,
        "message": (library.sync_error or {}).get("message", ""),
        "error": cast(EventError | None, library.sync_error),
        "completed_at": library.last_sync_at.isoformat() if library.last_sync_at else None,
    }


def get_history(library_id: str, *, limit: int = 20) -> list[dict[str, Any]]:
    """The library's sync runs, newest first (at most `limit`): how each ended, its counts,
    Steam calls, attempts and duration; UnknownLibrary for a library that does not exist."""
    with get_runtime().pool.connection() as conn:
        library = libraries.get_library(conn, library_id)
        return runs.history(conn, str(library.library_id), limit)
