"""The simulator's HTTP server: Steam's endpoints plus a small `/_sim/` admin API for tests.

Admin API (JSON in, JSON out):
  GET  /_sim/stats                     call counts per endpoint, the total, 429s sent and the
                                       busiest rate-limit window
  POST /_sim/reset                     forget counts, library changes, faults and limits
  POST /_sim/libraries/{steam_id}      change a library: {"bump_playtime": {appid: minutes},
                                       "remove": [appid], "add": [appid], "rename": {appid: name}}
  POST /_sim/faults                    queue faults: {"match": "GetOwnedGames", "kind":
                                       "status"|"truncate"|"delay"|"reset"|"html"|"bad_key",
                                       "status": 500, "retry_after": 3, "delay_s": 2.0,
                                       "count": 3}
  POST /_sim/rate-limit                answer 429 above {"calls": N, "window_s": W} (null: off),
                                       for "api": "webapi" (default), "store" (appdetails) or
                                       "gog"
  POST /_sim/gog/libraries/{user_id}   change a GOG library: {"add", "remove", "bump_playtime"}
  POST /_sim/gog/revoke/{user_id}      every token of that GOG account stops working
  POST /_sim/gog/expire-access         every GOG access token issued so far answers 401

GOG's endpoints (OAuth, the library, profile stats) are in `gog`.
"""

from __future__ import annotations

import json
import socket
import struct
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from . import catalog
from .gog import Answer as GogAnswer
from .gog import GogState, parse_account
from .ids import ProfileKind, SimulatedProfile, parse_profile, steam_id_for
from .state import Fault, SimulatorState

FORBIDDEN_HTML = (
    "<html><head><title>Forbidden</title></head><body><h1>Forbidden</h1>Access is denied. "
    "Retrying will not help. Please verify your <pre>key=</pre> parameter.</body></html>"
)
TOO_MANY_HTML = (
    "<html><head><title>429 Too Many Requests</title></head><body>Too Many Requests</body></html>"
)
ERROR_HTML = "<html><head><title>Internal Server Error</title></head><body>Internal Server Error</body></html>"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like Steam, so sessions reuse connections
    # Headers and body in one buffered write (flushed after each request) with TCP_NODELAY:
    # written apart, Nagle and the client's delayed ACK held every small answer ~40 ms,
    # which benchmarks then measured as the service's time.
    wbufsize = -1
    disable_nagle_algorithm = True
    server: _SimulatorHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Silence per-request logs (they would echo the key in the query string)."""

    # -- plumbing ---------------------------------------------------------------

    def _send(
        self,
        status: int,
        body: str | bytes,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", f"{content_type}; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _json(self, payload: Any, status: int = 200) -> None:
        self._send(status, json.dumps(payload, ensure_ascii=False))

    def _read_json(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b"{}"
        parsed = json.loads(body or b"{}")
        return parsed if isinstance(parsed, dict) else {}

    # -- dispatch ---------------------------------------------------------------

    def do_GET(self) -> None:
        """Serve Steam's endpoints and the admin stats."""
        url = urlsplit(self.path)
        path = url.path.rstrip("/").replace("v0001", "v1").replace("v0002", "v2")
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        if path == "/_sim/stats":
            state = self.server.state
            with state.lock:
                self._json(
                    {
                        "calls": dict(state.calls),
                        "total": sum(state.calls.values()),
                        "rejected_429": state.rejected_429,
                        "peak_window_calls": state.peak_window_calls["webapi"],
                        "peak_window_calls_store": state.peak_window_calls["store"],
                        "peak_window_calls_gog": state.peak_window_calls["gog"],
                        "gog_refreshes": self.server.gog.refreshes,
                    }
                )
            return
        if self._gog(path, query):
            return
        routes = {
            "/IPlayerService/GetOwnedGames/v1": self._owned_games,
            "/ISteamUser/GetPlayerSummaries/v2": self._player_summaries,
            "/ISteamUser/ResolveVanityURL/v1": self._resolve_vanity,
            "/api/appdetails": self._app_details,
        }
        route = routes.get(path)
        if route is None:
            self._send(404, "<html><body>Not Found</body></html>", "text/html")
            return
        endpoint = path.rsplit("/", 2)[-2] if path.startswith("/I") else "appdetails"
        if not self._admit(endpoint):
            return
        needs_key = path.startswith("/I")
        if needs_key and query.get("key") != self.server.state.api_key:
            self._send(403, FORBIDDEN_HTML, "text/html")
            return
        route(query)

    def do_POST(self) -> None:
        """The admin API."""
        state = self.server.state
        path = urlsplit(self.path).path.rstrip("/")
        body = self._read_json()
        if path == "/_sim/reset":
            state.reset()
            self.server.gog.reset()
        elif path.startswith("/_sim/gog/libraries/"):
            self.server.gog.change_library(path.rsplit("/", 1)[-1], body)
        elif path.startswith("/_sim/gog/revoke/"):
            self.server.gog.revoke(path.rsplit("/", 1)[-1])
        elif path == "/_sim/gog/expire-access":
            self.server.gog.expire_access_tokens()
        elif path.startswith("/_sim/libraries/"):
            state.change_library(path.rsplit("/", 1)[-1], body)
        elif path == "/_sim/faults":
            with state.lock:
                state.faults.append(Fault(**body))
        elif path == "/_sim/rate-limit":
            api = str(body.get("api", "webapi"))
            with state.lock:
                state.rate_limits.pop(api, None)
                if body.get("calls"):
                    state.rate_limits[api] = (int(body["calls"]), float(body["window_s"]))
                state.recent_calls[api].clear()
        else:
            self._send(404, '{"error": "unknown admin path"}')
            return
        self._json({"ok": True})

    def _admit(self, endpoint: str) -> bool:
        """Count the call, then apply the rate limit and any queued fault."""
        state = self.server.state
        if not state.count_call(endpoint):
            self._send(429, TOO_MANY_HTML, "text/html")
            return False
        fault = state.take_fault(endpoint)
        if fault is None:
            return True
        if fault.kind == "delay":
            time.sleep(fault.delay_s)
            return True
        if fault.kind == "status":
            body = TOO_MANY_HTML if fault.status == 429 else ERROR_HTML
            headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after else {}
            self._send(fault.status, body, "text/html", headers)
            return False
        if fault.kind == "truncate":
            self._send(200, '{"response": {"game_count": 3, "games": [{"appid": 10, "na')
            return False
        if fault.kind == "bad_key":  # Steam's answer once a key is revoked
            self._send(403, FORBIDDEN_HTML, "text/html")
            return False
        if fault.kind == "html":  # a proxy's or Steam's error page, served with 200
            self._send(200, ERROR_HTML, "text/html")
            return False
        if fault.kind == "reset":  # drop the connection with a TCP RST, no answer at all
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
            return False
        return True

    # -- GOG endpoints (simulator/gog.py) ---------------------------------------------

    def _gog(self, path: str, query: dict[str, str]) -> bool:
        """Serve a GOG endpoint; False when the path is not one."""
        gog = self.server.gog
        stats = path.startswith("/u/") and path.endswith("/games/stats")
        endpoint = {
            "/auth": "gog_auth",
            "/token": "gog_token",
            "/userData.json": "gog_userData",
            "/user/data/games": "gog_owned",
            "/account/getFilteredProducts": "gog_products",
        }.get(path, "gog_stats" if stats else None)
        if endpoint is None:
            return False
        if not self._admit(endpoint):
            return True
        if endpoint in ("gog_auth", "gog_token"):
            answer = gog.login(query) if endpoint == "gog_auth" else gog.token(query)
        elif (account := gog.account_of(self.headers.get("Authorization"))) is None:
            answer = GogAnswer(401, '{"error": "invalid_token"}')
        elif endpoint == "gog_userData":
            answer = gog.user_data(account)
        elif endpoint == "gog_owned":
            answer = gog.owned_ids(account)
        elif endpoint == "gog_products":
            answer = gog.products(account, query)
        else:
            profile = parse_account(path.split("/")[2])
            answer = (
                gog.stats(profile, query)
                if profile is not None
                else GogAnswer(404, '{"error": "not_found"}')
            )
        self._send(answer.status, answer.body, answer.content_type, answer.headers)
        return True

    # -- Steam endpoints ----------------------------------------------------------

    def _profile(self, steam_id: str | None) -> SimulatedProfile | None:
        if steam_id is None:
            self._send(
                400,
                "<html><body>Required parameter 'steamid' is missing</body></html>",
                "text/html",
            )
            return None
        profile = parse_profile(steam_id)
        if profile is None:  # Steam answers an invalid id with a bare 500
            self._send(500, ERROR_HTML, "text/html")
        return profile

    def _owned_games(self, query: dict[str, str]) -> None:
        profile = self._profile(query.get("steamid"))
        if profile is None:
            return
        if profile.kind is not ProfileKind.PUBLIC:
            self._json({"response": {}})  # private profile or private game details
            return
        body = self.server.state.owned_body(
            profile,
            include_appinfo=query.get("include_appinfo") in {"1", "true"},
            include_free=query.get("include_played_free_games") in {"1", "true"},
        )
        self._send(200, body)

    def _player_summaries(self, query: dict[str, str]) -> None:
        players = []
        for steam_id in query.get("steamids", "").split(",")[:100]:
            profile = parse_profile(steam_id.strip())
            if profile is None:
                continue
            players.append(
                {
                    "steamid": profile.steam_id,
                    "communityvisibilitystate": 1 if profile.kind is ProfileKind.PRIVATE else 3,
                    "profilestate": 1,
                    "personaname": f"Player {profile.steam_id[-6:]}",
                    "profileurl": f"https://steamcommunity.com/profiles/{profile.steam_id}/",
                    "avatar": "https://avatars.example/a.jpg",
                }
            )
        self._json({"response": {"players": players}})

    def _resolve_vanity(self, query: dict[str, str]) -> None:
        # Simulated vanity names: "lib<N>" is the public profile with N games (seed 0).
        name = query.get("vanityurl", "")
        if name.startswith("lib") and name[3:].isdigit() and int(name[3:]) <= 50_000:
            self._json({"response": {"success": 1, "steamid": steam_id_for(int(name[3:]))}})
        else:
            self._json({"response": {"success": 42, "message": "No match"}})

    def _app_details(self, query: dict[str, str]) -> None:
        app_id = query.get("appids", "")
        if not app_id.isdigit():
            self._json(None, HTTPStatus.BAD_REQUEST)
            return
        self._json(catalog.app_details(int(app_id)))


class _SimulatorHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    state: SimulatorState
    gog: GogState

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (timed out, hung up) is normal here, not worth a traceback."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class SimulatorServer:
    """A running simulator on a real port; use as a context manager or start()/stop()."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, api_key: str = "sim-key") -> None:
        self._httpd = _SimulatorHTTPServer((host, port), _Handler)
        self._httpd.state = SimulatorState(api_key)
        self._httpd.gog = GogState()
        self._thread: threading.Thread | None = None

    @property
    def state(self) -> SimulatorState:
        """The live state (tests can read counters directly when in-process)."""
        return self._httpd.state

    @property
    def gog(self) -> GogState:
        """GOG's live state (codes, tokens, revocations, library changes)."""
        return self._httpd.gog

    @property
    def url(self) -> str:
        """Base URL serving both the Web API and the store API."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> SimulatorServer:
        """Serve in a daemon thread."""
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="steam-simulator", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted."""
        self._httpd.serve_forever()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
