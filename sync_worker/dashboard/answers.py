"""How the dashboard reads requests and writes answers: query parameters and cursors,
JSON, errors, the pages' time formats, and the security headers on every answer."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import MalformedMessage, SyncWorkerError, TransientError, UnknownLibrary
from ..infrastructure import INFRASTRUCTURE_ERRORS, infrastructure_error
from ..sending import SYNC_TYPES
from ..store.reports import HISTORY_FILTERS
from .reads import dumps

RUN_STATUSES = ("running", "completed", "failed", "private", "cancelled", "relink_required")


class Refused(Exception):
    """An answer other than 200 for a reason the user can act on."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


#: What an endpoint answers with an error body instead of failing.
ANSWERED: tuple[type[BaseException], ...] = (SyncWorkerError, Refused, *INFRASTRUCTURE_ERRORS)


class SecurityHeaders:
    """Headers every answer carries: no framing, no inline script, no sniffing."""

    HEADERS = [
        (b"content-security-policy", b"default-src 'self'; frame-ancestors 'none'"),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"same-origin"),
    ]

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self.HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers if scope["type"] == "http" else send)


def json_response(data: Any, status: int = 200) -> Response:
    """JSON with times as ISO-8601."""
    return Response(dumps(data), status_code=status, media_type="application/json")


def error_answer(exc: BaseException) -> tuple[int, dict[str, str]]:
    """The status and error body of a refusal, one of our errors or an outage."""
    if isinstance(exc, Refused):
        return exc.status, {"code": exc.code, "message": exc.message}
    if not isinstance(exc, SyncWorkerError):
        exc = infrastructure_error(exc)
    status = (
        404 if isinstance(exc, UnknownLibrary) else 503 if isinstance(exc, TransientError) else 400
    )
    return status, exc.to_dict()


def when(value: datetime | str | None) -> str:
    """A time as the pages show it: UTC to the second."""
    if value is None:
        return "—"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def took(run: dict[str, Any]) -> str:
    """How long a run took (or has run so far), as 1.2 s / 3 min 4 s."""
    seconds = run.get("duration_s")
    if seconds is None and run.get("finished_at") and isinstance(run["started_at"], datetime):
        seconds = (run["finished_at"] - run["started_at"]).total_seconds()
    if seconds is None:
        return "—"
    return f"{seconds:.1f} s" if seconds < 60 else f"{seconds // 60:.0f} min {seconds % 60:.0f} s"


def history_query(request: Request) -> tuple[dict[str, str | None], tuple[datetime, str] | None]:
    """The history filters and cursor of a request's query string (bad values: 400)."""
    params = request.query_params
    filters = {name: params.get(name) or None for name in HISTORY_FILTERS}
    if filters["status"] not in (None, *RUN_STATUSES):
        raise MalformedMessage(f"status must be one of {', '.join(RUN_STATUSES)}.")
    if filters["sync_type"] not in (None, *SYNC_TYPES):
        raise MalformedMessage(f"sync_type must be one of {', '.join(SYNC_TYPES)}.")
    before = params.get("before")
    if not before:
        return filters, None
    at, _, run_id = before.partition(",")
    try:
        return filters, (datetime.fromisoformat(at), str(uuid.UUID(run_id)))
    except ValueError:
        raise MalformedMessage("before must be a cursor from an `older` link.") from None


def cursor(older: tuple[datetime, str]) -> str:
    """The `before` value of the page after one ending at `older`."""
    return f"{older[0].isoformat()},{older[1]}"


def int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    """An integer query parameter within [low, high] (a bad one: 400)."""
    text = request.query_params.get(name)
    if text is None:
        return default
    if not text.isdigit() or not low <= int(text) <= high:
        raise MalformedMessage(f"{name} must be a whole number from {low} to {high}.")
    return int(text)


def safe_next(request: Request) -> str:
    """Where to go after signing in: a path on this site only (never another site)."""
    target = request.query_params.get("next", "/")
    return target if target.startswith("/") and not target.startswith("//") else "/"


def client_address(request: Request) -> str:
    """The caller's address (uvicorn reads X-Forwarded-For from FORWARDED_ALLOW_IPS)."""
    return request.client.host if request.client else "?"
