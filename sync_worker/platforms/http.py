"""GET JSON from a platform (Steam, GOG) under a rate-limit gate, every failure mapped to
our errors (each platform names its own, `PlatformErrors`).

One `requests.Session` per thread; timeouts on every call; bodies read in chunks and
refused above STEAM_MAX_RESPONSE_MB. Secrets: Steam's Web API key travels in the query
string and GOG's tokens in a header, so every `requests` exception (whose text holds the
full URL) is replaced by one of ours raised outside the `except` block: no chained
context, no quoted URL, no header.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import requests

from .. import metrics
from ..errors import (
    PermanentError,
    PlatformRateLimited,
    SteamBadRequest,
    SteamBadResponse,
    SteamKeyRejected,
    SteamRateLimited,
    SteamResponseTooLarge,
    SteamTimeout,
    SteamUnavailable,
    SyncWorkerError,
    TransientError,
)
from ..settings import Settings
from .storable import has_unstorable_escape, storable

MAX_RATE_LIMITED_ROUNDS = 6  # 429s in a row before giving up (each round waits longer)
_KEY_REJECTED_MARKER = "verify your"  # Steam's 403 page for a bad key; other 403s mean "slow down"
_CHUNK_BYTES = 1 << 16

_sessions = threading.local()
T = TypeVar("T")


class CallGate(Protocol):
    """Something that must let every call through first: the global rate limiter."""

    def acquire(self, bucket: str, weight: int = 1) -> object:
        """Block, or raise RateLimitDeferred, until one call to `bucket` may be made."""

    def penalize(self, bucket: str, retry_after_s: float | None = None) -> float:
        """Steam answered 429: back the bucket off for everyone."""

    def succeeded(self, bucket: str) -> None:
        """A call went through."""


@dataclass(frozen=True)
class PlatformErrors:
    """How one platform's failures are named: its name in sentences, its error classes,
    and what an HTTP error status means there."""

    name: str
    unavailable: type[TransientError]
    timeout: type[TransientError]
    bad_response: type[TransientError]
    rate_limited: type[PlatformRateLimited]
    too_large: type[PermanentError]
    for_status: Callable[[int, str, bytes, str], None]  # raises (status, Retry-After, body, what)


def _session() -> requests.Session:
    session: requests.Session | None = getattr(_sessions, "session", None)
    if session is None:
        session = _sessions.session = requests.Session()
        session.headers["User-Agent"] = "sync-worker/0.1 (+library sync)"
    return session


class PlatformHttp:
    """JSON GETs to one platform host, each one first admitted by the gate's `bucket`."""

    def __init__(
        self,
        settings: Settings,
        base_url: str,
        bucket: str,
        gate: CallGate | None = None,
        extra_params: dict[str, str] | None = None,
        errors: PlatformErrors | None = None,
    ) -> None:
        self.bucket = bucket
        self.errors = errors or STEAM_ERRORS
        self.calls = 0  # requests sent so far, 429s included
        self._base = base_url.rstrip("/")
        self._gate = gate
        self._extra = extra_params or {}
        self._timeout = (settings.steam_connect_timeout_s, settings.steam_read_timeout_s)
        self._max_mb = settings.steam_max_response_mb
        self._max_bytes = int(self._max_mb * 1024 * 1024)

    def get(
        self,
        path: str,
        params: dict[str, Any],
        what: str,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """The JSON object at `path`; `what` names the call in error messages."""
        return self.fetch(
            path,
            params,
            what,
            lambda chunks: _json_object(b"".join(chunks), what, self.errors),
            headers,
        )

    def fetch(
        self,
        path: str,
        params: dict[str, Any],
        what: str,
        read: Callable[[Iterator[bytes]], T],
        headers: dict[str, str] | None = None,
    ) -> T:
        """What `read` makes of a successful answer's body, handed over in chunks as they
        arrive (at most STEAM_MAX_RESPONSE_MB in all). Error answers never reach `read`."""
        params = {**params, **self._extra}
        for _ in range(MAX_RATE_LIMITED_ROUNDS):
            if self._gate is not None:
                self._gate.acquire(self.bucket)
            self.calls += 1
            try:
                result = self._send(path, params, what, read, headers)
            except PlatformRateLimited as exc:
                metrics.steam_call(self.bucket, "429")
                if self._gate is None:
                    raise
                # Back off every worker, then go round: the next acquire waits or defers.
                self._gate.penalize(self.bucket, exc.retry_after_s)
                continue
            except SyncWorkerError:
                metrics.steam_call(self.bucket, "error")
                raise
            metrics.steam_call(self.bucket, "ok")
            if self._gate is not None:
                self._gate.succeeded(self.bucket)
            return result
        name = self.errors.name
        raise self.errors.rate_limited(f"{name} kept answering {what} with 429 after backing off.")

    def _send(
        self,
        path: str,
        params: dict[str, Any],
        what: str,
        read: Callable[[Iterator[bytes]], T],
        headers: dict[str, str] | None,
    ) -> T:
        errors, name = self.errors, self.errors.name
        error: TransientError
        try:
            with _session().get(
                self._base + path,
                params=params,
                headers=headers,
                timeout=self._timeout,
                stream=True,
            ) as response:
                chunks = self._chunks(response, what)
                if response.status_code >= 400:
                    errors.for_status(
                        response.status_code,
                        response.headers.get("Retry-After", ""),
                        b"".join(chunks),
                        what,
                    )
                return read(chunks)
        except requests.Timeout:
            error = errors.timeout(f"{name} did not answer {what} in time.")
        except requests.exceptions.ChunkedEncodingError:
            error = errors.bad_response(f"{name}'s {what} answer was cut off.")
        except requests.RequestException as exc:
            # Streaming reads report a read timeout as a ConnectionError.
            if "timed out" in str(exc).lower():
                error = errors.timeout(f"{name} did not answer {what} in time.")
            else:
                error = errors.unavailable(
                    f"Could not reach {name} for {what} ({type(exc).__name__})."
                )
        # Raised outside the except block: no __context__ chain holding the URL (and key).
        raise error

    def _chunks(self, response: requests.Response, what: str) -> Iterator[bytes]:
        """The body in chunks, refusing more than STEAM_MAX_RESPONSE_MB (never held whole)."""
        too_large = self.errors.too_large(
            f"{self.errors.name}'s {what} answer is larger than {self._max_mb:g} MB"
            " (STEAM_MAX_RESPONSE_MB)."
        )
        declared = response.headers.get("Content-Length", "")
        if declared.isascii() and declared.isdigit() and int(declared) > self._max_bytes:
            raise too_large
        size = 0
        for chunk in response.iter_content(chunk_size=_CHUNK_BYTES):
            size += len(chunk)
            if size > self._max_bytes:
                raise too_large
            yield chunk


def _steam_status(status: int, retry_after: str, body: bytes, what: str) -> None:
    if status == 403 and _KEY_REJECTED_MARKER in body.decode("utf-8", "replace").lower():
        raise SteamKeyRejected()
    if status in (403, 429):  # Steam sometimes answers 403 where it means 429
        raise SteamRateLimited(retry_after_s=retry_after_s(retry_after))
    if status in (400, 414, 431):  # malformed, or a URL / header too long: bad input, not an outage
        raise SteamBadRequest(f"Steam refused the {what} request as malformed (HTTP {status}).")
    raise SteamUnavailable(f"Steam answered {what} with HTTP {status}.")


STEAM_ERRORS = PlatformErrors(
    name="Steam",
    unavailable=SteamUnavailable,
    timeout=SteamTimeout,
    bad_response=SteamBadResponse,
    rate_limited=SteamRateLimited,
    too_large=SteamResponseTooLarge,
    for_status=_steam_status,
)


def _json_object(body: bytes, what: str, errors: PlatformErrors) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except ValueError:
        raise errors.bad_response(f"{errors.name}'s {what} answer was not valid JSON.") from None
    if not isinstance(value, dict):
        raise errors.bad_response(f"{errors.name}'s {what} answer was not a JSON object.")
    return dict(storable(value)) if has_unstorable_escape(body) else value


def retry_after_s(value: str) -> float | None:
    """Seconds of a Retry-After header in seconds (a date, or nothing: None)."""
    value = value.strip()
    return float(value) if value.isascii() and value.isdigit() else None
