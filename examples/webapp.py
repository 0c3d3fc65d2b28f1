"""An example web service on sync-worker: FastAPI, with progress streamed to the browser
as server-sent events. Copy it; docs/integration.md walks through it.

    pip install '.[example]'                                  # from a checkout
    uvicorn webapp:app --app-dir examples --port 8000 --timeout-graceful-shutdown 3
                                                              # beside `make run`

`--timeout-graceful-shutdown`: a followed stream (`?follow=true`) never ends by itself;
at shutdown uvicorn waits that long, then ends it (the stream closes cleanly).

Endpoints:
    POST   /libraries                 {"steam_id": "..."} -> {"library_id": "..."}
    POST   /libraries/{id}/sync       queue a manual sync -> 202 {"message_id": "..."}
    DELETE /libraries/{id}/sync       cancel a queued or running sync
    GET    /libraries/{id}/status     the latest progress event
    GET    /libraries/{id}/events     text/event-stream: the current state, then each
                                      event, until the sync ends (`?follow=true`: for ever)
    GET    /                          a page that watches one library in the browser

Errors are {"error": {"code", "message"}} with a status per code (ERROR_STATUS); a
request that does not validate is 422 `invalid_request`. The OpenAPI schema (/docs)
lists every error answer and the event model, `sync_worker.aio.ProgressEvent`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from pydantic import BaseModel, TypeAdapter

from sync_worker.aio import AsyncClient, ProgressEvent
from sync_worker.errors import SyncWorkerError

#: HTTP status per error code; anything else (Steam or our servers down) is 503.
ERROR_STATUS = {
    "invalid_steam_id": 422,
    "vanity_not_found": 404,
    "unknown_library": 404,
    "malformed_message": 422,
    "rate_limit_exhausted": 429,
}
KEEPALIVE_S = 15  # a comment line this often keeps proxies from closing an idle stream


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """One client (one Redis subscription for every browser) per process."""
    app.state.sync = AsyncClient()
    yield
    await app.state.sync.aclose()


app = FastAPI(title="sync-worker example", lifespan=lifespan)


def sync(request: Request) -> AsyncClient:
    client: AsyncClient = request.app.state.sync
    return client


class ErrorDetail(BaseModel):
    code: str  # stable: docs/behaviour.md
    message: str  # one sentence fit for a user


class ErrorAnswer(BaseModel):
    error: ErrorDetail


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI: the error answers a route may give."""
    return {status: {"model": ErrorAnswer} for status in (*statuses, 503)}


EVENTS_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Server-sent events: one `data:` line per event (JSON), and a"
        " `: keepalive` comment line every KEEPALIVE_S while nothing happens.",
        "content": {"text/event-stream": {"schema": TypeAdapter(ProgressEvent).json_schema()}},
    },
    **errors(404, 422),
}


@app.exception_handler(RequestValidationError)
async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's own validation errors, in the same shape as ours."""
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
    message = f"{where}: {first['msg']}" if where else str(first["msg"])
    return JSONResponse({"error": {"code": "invalid_request", "message": message}}, 422)


@app.exception_handler(SyncWorkerError)
async def sync_worker_error(request: Request, exc: SyncWorkerError) -> JSONResponse:
    """Our errors carry a stable code and a sentence fit for a user."""
    headers = {}
    retry_after = getattr(exc, "retry_after_s", None)
    if retry_after:
        headers["Retry-After"] = str(max(1, round(retry_after)))
    return JSONResponse(
        {"error": exc.to_dict()}, status_code=ERROR_STATUS.get(exc.code, 503), headers=headers
    )


class NewLibrary(BaseModel):
    steam_id: str  # a SteamID64, a profile URL or a custom URL name


@app.post("/libraries", status_code=201, responses=errors(404, 422, 429))
async def register(body: NewLibrary, request: Request) -> dict[str, str]:
    return {"library_id": await sync(request).register_steam_library(body.steam_id)}


@app.post("/libraries/{library_id}/sync", status_code=202, responses=errors(404, 422))
async def request_sync(library_id: str, request: Request) -> dict[str, str]:
    return {"message_id": await sync(request).request_sync(library_id)}


@app.delete("/libraries/{library_id}/sync", responses=errors(404))
async def cancel_sync(library_id: str, request: Request) -> dict[str, bool]:
    return {"cancelled": await sync(request).cancel_sync(library_id)}


@app.get("/libraries/{library_id}/status", responses=errors(404))
async def status(library_id: str, request: Request) -> ProgressEvent:
    return await sync(request).get_status(library_id)


@app.get(
    "/libraries/{library_id}/events", response_class=StreamingResponse, responses=EVENTS_RESPONSE
)
async def events(library_id: str, request: Request, follow: bool = False) -> StreamingResponse:
    client = sync(request)
    await client.get_status(library_id)  # an unknown library is a 404, not an empty stream

    async def stream() -> AsyncIterator[str]:
        progress = client.progress(library_id, until_done=not follow)
        upcoming = asyncio.ensure_future(anext(progress))
        try:
            while True:
                # Waiting on the pending task (never cancelling it) keeps the stream intact.
                done, _ = await asyncio.wait({upcoming}, timeout=KEEPALIVE_S)
                if not done:
                    if await request.is_disconnected():
                        return
                    yield ": keepalive\n\n"
                    continue
                try:
                    event = upcoming.result()
                except StopAsyncIteration:  # the sync ended
                    return
                yield f"data: {json.dumps(event)}\n\n"
                upcoming = asyncio.ensure_future(anext(progress))
        finally:
            # The client left (or the server is stopping): the pending read is cancelled
            # and awaited before the generator is closed, which it must not be mid-read.
            upcoming.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await upcoming
            await progress.aclose()

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@app.get("/", response_class=HTMLResponse)
async def page() -> str:
    return PAGE


PAGE = """<!doctype html>
<meta charset="utf-8"><title>sync-worker example</title>
<form id="f"><input id="steam" placeholder="SteamID64, profile URL or name" size="40">
<button>Sync</button></form>
<progress id="bar" max="100" value="0"></progress> <span id="text"></span>
<script>
document.getElementById("f").onsubmit = async (e) => {
  e.preventDefault();
  const say = (t) => document.getElementById("text").textContent = t;
  const post = (url, body) => fetch(url, {method: "POST", headers: {"Content-Type": "application/json"},
                                          body: JSON.stringify(body)}).then(r => r.json());
  const lib = await post("/libraries", {steam_id: document.getElementById("steam").value});
  if (lib.error) return say(lib.error.message);
  await post(`/libraries/${lib.library_id}/sync`, {});
  const events = new EventSource(`/libraries/${lib.library_id}/events`);
  events.onmessage = (m) => { const ev = JSON.parse(m.data);
    document.getElementById("bar").value = ev.progress; say(`${ev.status}: ${ev.message}`);
    if (["completed", "failed", "cancelled"].includes(ev.status)) events.close(); };
};
</script>
"""
