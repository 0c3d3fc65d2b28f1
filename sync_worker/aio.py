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
from collections.abc import AsyncGenerator
from typing import Any

import redis.asyncio as aioredis
import structlog

from . import client as sync_client
from . import keys
from .runtime import get_runtime, redis_options
from .sync.progress import FINAL_STATUSES

log = structlog.get_logger(__name__)

WATCHER_QUEUE_SIZE = 256  # events a slow watcher may lag behind before the oldest are dropped
RECONNECT_DELAY_S = 1.0
_RESYNC: dict[str, Any] = {}  # handed to watchers after a reconnection: re-read the state


class AsyncClient:
    """Request, cancel, status and shared progress streams, for one event loop."""

    def __init__(self) -> None:
        """Uses this process's settings (environment, `.env`); connects on first use."""
        self._redis: aioredis.Redis | None = None
        self._watchers: dict[str | None, set[asyncio.Queue[dict[str, Any]]]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    # -- the synchronous client's operations, off the event loop ---------------------

    async def register_steam_library(self, identity: str) -> str:
        """`client.register_steam_library`: a SteamID64, profile URL or custom URL name."""
        return await asyncio.to_thread(sync_client.register_steam_library, identity)

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

    async def get_status(self, library_id: str) -> dict[str, Any]:
        """`client.get_status`: the latest progress event, from the database when Redis has
        none; UnknownLibrary once the library is gone."""
        return await asyncio.to_thread(sync_client.get_status, library_id)

    async def progress(
        self, library_id: str | None = None, *, until_done: bool = True
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Yield a library's events as they happen (every library's with None).

        For one library the current state comes first, so nothing between a page load
        and the stream is missed; with `until_done` the iterator ends after a final event.
        Watchers share this client's one Redis subscription.
        """
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(WATCHER_QUEUE_SIZE)
        self._watchers.setdefault(library_id, set()).add(queue)
        try:
            await self._ensure_reader()
            last: dict[str, Any] | None = None
            if library_id is not None:
                last = await self._current(library_id)
                if last is not None:
                    yield last
                    if until_done and last["status"] in FINAL_STATUSES:
                        return
            while True:
                event = await queue.get()
                if event is _RESYNC:  # the subscription was lost: events may be missing
                    if library_id is None:
                        continue
                    event = await self._current(library_id) or {}
                    if not event or event == last:
                        continue
                elif event == last:
                    continue  # the current state, also received from the channel
                last = event
                yield event
                if until_done and library_id is not None and event["status"] in FINAL_STATUSES:
                    return
        finally:
            watchers = self._watchers.get(library_id, set())
            watchers.discard(queue)
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
                        self._dispatch_all(_RESYNC)
                    first = False
                    async for message in pubsub.listen():
                        if message["type"] == "message":
                            self._dispatch(json.loads(message["data"]))
            except (aioredis.ConnectionError, aioredis.TimeoutError, OSError) as exc:
                log.warning("progress.resubscribing", error=type(exc).__name__)
                await asyncio.sleep(RECONNECT_DELAY_S)

    def _dispatch(self, event: dict[str, Any]) -> None:
        for key in (event.get("library_id"), None):
            for queue in self._watchers.get(key, ()):
                _offer(queue, event)

    def _dispatch_all(self, marker: dict[str, Any]) -> None:
        for queues in self._watchers.values():
            for queue in queues:
                _offer(queue, marker)


def _offer(queue: asyncio.Queue[dict[str, Any]], event: dict[str, Any]) -> None:
    """Put without waiting; a watcher that fell far behind loses its oldest events
    (each event is a full snapshot, so the next one makes up for it)."""
    if queue.full():
        queue.get_nowait()
    queue.put_nowait(event)
