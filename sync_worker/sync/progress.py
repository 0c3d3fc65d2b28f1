"""Progress events: the latest one in `sync:progress:{id}`, every one on `sync:progress`.

The key and the channel are written in one MULTI, so a reader that subscribes and then
reads the key never misses the current state. Per-batch updates are throttled; the
first and the last are always sent.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, NotRequired

import redis
from typing_extensions import TypedDict  # pydantic (FastAPI) needs it on Python < 3.12

from .. import keys
from ..errors import SyncWorkerError

STATUSES = ("queued", "starting", "syncing", "completed", "failed", "cancelled", "retrying")
FINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})


class EventError(TypedDict):
    """Why a sync failed or was cancelled (or why an attempt will be retried)."""

    code: str  # stable, see docs/behaviour.md
    message: str  # one sentence fit for a user


class ProgressEvent(TypedDict):
    """One progress event, as stored, published and streamed (docs/integration.md)."""

    library_id: str
    status: str  # STATUSES; from the database also `never_synced` (nothing yet)
    progress: int  # 0-100
    games_processed: int
    total_games: int
    message: str
    message_id: NotRequired[str]  # the sync message this event belongs to
    current_game: NotRequired[str | None]
    started_at: NotRequired[str]  # ISO-8601 UTC
    completed_at: NotRequired[str | None]
    eta_seconds: NotRequired[float | None]
    error: NotRequired[EventError | None]
    queue: NotRequired[str]  # `queued` events: the queue it waits on
    workers: NotRequired[int]  # `queued` events: live workers that can run it (0: none yet)


def last_event(client: redis.Redis, library_id: str) -> dict[str, Any] | None:
    """The library's latest event, if Redis still has it."""
    raw = client.get(keys.progress_key(library_id))
    event: dict[str, Any] | None = json.loads(raw) if raw else None
    return event


def make_event(
    library_id: str,
    status: str,
    *,
    progress: int = 0,
    games_processed: int = 0,
    total_games: int = 0,
    message: str = "",
    **extra: Any,
) -> dict[str, Any]:
    """One event in the contract's shape (extra fields with a None value are left out)."""
    assert status in STATUSES, status
    return {
        "library_id": library_id,
        "status": status,
        "progress": progress,
        "games_processed": games_processed,
        "total_games": total_games,
        "message": message,
        **{k: v for k, v in extra.items() if v is not None},
    }


def write_events(client: redis.Redis, events: list[dict[str, Any]], ttl_s: int) -> None:
    """Store each event as its library's latest and publish it, all in one MULTI."""
    pipe = client.pipeline(transaction=True)
    for event in events:
        payload = json.dumps(event, ensure_ascii=False)
        pipe.set(keys.progress_key(event["library_id"]), payload, ex=ttl_s)
        pipe.publish(keys.PROGRESS_CHANNEL, payload)
    pipe.execute()


# KEYS: [progress key]  ARGV: [event JSON, its message id, ttl s, channel]
# -> 1 stored and published; 0 when the stored event is that message's own already (its
# run began, and its events are newer than the request's `queued`).
_QUEUED_SCRIPT = """
local current = redis.call('GET', KEYS[1])
if current then
    local ok, event = pcall(cjson.decode, current)
    if ok and type(event) == 'table' and event['message_id'] == ARGV[2] then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
redis.call('PUBLISH', ARGV[4], ARGV[1])
return 1
"""


def write_queued_events(client: redis.Redis, events: list[dict[str, Any]], ttl_s: int) -> None:
    """Store and publish each `queued` event (carrying its `message_id`) unless its
    message's run has published already: a request never hides its own sync's progress."""
    script = client.register_script(_QUEUED_SCRIPT)
    pipe = client.pipeline(transaction=False)
    for event in events:
        script(
            keys=[keys.progress_key(event["library_id"])],
            args=[
                json.dumps(event, ensure_ascii=False),
                event["message_id"],
                ttl_s,
                keys.PROGRESS_CHANNEL,
            ],
            client=pipe,
        )
    pipe.execute()


def utc_now_iso() -> str:
    """Now, as the ISO-8601 UTC string events carry."""
    return datetime.now(UTC).isoformat()


class ProgressPublisher:
    """Publishes one library's events."""

    def __init__(
        self,
        client: redis.Redis,
        library_id: str,
        *,
        ttl_s: int,
        min_interval_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        listener: Callable[[dict[str, Any]], None] | None = None,
        message_id: str | None = None,
    ) -> None:
        """`listener` sees every event this publisher sends (the CLI's progress bar);
        `message_id`, the sync message the events are about, goes into each of them."""
        self._client = client
        self._message_id = message_id
        self._listener = listener
        self._library_id = library_id
        self._ttl_s = ttl_s
        self._min_interval_s = min_interval_s
        self._clock = clock
        self._last_sent: float | None = None
        self._first_progress_at: tuple[float, int] | None = None

    def publish(
        self,
        status: str,
        *,
        progress: int = 0,
        games_processed: int = 0,
        total_games: int = 0,
        message: str = "",
        **extra: Any,
    ) -> dict[str, Any]:
        """Send one event now and return it (extra fields with a None value are left out)."""
        event = make_event(
            self._library_id,
            status,
            progress=progress,
            games_processed=games_processed,
            total_games=total_games,
            message=message,
            message_id=self._message_id,
            **extra,
        )
        write_events(self._client, [event], self._ttl_s)
        self._last_sent = self._clock()
        if self._listener is not None:
            self._listener(event)
        return event

    def lifecycle(self, status: str, message: str, **extra: Any) -> dict[str, Any]:
        """An event between runs or attempts (queued, retrying, failed, cancelled) that keeps
        the last known progress figures and start time of the library."""
        previous = last_event(self._client, self._library_id) or {}
        figures = {
            "progress": previous.get("progress", 0),
            "games_processed": previous.get("games_processed", 0),
            "total_games": previous.get("total_games", 0),
            "started_at": previous.get("started_at"),
        }
        return self.publish(status, message=message, **{**figures, **extra})

    def final(self, status: str, error: SyncWorkerError, **figures: Any) -> dict[str, Any]:
        """The event that ends a sync without completing it (a private profile is `failed`)."""
        event_status = "cancelled" if status == "cancelled" else "failed"
        extra = {"error": error.to_dict(), "completed_at": utc_now_iso(), **figures}
        return self.lifecycle(event_status, error.message, **extra)

    def batch(
        self, games_processed: int, total_games: int, *, current_game: str | None, started_at: str
    ) -> dict[str, Any] | None:
        """A throttled `syncing` update; the first and the last (all processed) always go out."""
        now = self._clock()
        is_first = self._first_progress_at is None
        if is_first:
            self._first_progress_at = (now, games_processed)
        is_last = games_processed >= total_games
        throttled = self._last_sent is not None and now - self._last_sent < self._min_interval_s
        if throttled and not (is_first or is_last):
            return None
        return self.publish(
            "syncing",
            progress=percent(games_processed, total_games),
            games_processed=games_processed,
            total_games=total_games,
            message=f"Saved {games_processed} of {total_games} games",
            current_game=current_game,
            started_at=started_at,
            eta_seconds=self._eta(now, games_processed, total_games),
        )

    def _eta(self, now: float, done: int, total: int) -> float | None:
        assert self._first_progress_at is not None
        since, done_then = self._first_progress_at
        rate = (done - done_then) / (now - since) if now > since else 0
        return round((total - done) / rate, 1) if rate > 0 else None


def percent(done: int, total: int) -> int:
    """Progress 0-100 (a library of zero games is 100 % done)."""
    return 100 if total <= 0 else min(100, int(done * 100 / total))
