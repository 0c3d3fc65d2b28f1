"""The live feed: one progress subscription and one overview poll per dashboard process,
fanned out to every browser watching.

Progress events come from the existing channel (through `aio.AsyncClient`, which
re-reads the state after a lost subscription); each is completed with what the page
shows beside it (the library's name, the run's attempt and type), looked up once per
attempt, not once per event. The overview (queues, workers, budget, schedule, dead
letters) is read every `OVERVIEW_EVERY_S` while someone watches, and not at all
otherwise. A browser slower than the feed skips to the newest state of each library:
each event is a full snapshot, so nothing is lost but intermediate frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import OrderedDict
from typing import Any

import structlog

from ..aio import AsyncClient
from ..errors import InternalError, UnknownLibrary
from ..infrastructure import INFRASTRUCTURE_ERRORS, infrastructure_error
from ..sending import sync_queue
from ..store import libraries, reports
from .reads import Reads, dumps

log = structlog.get_logger(__name__)

OVERVIEW_EVERY_S = 2.0
KNOWN_LIBRARIES = 10_000  # names and run details kept for the events' libraries


class Outbox:
    """One browser's pending messages: the newest of each kind and library."""

    def __init__(self) -> None:
        self._pending: dict[tuple[str, str | None], dict[str, Any]] = {}
        self._ready = asyncio.Event()

    def offer(self, kind: str, data: dict[str, Any]) -> None:
        """Queue a message, replacing an older one of the same kind and library."""
        key = (kind, data.get("library_id") if kind == "progress" else None)
        self._pending.pop(key, None)
        self._pending[key] = data
        self._ready.set()

    async def take(self, timeout_s: float) -> tuple[str, dict[str, Any]] | None:
        """The oldest pending message, or None after `timeout_s` without one."""
        if not self._pending:
            self._ready.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ready.wait(), timeout_s)
        if not self._pending:
            return None
        key = next(iter(self._pending))
        return key[0], self._pending.pop(key)


class Hub:
    """The shared feed; `start` it on the event loop, `watch` for each browser."""

    def __init__(self, reads: Reads) -> None:
        self._reads = reads
        self._client = AsyncClient()
        self._outboxes: set[Outbox] = set()
        self._watching = asyncio.Event()
        self._overview: dict[str, Any] | None = None
        self._runs: OrderedDict[str, dict[str, Any]] = OrderedDict()  # library -> details
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Begin reading progress and polling the overview."""
        self._tasks = [
            asyncio.create_task(self._read_progress(), name="dashboard progress"),
            asyncio.create_task(self._poll_overview(), name="dashboard overview"),
        ]

    async def stop(self) -> None:
        """Stop both tasks and close the subscription."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._client.aclose()

    @contextlib.asynccontextmanager
    async def watch(self) -> Any:
        """An outbox receiving every message while the context is open; the current
        overview is its first message."""
        outbox = Outbox()
        self._outboxes.add(outbox)
        self._watching.set()
        if self._overview is not None:
            outbox.offer("overview", self._overview)
        try:
            yield outbox
        finally:
            self._outboxes.discard(outbox)
            if not self._outboxes:
                self._watching.clear()

    def _publish(self, kind: str, data: dict[str, Any]) -> None:
        for outbox in self._outboxes:
            outbox.offer(kind, data)

    async def _read_progress(self) -> None:
        async for event in self._client.progress(None, until_done=False):
            try:
                details = await self._details(dict(event))
            except INFRASTRUCTURE_ERRORS:
                details = {}  # the bar moves without the name rather than not at all
            self._publish("progress", {**details, **event})

    async def _details(self, event: dict[str, Any]) -> dict[str, Any]:
        """The library's name and the run's attempt and type, read again when an attempt
        starts (or for a library not seen yet)."""
        library_id = str(event.get("library_id"))
        known = self._runs.get(library_id)
        if (
            known is None
            or event.get("status") == "starting"
            or (event.get("message_id") != known.get("message_id"))
        ):
            known = await asyncio.to_thread(self._look_up, library_id, event.get("message_id"))
            self._runs[library_id] = known
            while len(self._runs) > KNOWN_LIBRARIES:
                self._runs.popitem(last=False)
        self._runs.move_to_end(library_id)
        return known

    def _look_up(self, library_id: str, message_id: str | None) -> dict[str, Any]:
        with self._reads.runtime.pool.connection() as conn:
            try:
                library = libraries.get_library(conn, library_id)
            except UnknownLibrary:
                return {"message_id": message_id}
            run = reports.run_of_message(conn, library_id, message_id)
        details: dict[str, Any] = {
            "message_id": message_id,
            "display_name": library.display_name,
            "platform": library.platform,
            "platform_user_id": library.platform_user_id,
        }
        if run is not None:
            sync_type, attempts = run
            details.update(sync_type=sync_type, attempt=attempts, queue=sync_queue(sync_type))
        return details

    async def _poll_overview(self) -> None:
        last = None
        while True:
            await self._watching.wait()
            try:
                overview = await asyncio.to_thread(self._reads.overview)
            except INFRASTRUCTURE_ERRORS as exc:
                overview = {"error": infrastructure_error(exc).to_dict()}
            except Exception:  # a bug: say so, and keep the feed alive for the next poll
                log.exception("dashboard.overview_failed")
                overview = {
                    "error": InternalError(
                        "The dashboard could not read the overview; it was logged."
                    ).to_dict()
                }
            text = dumps(overview)
            if text != last:
                last = text
                self._overview = json.loads(text)
                self._publish("overview", self._overview)
            await asyncio.sleep(OVERVIEW_EVERY_S)
