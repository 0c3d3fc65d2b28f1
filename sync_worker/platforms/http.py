"""GET a JSON object from Steam under a rate-limit gate, with every failure mapped to our errors.

One `requests.Session` per thread; timeouts on every call; bodies read in chunks and
refused above STEAM_MAX_RESPONSE_MB. Secrets: the Web API key travels in the query
string, so every `requests` exception (whose text holds the full URL) is replaced by one
of ours raised outside the `except` block: no chained context, no quoted URL.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from typing import Any, Protocol

import requests

from ..errors import (
    SteamBadRequest,
    SteamBadResponse,
    SteamKeyRejected,
    SteamRateLimited,
    SteamResponseTooLarge,
    SteamTimeout,
    SteamUnavailable,
)
from ..settings import Settings

MAX_RATE_LIMITED_ROUNDS = 6  # 429s in a row before giving up (each round waits longer)
_KEY_REJECTED_MARKER = "verify your"  # Steam's 403 page for a bad key; other 403s mean "slow down"
# JSON escapes PostgreSQL cannot store: NUL, and lone UTF-16 surrogates (invalid UTF-8).
_UNSTORABLE_ESCAPE = re.compile(rb"\\u(0000|d[89a-f])", re.IGNORECASE)
_CHUNK_BYTES = 1 << 16

_sessions = threading.local()


class CallGate(Protocol):
    """Something that must let every call through first: the global rate limiter."""

    def acquire(self, bucket: str, weight: int = 1) -> object:
        """Block, or raise RateLimitDeferred, until one call to `bucket` may be made."""

    def penalize(self, bucket: str, retry_after_s: float | None = None) -> float:
        """Steam answered 429: back the bucket off for everyone."""

    def succeeded(self, bucket: str) -> None:
        """A call went through."""


def _session() -> requests.Session:
    session: requests.Session | None = getattr(_sessions, "session", None)
    if session is None:
        session = _sessions.session = requests.Session()
        session.headers["User-Agent"] = "sync-worker/0.1 (+library sync)"
    return session


class SteamHttp:
    """JSON GETs to one Steam host, each one first admitted by the gate's `bucket`."""

    def __init__(
        self,
        settings: Settings,
        base_url: str,
        bucket: str,
        gate: CallGate | None = None,
        extra_params: dict[str, str] | None = None,
    ) -> None:
        self.bucket = bucket
        self.calls = 0  # requests sent so far, 429s included
        self._base = base_url.rstrip("/")
        self._gate = gate
        self._extra = extra_params or {}
        self._timeout = (settings.steam_connect_timeout_s, settings.steam_read_timeout_s)
        self._max_bytes = int(settings.steam_max_response_mb * 1024 * 1024)

    def get(self, path: str, params: dict[str, Any], what: str) -> dict[str, Any]:
        """The JSON object at `path`; `what` names the call in error messages."""
        params = {**params, **self._extra}
        for _ in range(MAX_RATE_LIMITED_ROUNDS):
            if self._gate is not None:
                self._gate.acquire(self.bucket)
            self.calls += 1
            answer = self._send(path, params, what)
            try:
                _raise_for_status(answer, what)
            except SteamRateLimited as exc:
                if self._gate is None:
                    raise
                # Back off every worker, then go round: the next acquire waits or defers.
                self._gate.penalize(self.bucket, exc.retry_after_s)
                continue
            if self._gate is not None:
                self._gate.succeeded(self.bucket)
            break
        else:
            raise SteamRateLimited(f"Steam kept answering {what} with 429 after backing off.")
        try:
            body = json.loads(answer.body)
        except ValueError:
            raise SteamBadResponse(f"Steam's {what} answer was not valid JSON.") from None
        if not isinstance(body, dict):
            raise SteamBadResponse(f"Steam's {what} answer was not a JSON object.")
        if _UNSTORABLE_ESCAPE.search(answer.body):
            body = _storable(body)
        return dict(body)

    def _send(self, path: str, params: dict[str, Any], what: str) -> _Answer:
        error: SteamTimeout | SteamUnavailable | SteamBadResponse
        try:
            with _session().get(
                self._base + path, params=params, timeout=self._timeout, stream=True
            ) as response:
                return _Answer(
                    response.status_code,
                    response.headers.get("Retry-After", ""),
                    self._read_body(response, what),
                )
        except requests.Timeout:
            error = SteamTimeout(f"Steam did not answer {what} in time.")
        except requests.exceptions.ChunkedEncodingError:
            error = SteamBadResponse(f"Steam's {what} answer was cut off.")
        except requests.RequestException as exc:
            # Streaming reads report a read timeout as a ConnectionError.
            if "timed out" in str(exc).lower():
                error = SteamTimeout(f"Steam did not answer {what} in time.")
            else:
                error = SteamUnavailable(
                    f"Could not reach Steam for {what} ({type(exc).__name__})."
                )
        # Raised outside the except block: no __context__ chain holding the URL (and key).
        raise error

    def _read_body(self, response: requests.Response, what: str) -> bytes:
        """The body, refusing more than STEAM_MAX_RESPONSE_MB (read in chunks, so never held)."""
        too_large = SteamResponseTooLarge(
            f"Steam's {what} answer is larger than {self._max_bytes >> 20} MB "
            "(STEAM_MAX_RESPONSE_MB)."
        )
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self._max_bytes:
            raise too_large
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_content(chunk_size=_CHUNK_BYTES):
            size += len(chunk)
            if size > self._max_bytes:
                raise too_large
            chunks.append(chunk)
        return b"".join(chunks)


@dataclass(frozen=True)
class _Answer:
    """What we keep of one HTTP answer (never the request URL: it holds the key)."""

    status: int
    retry_after: str
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def _raise_for_status(answer: _Answer, what: str) -> None:
    status = answer.status
    if status < 400:
        return
    if status == 403 and _KEY_REJECTED_MARKER in answer.text.lower():
        raise SteamKeyRejected()
    if status in (403, 429):  # Steam sometimes answers 403 where it means 429
        raise SteamRateLimited(retry_after_s=_retry_after(answer.retry_after))
    if status == 400:
        raise SteamBadRequest(f"Steam refused the {what} request as malformed (HTTP 400).")
    raise SteamUnavailable(f"Steam answered {what} with HTTP {status}.")


def _retry_after(value: str) -> float | None:
    return float(value) if value.strip().isdigit() else None


def _storable(value: Any) -> Any:
    """`value` with NULs removed and lone surrogates replaced in every string (PostgreSQL
    rejects both in text and jsonb)."""
    if isinstance(value, str):
        return value.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, dict):
        return {_storable(k): _storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_storable(v) for v in value]
    return value
