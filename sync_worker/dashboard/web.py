"""The dashboard's web app: pages, their JSON twins under `/api/`, the live feed, actions.

Pages are Jinja2 templates (autoescaped); the overview is drawn by `static/dashboard.js`
from the same JSON `/api/overview` answers, then kept live by `/api/events` (server-sent
events). Actions are POSTs that need an operator and the session's CSRF token. Every
error answers `{"error": {"code", "message"}}` (a page shows the sentence); our own
outages answer 503 and name no URL.
"""

from __future__ import annotations

import asyncio
import functools
import re
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import structlog
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from .. import __version__
from ..client import cancel_sync
from ..dead_letters import discard as discard_letters
from ..dead_letters import find_dead_letter, list_dead_letters, requeue
from ..infrastructure import INFRASTRUCTURE_ERRORS, infrastructure_error
from ..runtime import Runtime
from ..sending import SYNC_TYPES
from .answers import (
    ANSWERED,
    RUN_STATUSES,
    Refused,
    SecurityHeaders,
    client_address,
    cursor,
    error_answer,
    history_query,
    int_param,
    json_response,
    safe_next,
    took,
    when,
)
from .auth import COOKIE, FAILED_LOGIN_DELAY_S, SESSION_S, Gate, Principal
from .live import Hub
from .reads import Reads, dumps

log = structlog.get_logger(__name__)

HERE = Path(__file__).parent
PING_EVERY_S = 15.0  # keeps proxies (Heroku's router cuts idle ones at 55 s) from closing a stream
HISTORY_PAGE = 50
_NAME = re.compile(r"[^\w .@-]")  # what a name written in the log may hold


def create_app(runtime: Runtime) -> Starlette:
    """The dashboard on `runtime` (its settings give the tokens)."""
    gate = Gate(runtime.settings)
    reads = Reads(runtime)
    hub = Hub(reads)
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.globals["version"] = __version__
    templates.env.filters.update(when=when, took=took)
    secure = runtime.settings.is_production

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        hub.start()
        try:
            yield
        finally:
            await hub.stop()
            reads.close()

    def principal(request: Request) -> Principal | None:
        return gate.bearer(request.headers.get("authorization")) or gate.session(
            request.cookies.get(COOKIE)
        )

    def page(
        handler: Callable[[Request, Principal], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        """An HTML page: sign-in first; errors shown as a sentence on the page."""

        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            who = principal(request)
            if who is None:
                query = request.url.query
                target = urllib.parse.quote(request.url.path + ("?" + query if query else ""))
                return RedirectResponse(f"/login?next={target}", status_code=303)
            try:
                return await handler(request, who)
            except ANSWERED as exc:
                status, error = error_answer(exc)
                return render(request, who, "error.html", {"error": error}, status)

        return endpoint

    def api(
        handler: Callable[[Request, Principal], Awaitable[Any]], *, action: bool = False
    ) -> Callable[[Request], Awaitable[Response]]:
        """A JSON endpoint; an action also needs an operator and the CSRF token."""

        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            try:
                if request.headers.get("authorization"):
                    check_lockout(request)
                who = principal(request)
                if who is None:
                    if request.headers.get("authorization"):  # a wrong bearer token
                        await refuse_token(request)
                    raise Refused(401, "unauthenticated", "Sign in with a dashboard token.")
                if action:
                    check_action(request, who)
                return json_response(await handler(request, who))
            except ANSWERED as exc:
                status, error = error_answer(exc)
                return json_response({"error": error}, status)

        return endpoint

    def check_action(request: Request, who: Principal) -> None:
        if not who.can_act:
            raise Refused(
                403, "read_only", "This session is read-only: sign in with DASHBOARD_TOKEN to act."
            )
        if who.csrf and request.headers.get("x-csrf-token") != who.csrf:
            raise Refused(
                403, "csrf_failed", "The page's CSRF token is missing or stale: reload the page."
            )

    def check_lockout(request: Request) -> None:
        """An address that sent too many wrong tokens may not try any, right ones included."""
        wait_s = gate.locked_out(client_address(request))
        if wait_s > 0:
            raise Refused(
                429,
                "too_many_failed_logins",
                f"Too many wrong tokens from this address: try again in {wait_s / 60:.0f} min.",
            )

    async def refuse_token(request: Request) -> None:
        """A wrong token: answered slowly, counted and logged."""
        address = client_address(request)
        failures = gate.failed(address)
        log.warning(
            "dashboard.login_failed",
            address=address,
            failures_from_address=failures,
            failures_total=gate.failures_total,
        )
        await asyncio.sleep(FAILED_LOGIN_DELAY_S)
        raise Refused(401, "wrong_token", "That token is not a dashboard token.")

    def render(
        request: Request,
        who: Principal | None,
        name: str,
        context: dict[str, Any],
        status: int = 200,
    ) -> Response:
        return templates.TemplateResponse(
            request,
            name,
            {"who": who, "open": gate.open, "statuses": RUN_STATUSES, **context},
            status_code=status,
        )

    def acted(request: Request, who: Principal, action: str, **details: Any) -> None:
        log.info(
            "dashboard.action",
            action=action,
            who=who.name,
            role=who.role,
            address=client_address(request),
            **details,
        )

    # -- pages --------------------------------------------------------------------------

    @page
    async def overview_page(request: Request, who: Principal) -> Response:
        try:
            initial: dict[str, Any] = await asyncio.to_thread(reads.overview)
        except INFRASTRUCTURE_ERRORS as exc:  # the page loads; the feed fills it later
            initial = {"error": infrastructure_error(exc).to_dict()}
        # Inside <script>: no "</script>" (a display name is anyone's text) can end it.
        text = dumps(initial).replace("<", "\\u003c").replace(">", "\\u003e")
        return render(request, who, "overview.html", {"initial": text.replace("&", "\\u0026")})

    @page
    async def history_page(request: Request, who: Principal) -> Response:
        filters, before = history_query(request)
        found = await asyncio.to_thread(reads.history, limit=HISTORY_PAGE, before=before, **filters)
        older = None
        if found.older is not None:
            query = {k: v for k, v in filters.items() if v} | {"before": cursor(found.older)}
            older = "?" + urllib.parse.urlencode(query)
        newest = "?" + urllib.parse.urlencode({k: v for k, v in filters.items() if v})
        return render(
            request,
            who,
            "history.html",
            {
                "runs": found.runs,
                "filters": filters,
                "older": older,
                "newest": newest if before else None,
                "sync_types": SYNC_TYPES,
            },
        )

    @page
    async def library_page(request: Request, who: Principal) -> Response:
        found = await asyncio.to_thread(reads.library, request.path_params["library_id"])
        return render(request, who, "library.html", found)

    @page
    async def search_page(request: Request, who: Principal) -> Response:
        library_id = await asyncio.to_thread(reads.search, request.query_params.get("q", ""))
        return RedirectResponse(f"/libraries/{library_id}", status_code=303)

    async def login_page(request: Request) -> Response:
        if request.method == "GET":
            if gate.open:
                return RedirectResponse("/", status_code=303)
            return render(request, None, "login.html", {"next": safe_next(request)})
        form = urllib.parse.parse_qs((await request.body()).decode(errors="replace"))
        token = form.get("token", [""])[0]
        name = _NAME.sub("", form.get("name", [""])[0])[:40] or "someone"
        try:
            check_lockout(request)
            role = gate.role_of(token)
            if role is None:
                await refuse_token(request)
        except Refused as refused:
            context = {"next": safe_next(request), "error": refused.message}
            return render(request, None, "login.html", context, refused.status)
        assert role is not None
        log.info("dashboard.login", who=name, role=role, address=client_address(request))
        response = RedirectResponse(safe_next(request), status_code=303)
        response.set_cookie(
            COOKIE,
            gate.new_session(role, name),
            max_age=SESSION_S,
            httponly=True,
            samesite="strict",
            secure=secure or request.url.scheme == "https",
        )
        return response

    async def logout(request: Request) -> Response:
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE)
        return response

    # -- JSON ---------------------------------------------------------------------------

    async def overview_json(request: Request, who: Principal) -> Any:
        return await asyncio.to_thread(reads.overview)

    async def syncs_json(request: Request, who: Principal) -> Any:
        return await asyncio.to_thread(reads.syncs)

    async def queues_json(request: Request, who: Principal) -> Any:
        return await asyncio.to_thread(reads.queues)

    async def budget_json(request: Request, who: Principal) -> Any:
        return {"budget": await asyncio.to_thread(reads.budget)}

    async def schedule_json(request: Request, who: Principal) -> Any:
        return await asyncio.to_thread(reads.schedule)

    async def dead_letters_json(request: Request, who: Principal) -> Any:
        limit = int_param(request, "limit", 20, 1, 500)
        return await asyncio.to_thread(reads.dead_letters, limit)

    async def history_json(request: Request, who: Principal) -> Any:
        filters, before = history_query(request)
        limit = int_param(request, "limit", HISTORY_PAGE, 1, 500)
        found = await asyncio.to_thread(reads.history, limit=limit, before=before, **filters)
        return {"runs": found.runs, "older": cursor(found.older) if found.older else None}

    async def library_json(request: Request, who: Principal) -> Any:
        return await asyncio.to_thread(reads.library, request.path_params["library_id"])

    async def search_json(request: Request, who: Principal) -> Any:
        text = request.query_params.get("q", "")
        return {"library_id": await asyncio.to_thread(reads.search, text)}

    async def events(request: Request) -> Response:
        """Server-sent events: `overview` and `progress`, with a comment line as keep-alive."""
        if principal(request) is None:
            return json_response(
                {"error": {"code": "unauthenticated", "message": "Sign in first."}}, 401
            )

        async def stream() -> AsyncIterator[str]:
            async with hub.watch() as outbox:
                yield "retry: 2000\n\n"
                while True:
                    message = await outbox.take(PING_EVERY_S)
                    if message is None:
                        yield ": ping\n\n"
                        continue
                    kind, data = message
                    yield f"event: {kind}\ndata: {dumps(data)}\n\n"

        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)

    # -- actions ------------------------------------------------------------------------

    async def cancel_action(request: Request, who: Principal) -> Any:
        library_id = request.path_params["library_id"]
        cancelled = await asyncio.to_thread(cancel_sync, library_id)
        acted(request, who, "cancel", library_id=library_id, cancelled=cancelled)
        return {"library_id": library_id, "cancelled": cancelled}

    async def requeue_action(request: Request, who: Principal) -> Any:
        letter_id = request.path_params["message_id"]
        letter = await asyncio.to_thread(find_letter, letter_id)
        [(_, error)] = await asyncio.to_thread(requeue, runtime, [letter])
        acted(request, who, "requeue", message_id=letter.message_id, requeued=error is None)
        if error is not None:
            raise error
        return {"message_id": letter.message_id, "requeued": True}

    async def requeue_all_action(request: Request, who: Principal) -> Any:
        letters = await asyncio.to_thread(list_dead_letters, runtime.redis, None)
        results = await asyncio.to_thread(requeue, runtime, letters)
        kept = [
            {"message_id": letter.message_id, "error": error.to_dict()}
            for letter, error in results
            if error is not None
        ]
        acted(request, who, "requeue_all", requeued=len(results) - len(kept), kept=len(kept))
        return {"requeued": len(results) - len(kept), "kept": kept}

    async def discard_action(request: Request, who: Principal) -> Any:
        letter = await asyncio.to_thread(find_letter, request.path_params["message_id"])
        await asyncio.to_thread(discard_letters, runtime.redis, [letter])
        acted(request, who, "discard", message_id=letter.message_id, actor=letter.actor)
        return {"message_id": letter.message_id, "discarded": True}

    def find_letter(letter_id: str) -> Any:
        letter = find_dead_letter(runtime.redis, letter_id)
        if letter is None:
            raise Refused(404, "unknown_dead_letter", f"No dead letter has id {letter_id[:40]!r}.")
        return letter

    def action(handler: Callable[[Request, Principal], Awaitable[Any]]) -> Any:
        return api(handler, action=True)

    routes = [
        Route("/", overview_page),
        Route("/history", history_page),
        Route("/libraries/{library_id}", library_page),
        Route("/search", search_page),
        Route("/login", login_page, methods=["GET", "POST"]),
        Route("/logout", logout),
        Route("/api/overview", api(overview_json)),
        Route("/api/syncs", api(syncs_json)),
        Route("/api/queues", api(queues_json)),
        Route("/api/budget", api(budget_json)),
        Route("/api/schedule", api(schedule_json)),
        Route("/api/dead-letters", api(dead_letters_json)),
        Route("/api/history", api(history_json)),
        Route("/api/libraries/{library_id}", api(library_json)),
        Route("/api/search", api(search_json)),
        Route("/api/events", events),
        Route("/api/syncs/{library_id}/cancel", action(cancel_action), methods=["POST"]),
        Route("/api/dead-letters/requeue-all", action(requeue_all_action), methods=["POST"]),
        Route("/api/dead-letters/{message_id}/requeue", action(requeue_action), methods=["POST"]),
        Route("/api/dead-letters/{message_id}/discard", action(discard_action), methods=["POST"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    return Starlette(routes=routes, lifespan=lifespan, middleware=[Middleware(SecurityHeaders)])
