"""The client for async web services (FastAPI, Starlette, aiohttp): `AsyncClient`.

Status and progress are native `redis.asyncio`. Progress goes through one shared
subscription per client, however many browsers watch: a reader task receives every
event once and hands it to the watchers of that library. Registering, requesting and
cancelling run the synchronous client in a worker thread: they share its
de-duplication script and SQL, take milliseconds, and never block the event loop.

    client = AsyncClient()              # settings from the environment
    library_id = await client.register_steam_library("gabelogannewell")
    await client.request_sync(library_id)
    async for event in client.progress(library_id):   # current state first, ends when done
        ...
    await client.aclose()
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator, Callable
from typing import Any, cast

import redis.asyncio as aioredis
import structlog

from . import client as sync_client
from . import keys
from .platforms.gog import REDIRECT_URI
from .runtime import get_runtime, redis_options
from .sync.progress import FINAL_STATUSES, ProgressEvent

__all__ = ["AsyncClient", "ProgressEvent"]

log = structlog.get_logger(__name__)

RECONNECT_DELAY_S = 1.0
#: A slow watcher's skipped snapshots are logged at the first and then every N.
SKIPPED_LOG_EVERY = 1000
_RESYNC: dict[str, Any] = {}  # handed to watchers after a reconnection: re-read the state


class _Mailbox:
    """A watcher's pending events: the newest of each library, oldest library first.

    A watcher slower than the events skips the snapshots it had no time for (each event is
    a full snapshot, so the next one makes up for it): it never loses a library's latest
    state, a final one included, and holds at most one event per library.
    """

    def __init__(self, on_skip: Callable[[], None]) -> None:
        self._pending: dict[str | None, dict[str, Any]] = {}
        self._resync = False
        self._ready = asyncio.Event()
        self._on_skip = on_skip

    def offer(self, event: dict[str, Any]) -> None:
        library_id = event.get("library_id")
        if self._pending.pop(library_id, None) is not None:
            self._on_skip()
        self._pending[library_id] = event
        self._ready.set()

    def resync(self) -> None:
        self._resync = True
        self._ready.set()

    async def take(self) -> dict[str, Any]:
        """The next event, or _RESYNC once after a lost subscription."""
        while not (self._pending or self._resync):
            self._ready.clear()
            await self._ready.wait()
        if self._resync:
            self._resync = False
            return _RESYNC
        return self._pending.pop(next(iter(self._pending)))

    def drain(self) -> list[str]:
        """Forget the pending events; return their libraries (to re-read after a loss)."""
        pending = [lib for lib in self._pending if lib is not None]
        self._pending.clear()
        return pending


class AsyncClient:
    """Request, cancel, status and shared progress streams, for one event loop."""

    def __init__(self) -> None:
        """Uses this process's settings (environment, `.env`); connects on first use."""
        self._redis: aioredis.Redis | None = None
        self._watchers: dict[str | None, set[_Mailbox]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        #: Snapshots skipped by watchers slower than the events (their latest was delivered).
        self.skipped_events = 0

    # -- the synchronous client's operations, off the event loop ---------------------

    async def register_steam_library(self, identity: str) -> str:
        """`client.register_steam_library`: a SteamID64, profile URL or custom URL name."""
        return await asyncio.to_thread(sync_client.register_steam_library, identity)

    async def link_gog_library(self, code: str, *, redirect_uri: str = REDIRECT_URI) -> str:
        """`client.link_gog_library`: exchange a GOG login code at once, link the account."""
        return await asyncio.to_thread(
            sync_client.link_gog_library, code, redirect_uri=redirect_uri
        )

    async def request_sync(
        self, library_id: str, *, force: bool = False, sync_type: str = "manual"
    ) -> str:
        """`client.request_sync`: queue a sync (de-duplicated); returns its message id."""
        return await asyncio.to_thread(
            sync_client.request_sync, library_id, force=force, sync_type=sync_type
        )

    async def cancel_sync(self, library_id: str) -> bool:
        """`client.cancel_sync`: False when nothing was queued or running."""
        return await asyncio.to_thread(sync_client.cancel_sync, library_id)

    # -- native asyncio ------------------------------------------------------------------

    async def get_status(self, library_id: str) -> ProgressEvent:
        """`client.get_status`: the latest progress event, from the database when Redis has
        none; UnknownLibrary once the library is gone."""
        return await asyncio.to_thread(sync_client.get_status, library_id)

    async def progress(
        self, library_id: str | None = None, *, until_done: bool = True
    ) -> AsyncGenerator[ProgressEvent, None]:
        """Yield a library's events as they happen (every library's with None).

        For one library the current state comes first, so nothing between a page load
        and the stream is missed; with `until_done` the iterator ends after a final event.
        Watchers share this client's one Redis subscription.
        """
        mailbox = _Mailbox(self._skipped)
        self._watchers.setdefault(library_id, set()).add(mailbox)
        last: dict[str | None, dict[str, Any]] = {}  # the last event yielded, per library
        try:
            await self._ensure_reader()
            if library_id is not None:
                current = await self._current(library_id)
                if current is not None:
                    last[library_id] = current
                    yield cast(ProgressEvent, current)
                    if until_done and current["status"] in FINAL_STATUSES:
                        return
            while True:
                event = await mailbox.take()
                if event is _RESYNC:
                    # The subscription was lost: events may be missing. Re-read the state of
                    # every library this watcher has seen and not yet seen end, or has pending.
                    pending = mailbox.drain()
                    watched = [library_id] if library_id is not None else [*last, *pending]
                    watched = list(dict.fromkeys(watched))  # each once
                    missed = [
                        state
                        for lib in watched
                        if lib is not None
                        and (state := await self._current(lib)) is not None
                        and state != last.get(lib)
                    ]
                else:
                    missed = [event] if event != last.get(event.get("library_id")) else []
                for state in missed:
                    lib = state.get("library_id")
                    if state["status"] in FINAL_STATUSES and library_id is None:
                        last.pop(lib, None)  # ended: not re-read after a later loss
                    else:
                        last[lib] = state
                    yield cast(ProgressEvent, state)
                    if until_done and library_id is not None and state["status"] in FINAL_STATUSES:
                        return
        finally:
            watchers = self._watchers.get(library_id, set())
            watchers.discard(mailbox)
            if not watchers:
                self._watchers.pop(library_id, None)

    async def aclose(self) -> None:
        """Stop the shared subscription and close the connections."""
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    # -- internals -----------------------------------------------------------------------

    async def _client(self) -> aioredis.Redis:
        if self._redis is None:
            settings = (await asyncio.to_thread(get_runtime)).settings
            url = settings.redis_url or ""
            self._redis = aioredis.Redis.from_url(url, **redis_options(url, settings))
        return self._redis

    async def _current(self, library_id: str) -> dict[str, Any] | None:
        raw = await (await self._client()).get(keys.progress_key(library_id))
        return json.loads(raw) if raw is not None else None

    async def _ensure_reader(self) -> None:
        if self._reader is None or self._reader.done():
            self._subscribed.clear()
            self._reader = asyncio.create_task(self._read(), name="sync-worker progress")
        await self._subscribed.wait()  # subscribed before the watcher reads the state

    async def _read(self) -> None:
        """The one subscription: dispatch each event to its library's watchers."""
        redis_client = await self._client()
        first = True
        while True:
            try:
                async with redis_client.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(keys.PROGRESS_CHANNEL)
                    self._subscribed.set()
                    if not first:
                        self._resync_all()
                    first = False
                    async for message in pubsub.listen():
                        if message["type"] == "message":
                            self._dispatch(json.loads(message["data"]))
            except (aioredis.ConnectionError, aioredis.TimeoutError, OSError) as exc:
                log.warning("progress.resubscribing", error=type(exc).__name__)
                await asyncio.sleep(RECONNECT_DELAY_S)

    def _dispatch(self, event: dict[str, Any]) -> None:
        for key in (event.get("library_id"), None):
            for mailbox in self._watchers.get(key, ()):
                mailbox.offer(event)

    def _resync_all(self) -> None:
        for mailboxes in self._watchers.values():
            for mailbox in mailboxes:
                mailbox.resync()

    def _skipped(self) -> None:
        self.skipped_events += 1
        if self.skipped_events % SKIPPED_LOG_EVERY == 1:
            log.warning("progress.watcher_behind", skipped_events=self.skipped_events)
