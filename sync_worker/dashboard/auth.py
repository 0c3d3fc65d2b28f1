"""Who may see the dashboard and who may act on it.

Two tokens: DASHBOARD_TOKEN (an operator: sees and acts) and DASHBOARD_READONLY_TOKEN (a
viewer: sees everything, can do nothing). A browser trades its token for a session
cookie, signed with a key derived from both tokens (so rotating either ends every
session), HttpOnly, SameSite=Strict, and Secure in production or over HTTPS. Each
session carries its own CSRF token, which every action (a POST) must send back in the
`X-CSRF-Token` header. A program may send `Authorization: Bearer <token>` instead:
nothing ambient is sent with it, so it needs no CSRF token.

A wrong token is answered after a second, counted, logged, and after `MAX_FAILURES`
from one address within `FAILURE_WINDOW_S` that address is refused outright until the
window has passed. Without DASHBOARD_TOKEN (allowed only outside production, on a
loopback address) everyone is the operator; actions still need the page's CSRF token.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

from ..settings import Settings

ADMIN, VIEWER = "admin", "viewer"
COOKIE = "sync_worker_dashboard"
SESSION_S = 12 * 3600
FAILED_LOGIN_DELAY_S = 1.0
MAX_FAILURES = 10
FAILURE_WINDOW_S = 15 * 60


@dataclass(frozen=True)
class Principal:
    """Someone looking at the dashboard: their role, the name they gave, their CSRF token."""

    role: str
    name: str
    csrf: str

    @property
    def can_act(self) -> bool:
        """Whether they may cancel, requeue and discard."""
        return self.role == ADMIN


class Gate:
    """Checks tokens and session cookies against the settings' tokens."""

    def __init__(self, settings: Settings) -> None:
        admin = settings.dashboard_token.get_secret_value() if settings.dashboard_token else ""
        viewer = (
            settings.dashboard_readonly_token.get_secret_value()
            if settings.dashboard_readonly_token
            else ""
        )
        self._tokens = [
            (token, role) for token, role in ((admin, ADMIN), (viewer, VIEWER)) if token
        ]
        #: Open: no token is configured, so everyone is the operator (local use only).
        self.open = not admin
        # Sessions signed by a key no one can compute without the tokens (a random one when
        # open: the page's CSRF token then lives as long as the process).
        self._key = (
            hashlib.sha256(f"sync-worker dashboard\0{admin}\0{viewer}".encode()).digest()
            if admin
            else secrets.token_bytes(32)
        )
        self._open_principal = Principal(ADMIN, "local", secrets.token_urlsafe(24))
        self._failures: dict[str, collections.deque[float]] = {}
        #: Wrong tokens since the process started, from any address.
        self.failures_total = 0

    def role_of(self, token: str) -> str | None:
        """The role a token grants, compared in constant time; None for a wrong token."""
        found = None
        for expected, role in self._tokens:
            if hmac.compare_digest(token.encode(), expected.encode()):
                found = found or role
        return found

    def session(self, cookie: str | None) -> Principal | None:
        """The principal of a valid, unexpired session cookie (everyone's, when open)."""
        if self.open:
            return self._open_principal
        if not cookie or "." not in cookie:
            return None
        body, _, signature = cookie.partition(".")
        if not hmac.compare_digest(signature, self._sign(body)):
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(body.encode()))
        except ValueError:
            return None
        if not isinstance(data, dict) or data.get("exp", 0) < time.time():
            return None
        return Principal(str(data["role"]), str(data["name"]), str(data["csrf"]))

    def bearer(self, header: str | None) -> Principal | None:
        """The principal of an `Authorization: Bearer <token>` header with a right token."""
        if not header or not header.lower().startswith("bearer "):
            return None
        role = self.role_of(header[7:].strip())
        return Principal(role, "api", "") if role else None

    def new_session(self, role: str, name: str) -> str:
        """A signed cookie value for a session of `role`, valid SESSION_S."""
        data = {
            "role": role,
            "name": name,
            "csrf": secrets.token_urlsafe(24),
            "exp": int(time.time()) + SESSION_S,
        }
        body = base64.urlsafe_b64encode(json.dumps(data).encode()).decode()
        return f"{body}.{self._sign(body)}"

    def locked_out(self, address: str) -> float:
        """Seconds until `address` may try a token again (0: it may now)."""
        recent = self._recent_failures(address)
        if len(recent) < MAX_FAILURES:
            return 0.0
        return max(recent[0] + FAILURE_WINDOW_S - time.monotonic(), 0.0)

    def failed(self, address: str) -> int:
        """Count a wrong token from `address`; return how many it sent within the window."""
        self.failures_total += 1
        recent = self._recent_failures(address)
        recent.append(time.monotonic())
        return len(recent)

    def _recent_failures(self, address: str) -> collections.deque[float]:
        recent = self._failures.setdefault(address, collections.deque())
        while recent and recent[0] < time.monotonic() - FAILURE_WINDOW_S:
            recent.popleft()
        if not recent and len(self._failures) > 10_000:  # many addresses: drop the idle
            self._failures = {a: d for a, d in self._failures.items() if d}
            self._failures[address] = recent
        return recent

    def _sign(self, body: str) -> str:
        mac = hmac.new(self._key, body.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")
