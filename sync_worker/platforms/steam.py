"""The Steam Web API adapter: synchronous `requests`, one session per thread, no Dramatiq.

Secrets: the key travels in the query string, so every `requests` exception (whose text
holds the full URL) is replaced by one of ours with `from None`, never chained or quoted.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import requests

from ..errors import (
    ConfigurationError,
    PrivateProfile,
    SteamBadRequest,
    SteamBadResponse,
    SteamKeyRejected,
    SteamRateLimited,
    SteamResponseTooLarge,
    SteamTimeout,
    SteamUnavailable,
    VanityNotFound,
)
from ..settings import Settings
from .base import OwnedGame
from .steam_ids import parse_identity, validate_steam_id

ICON_URL = "https://media.steampowered.com/steamcommunity/public/images/apps/{appid}/{hash}.jpg"
EARLIEST_REAL_PLAY = 1_072_915_200  # 2004-01-01: older rtime_last_played values are bogus
_KEY_REJECTED_MARKER = "verify your"  # Steam's 403 page for a bad key; other 403s mean "slow down"
WEBAPI_BUCKET = "steam_webapi"
# JSON escapes PostgreSQL cannot store: NUL, and lone UTF-16 surrogates (invalid UTF-8).
_UNSTORABLE_ESCAPE = re.compile(rb"\\u(0000|d[89a-f])", re.IGNORECASE)
_CHUNK_BYTES = 1 << 16

_sessions = threading.local()


MAX_RATE_LIMITED_ROUNDS = 6  # 429s in a row before giving up (each round waits longer)


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


class SteamClient:
    """The Steam Web API calls the service makes, mapped onto the error taxonomy."""

    platform = "steam"

    def __init__(self, settings: Settings, gate: CallGate | None = None) -> None:
        self._base = settings.steam_api_base_url.rstrip("/")
        self._key = settings.steam_api_key
        self._timeout = (settings.steam_connect_timeout_s, settings.steam_read_timeout_s)
        self._max_bytes = int(settings.steam_max_response_mb * 1024 * 1024)
        self._gate = gate
        self._calls = 0

    @property
    def api_calls(self) -> int:
        """Web API calls made through this client so far."""
        return self._calls

    # -- public calls ---------------------------------------------------------

    def fetch_owned_games(self, platform_user_id: str) -> list[OwnedGame]:
        """Every owned game (free ones included), normalised, deduplicated, ordered by app id."""
        steam_id = validate_steam_id(platform_user_id)
        body = self._get(
            "/IPlayerService/GetOwnedGames/v1/",
            {
                "steamid": steam_id,
                "include_appinfo": 1,
                "include_played_free_games": 1,
                "skip_unvetted_apps": 0,  # unvetted apps are still owned: users miss them otherwise
                "format": "json",
            },
        )
        response = body.get("response")
        if not isinstance(response, dict):
            raise SteamBadResponse("Steam's owned-games answer had no 'response' object.")
        if "game_count" not in response:
            # `{"response": {}}`: private profile or private "Game details", not "no games".
            raise PrivateProfile()
        games: dict[str, OwnedGame] = {}
        for raw in response.get("games") or []:
            game = normalise_game(raw)
            if game is not None:
                games[game.platform_game_id] = game  # duplicates: the last one wins
        return sorted(games.values(), key=lambda g: g.sort_key)

    def resolve_vanity(self, name: str) -> str:
        """The SteamID64 behind a custom profile URL name."""
        body = self._get("/ISteamUser/ResolveVanityURL/v1/", {"vanityurl": name})
        response = body.get("response") or {}
        if response.get("success") == 1 and response.get("steamid"):
            return validate_steam_id(str(response["steamid"]))
        raise VanityNotFound(f"No Steam profile has the custom URL {name[:40]!r}.")

    def resolve_identity(self, text: str) -> str:
        """A SteamID64 from an id, a profile URL or a vanity name (one API call for vanity names)."""
        identity = parse_identity(text)
        if identity.steam_id is not None:
            return identity.steam_id
        assert identity.vanity is not None
        return self.resolve_vanity(identity.vanity)

    def display_name(self, steam_id: str) -> str | None:
        """The profile's persona name, or None when Steam does not return the player."""
        body = self._get(
            "/ISteamUser/GetPlayerSummaries/v2/", {"steamids": validate_steam_id(steam_id)}
        )
        players = (body.get("response") or {}).get("players") or []
        return str(players[0].get("personaname")) if players else None

    # -- transport --------------------------------------------------------------

    def _get(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        if self._key is None:
            raise ConfigurationError("STEAM_API_KEY is not set.")
        endpoint = path.strip("/").split("/")[1]
        params = {**params, "key": self._key.get_secret_value()}
        for _ in range(MAX_RATE_LIMITED_ROUNDS):
            if self._gate is not None:
                self._gate.acquire(WEBAPI_BUCKET)
            self._calls += 1
            answer = self._send(path, params, endpoint)
            try:
                _raise_for_status(answer, endpoint)
            except SteamRateLimited as exc:
                if self._gate is None:
                    raise
                # Back off every worker, then go round: the next acquire waits or defers.
                self._gate.penalize(WEBAPI_BUCKET, exc.retry_after_s)
                continue
            if self._gate is not None:
                self._gate.succeeded(WEBAPI_BUCKET)
            break
        else:
            raise SteamRateLimited(f"Steam kept answering {endpoint} with 429 after backing off.")
        try:
            body = json.loads(answer.body)
        except ValueError:
            raise SteamBadResponse(f"Steam's {endpoint} answer was not valid JSON.") from None
        if not isinstance(body, dict):
            raise SteamBadResponse(f"Steam's {endpoint} answer was not a JSON object.")
        if _UNSTORABLE_ESCAPE.search(answer.body):
            body = _storable(body)
        return dict(body)

    def _send(self, path: str, params: dict[str, Any], endpoint: str) -> _Answer:
        error: SteamTimeout | SteamUnavailable | SteamBadResponse
        try:
            with _session().get(
                self._base + path, params=params, timeout=self._timeout, stream=True
            ) as response:
                return _Answer(
                    response.status_code,
                    response.headers.get("Retry-After", ""),
                    self._read_body(response, endpoint),
                )
        except requests.Timeout:
            error = SteamTimeout(f"Steam did not answer {endpoint} in time.")
        except requests.exceptions.ChunkedEncodingError:
            error = SteamBadResponse(f"Steam's {endpoint} answer was cut off.")
        except requests.RequestException as exc:
            # Streaming reads report a read timeout as a ConnectionError.
            if "timed out" in str(exc).lower():
                error = SteamTimeout(f"Steam did not answer {endpoint} in time.")
            else:
                error = SteamUnavailable(
                    f"Could not reach Steam for {endpoint} ({type(exc).__name__})."
                )
        # Raised outside the except block: no __context__ chain holding the URL (and key).
        raise error

    def _read_body(self, response: requests.Response, endpoint: str) -> bytes:
        """The body, refusing more than STEAM_MAX_RESPONSE_MB (read in chunks, so never held)."""
        too_large = SteamResponseTooLarge(
            f"Steam's {endpoint} answer is larger than {self._max_bytes >> 20} MB "
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


def _raise_for_status(answer: _Answer, endpoint: str) -> None:
    status = answer.status
    if status < 400:
        return
    if status == 403 and _KEY_REJECTED_MARKER in answer.text.lower():
        raise SteamKeyRejected()
    if status in (403, 429):  # Steam sometimes answers 403 where it means 429
        raise SteamRateLimited(retry_after_s=_retry_after(answer.retry_after))
    if status == 400:
        raise SteamBadRequest(f"Steam refused the {endpoint} request as malformed (HTTP 400).")
    raise SteamUnavailable(f"Steam answered {endpoint} with HTTP {status}.")


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


def _retry_after(value: str) -> float | None:
    return float(value) if value.strip().isdigit() else None


def normalise_game(raw: Any) -> OwnedGame | None:
    """One GetOwnedGames entry as we store it; None for entries without a usable app id."""
    if not isinstance(raw, dict):
        return None
    try:
        app_id = int(raw["appid"])
    except (KeyError, TypeError, ValueError):
        return None
    icon_hash = raw.get("img_icon_url") or raw.get("img_logo_url") or ""
    last_played = _int(raw.get("rtime_last_played"))
    name = raw.get("name")
    return OwnedGame(
        platform_game_id=str(app_id),
        title=str(name) if name not in (None, "") else None,
        icon_url=ICON_URL.format(appid=app_id, hash=icon_hash) if icon_hash else None,
        playtime_minutes=_int(raw.get("playtime_forever")),
        playtime_2weeks_minutes=_int(raw.get("playtime_2weeks")),
        last_played_at=(
            datetime.fromtimestamp(last_played, tz=UTC)
            if last_played >= EARLIEST_REAL_PLAY
            else None
        ),
        raw_data=raw,
    )


def _int(value: Any) -> int:
    try:
        return max(int(value or 0), 0)
    except (TypeError, ValueError):
        return 0
