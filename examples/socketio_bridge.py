"""A Socket.IO bridge for sync-worker's progress: one room per library, any number of web
processes. Copy it; docs/integration.md walks through it.

    pip install '.[example]'                                         # from a checkout
    uvicorn socketio_bridge:app --app-dir examples --port 8001       # as many as you like

A browser (socket.io-client) connects and calls `watch` with a library id: it joins the
library's room, and gets the current state at once, then every event, as `progress`
events (sync_worker.aio.ProgressEvent) until it calls `unwatch` or leaves. An unknown
library answers the call with {"error": {"code", "message"}} and joins nothing.

    socket.emit("watch", libraryId, (answer) => { if (answer.error) ... });
    socket.on("progress", (event) => { ... event.status, event.progress ... });

Processes share python-socketio's Redis manager (on REDIS_URL): rooms, and whatever a
handler emits, reach clients on every process. Each process also has one AsyncClient,
one Redis subscription that receives every progress event once: it hands each event to
the clients connected to this process (`ignore_queue`); sent through the manager, every
client would get it once per process.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import socketio

from sync_worker.aio import AsyncClient
from sync_worker.errors import SyncWorkerError
from sync_worker.runtime import get_runtime

CHANNEL = "sync-worker-socketio"  # the manager's own channel, apart from the progress one

sio = socketio.AsyncServer(
    async_mode="asgi",
    client_manager=socketio.AsyncRedisManager(get_runtime().settings.redis_url, channel=CHANNEL),
    cors_allowed_origins=[],  # same origin only: list your site's origins here
)
progress = AsyncClient()
_forwarding: asyncio.Task[None] | None = None


async def forward() -> None:
    """Every progress event, to the clients of this process watching its library."""
    async for event in progress.progress(None, until_done=False):
        await sio.emit("progress", event, room=event["library_id"], ignore_queue=True)


async def startup() -> None:
    global _forwarding
    _forwarding = asyncio.create_task(forward(), name="progress to Socket.IO")


async def shutdown() -> None:
    if _forwarding is not None:
        _forwarding.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await _forwarding
    await progress.aclose()


async def watch(sid: str, library_id: Any) -> dict[str, Any]:
    """Join the library's room; its current state follows at once."""
    try:
        current = await progress.get_status(str(library_id))  # UnknownLibrary: nothing joined
    except SyncWorkerError as exc:
        return {"error": exc.to_dict()}
    room = current["library_id"]
    # In the room before the state is read again: an event published meanwhile comes
    # after it (at worst twice), never not at all.
    await sio.enter_room(sid, room)
    latest = await progress.get_status(room)
    await sio.emit("progress", latest, to=sid, ignore_queue=True)
    return {"library_id": room}


async def unwatch(sid: str, library_id: Any) -> None:
    """Leave the library's room."""
    await sio.leave_room(sid, str(library_id))


sio.on("watch", watch)
sio.on("unwatch", unwatch)
app = socketio.ASGIApp(sio, on_startup=startup, on_shutdown=shutdown)
