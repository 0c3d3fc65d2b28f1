"""Everything the dashboard shows, read from what the workers already write.

PostgreSQL (through `store.reports`), the progress keys, the broker's queues and dead
letters, the workers' heartbeats, the limiter's windows and the scheduler's last tick:
reads only, never a Steam call, never a write in the sync path. Each method is
synchronous (the web layer runs it in a thread) and answers JSON-ready data.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from .. import keys
from ..dead_letters import latest_dead_letters
from ..errors import PermanentError, UnknownLibrary
from ..health import HealthChecker
from ..platforms.steam_ids import STEAM_ID_PREFIX, parse_identity
from ..ratelimit import bucket_usage, buckets_from
from ..runtime import Runtime
from ..sending import QUEUES, sync_queue
from ..store import libraries, reports, runs
from ..store.catalog import enrichment_counts

ENRICHMENT_CACHE_S = 30.0  # its counts scan the catalog: not on every refresh of the page
DEAD_LETTERS_SHOWN = 20


class NotSearchable(PermanentError):
    """The search box got something it cannot look up without calling Steam."""

    code = "not_searchable"


class Reads:
    """The dashboard's reads, on one runtime; thread-safe."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._health = HealthChecker(runtime.settings)
        self._health_lock = threading.Lock()  # the checker holds one connection
        self._enrichment: tuple[float, dict[str, int]] | None = None

    def close(self) -> None:
        """Close the health checker's connections (the runtime is the caller's)."""
        self._health.close()

    # -- the overview, whole and by section ------------------------------------------

    def overview(self) -> dict[str, Any]:
        """Every section of the live page at once."""
        return {
            **self.syncs(),
            **self.queues(),
            "budget": self.budget(),
            **self.schedule(),
            "dead_letters": self.dead_letters(),
        }

    def syncs(self) -> dict[str, Any]:
        """The libraries syncing and queued (with their live progress) and the runs that
        finished last."""
        with self.runtime.pool.connection() as conn:
            rows = reports.active_syncs(conn)
            counts = reports.in_flight_counts(conn)
            recent = reports.recent_runs(conn)
        events = self._events([row["library_id"] for row in rows])
        return {
            "active": [_active(row, event) for row, event in zip(rows, events, strict=True)],
            "active_counts": counts,
            "recent": recent,
        }

    def queues(self) -> dict[str, Any]:
        """Health in one line, each queue's depth and dead letters, the live workers."""
        with self._health_lock:
            report = self._health.check()
        return {
            "health": {
                "healthy": report.healthy,
                "reason": report.reason,
                "redis": report.redis,
                "postgres": report.postgres,
                "unserved_queues": report.unserved_queues,
            },
            "queues": report.queues,
            "workers": report.workers,
        }

    def budget(self) -> list[dict[str, Any]]:
        """Each rate-limit bucket: window, daily cap, back-off, deferrals in the last hour."""
        buckets = buckets_from(self.runtime.settings)
        return [asdict(usage) for usage in bucket_usage(self.runtime.redis, buckets)]

    def schedule(self) -> dict[str, Any]:
        """Libraries due, accounts in back-off, the scheduler's last tick, enrichment."""
        with self.runtime.pool.connection() as conn:
            schedule = reports.schedule_counts(conn)
        raw = self.runtime.redis.get(keys.SCHEDULER_LAST_TICK_KEY)
        schedule["last_tick"] = json.loads(raw) if raw else None
        return {"schedule": schedule, "enrichment": self.enrichment()}

    def enrichment(self) -> dict[str, Any]:
        """Store details: enriched, unavailable, stale, pending, not queued (cached)."""
        cached = self._enrichment
        if cached is None or time.monotonic() - cached[0] > ENRICHMENT_CACHE_S:
            with self.runtime.pool.connection() as conn:
                settings = self.runtime.settings
                counts = enrichment_counts(
                    conn,
                    "steam",
                    timedelta(days=settings.enrich_max_age_days),
                    timedelta(seconds=settings.enrich_claim_s),
                )
            cached = self._enrichment = (time.monotonic(), counts)
        return {**cached[1], "counted_s_ago": round(time.monotonic() - cached[0], 1)}

    def dead_letters(self, limit: int = DEAD_LETTERS_SHOWN) -> dict[str, Any]:
        """How many letters there are, and the newest `limit` of them."""
        count = sum(
            self.runtime.redis.zcard(keys.broker_dead_letters_key(queue)) for queue in QUEUES
        )
        letters = latest_dead_letters(self.runtime.redis, limit)
        return {"count": count, "latest": [letter.to_dict() for letter in letters]}

    # -- history, libraries, search ----------------------------------------------------

    def history(
        self, *, limit: int, before: tuple[datetime, str] | None, **filters: str | None
    ) -> reports.HistoryPage:
        """A page of runs (see `store.reports.history`)."""
        if filters.get("library_id") is not None:
            filters["library_id"] = str(libraries.library_key(filters["library_id"]))
        with self.runtime.pool.connection() as conn:
            return reports.history(conn, limit=limit, before=before, **filters)

    def library(self, library_id: str, *, runs_shown: int = 50) -> dict[str, Any]:
        """One library: its row, the games it owns now, its latest event and its runs."""
        with self.runtime.pool.connection() as conn:
            library = libraries.get_library(conn, library_id)
            key = str(library.library_id)
            owned = reports.owned_games(conn, key)
            history = runs.history(conn, key, runs_shown)
        return {
            "library": {**asdict(library), "library_id": key, "owned_games": owned},
            "event": self._events([key])[0],
            "runs": history,
        }

    def search(self, text: str) -> str:
        """The library id a search names: a library id, a SteamID64, a Steam profile URL or
        a GOG user id."""
        text = text.strip()
        if _uuid_like(text):
            with self.runtime.pool.connection() as conn:
                return str(libraries.get_library(conn, text).library_id)
        if text.isascii() and text.isdigit() and not text.startswith(STEAM_ID_PREFIX):
            with self.runtime.pool.connection() as conn:
                found = libraries.find_library(conn, "gog", text)
            if found is None:
                raise UnknownLibrary(f"No library is registered for GOG user {text[:20]}.")
            return found
        return self._by_steam_id(text)

    def _by_steam_id(self, text: str) -> str:
        identity = parse_identity(text)
        if identity.steam_id is None:
            raise NotSearchable(
                "A custom URL name needs a Steam call to resolve and the dashboard makes none:"
                " search by library id, SteamID64, a /profiles/ URL or a GOG user id."
            )
        with self.runtime.pool.connection() as conn:
            found = libraries.find_library(conn, "steam", identity.steam_id)
        if found is None:
            raise UnknownLibrary(f"No library is registered for SteamID64 {identity.steam_id}.")
        return found

    def _events(self, library_ids: list[str]) -> list[dict[str, Any] | None]:
        if not library_ids:
            return []
        raw = self.runtime.redis.mget([keys.progress_key(i) for i in library_ids])
        return [json.loads(value) if value else None for value in raw]


def dumps(data: Any) -> str:
    """JSON text of what these reads answer (times as ISO-8601, keys sorted)."""
    return json.dumps(data, default=_iso, sort_keys=True)


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta | UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def _uuid_like(text: str) -> bool:
    return len(text) in (32, 36) and all(c in "0123456789abcdefABCDEF-" for c in text)


def _active(row: dict[str, Any], event: dict[str, Any] | None) -> dict[str, Any]:
    """A library in flight: its row and open run, overlaid with its latest event (newer)."""
    event = event or {}
    started = event.get("started_at") or row["started_at"]
    return {
        "library_id": row["library_id"],
        "display_name": row["display_name"],
        "platform": row["platform"],
        "platform_user_id": row["platform_user_id"],
        "status": event.get("status", row["sync_status"]),
        "sync_type": row["sync_type"],
        "queue": event.get("queue") or (sync_queue(row["sync_type"]) if row["sync_type"] else None),
        "progress": event.get("progress", 0),
        "games_processed": event.get("games_processed", row["games_processed"] or 0),
        "total_games": event.get("total_games", row["library_games"]),
        "eta_seconds": event.get("eta_seconds"),
        "attempt": row["attempts"],
        "started_at": started,
        "message_id": event.get("message_id") or row["message_id"],
        "message": event.get("message", ""),
    }
