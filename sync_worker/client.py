"""What the web service imports: register libraries, request syncs, read their status."""

from __future__ import annotations

import json
from typing import Any

import dramatiq

from . import keys
from .broker import QUEUE_DEFAULT, QUEUE_HIGH, get_broker
from .errors import MalformedMessage
from .platforms.steam import SteamClient
from .runtime import get_runtime
from .store import libraries
from .sync.progress import ProgressPublisher

SYNC_TYPES = ("manual", "scheduled", "auto")


def register_steam_library(identity: str, *, steam: SteamClient | None = None) -> str:
    """Register (or find) the library of a SteamID64, profile URL or vanity name; return its id.

    Vanity names cost one ResolveVanityURL call; a new library also one GetPlayerSummaries
    call for its display name. Raises InvalidSteamId / VanityNotFound for bad input.
    """
    runtime = get_runtime()
    steam = steam or SteamClient(runtime.settings)
    steam_id = steam.resolve_identity(identity)
    with runtime.pool.connection() as conn:
        existing = libraries.find_library(conn, "steam", steam_id)
    if existing is not None:
        return existing
    name = steam.display_name(steam_id)
    with runtime.pool.connection() as conn:
        return libraries.register_library(conn, "steam", steam_id, name)


def request_sync(library_id: str, *, force: bool = False, sync_type: str = "manual") -> str:
    """Queue a sync of a registered library (`high` for manual, `default` otherwise); return the message id."""
    if sync_type not in SYNC_TYPES:
        raise MalformedMessage(f"sync_type must be one of {', '.join(SYNC_TYPES)}.")
    runtime = get_runtime()
    with runtime.pool.connection() as conn:
        library = libraries.get_library(
            conn, library_id
        )  # UnknownLibrary before anything is queued
        libraries.set_sync_status(conn, str(library.library_id), "queued")
    library_id = str(library.library_id)
    message: dramatiq.Message[None] = dramatiq.Message(
        queue_name=QUEUE_HIGH if sync_type == "manual" else QUEUE_DEFAULT,
        actor_name="sync_library",
        args=(library_id,),
        kwargs={"force": force, "sync_type": sync_type},
        options={},
    )
    get_broker().enqueue(message)
    ProgressPublisher(
        runtime.redis, library_id, ttl_s=runtime.settings.progress_ttl_s, min_interval_s=0
    ).publish("queued", message=f"Queued a {sync_type} sync", total_games=library.total_games)
    return message.message_id


def get_status(library_id: str) -> dict[str, Any]:
    """The library's latest progress event; from the database when Redis has none (expired, restarted)."""
    runtime = get_runtime()
    raw = runtime.redis.get(keys.progress_key(str(library_id)))
    if raw is not None:
        event: dict[str, Any] = json.loads(raw)
        return event
    with runtime.pool.connection() as conn:
        library = libraries.get_library(conn, library_id)
    return {
        "library_id": str(library.library_id),
        "status": library.sync_status,
        "progress": 100 if library.sync_status == "completed" else 0,
        "games_processed": library.total_games if library.sync_status == "completed" else 0,
        "total_games": library.total_games,
        "message": (library.sync_error or {}).get("message", ""),
        "error": library.sync_error,
        "completed_at": library.last_sync_at.isoformat() if library.last_sync_at else None,
    }
