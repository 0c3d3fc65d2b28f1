"""The Steam Web API adapter: synchronous `requests` (see `platforms.http`), no Dramatiq."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, overload

import orjson

from ..errors import (
    ConfigurationError,
    PrivateProfile,
    SteamBadResponse,
    VanityNotFound,
)
from ..settings import Settings
from .compact_split import CompactEntries, NotCompact
from .http import CallGate, PlatformHttp
from .json_stream import ArrayStream, JsonStreamError
from .owned_game import OwnedGame
from .owned_library import OwnedLibrary, OwnedLibraryBuilder, ReceivedAnswer, SameAnswer
from .steam_ids import parse_identity, validate_steam_id
from .storable import has_unstorable_escape, storable

ICON_URL = "https://media.steampowered.com/steamcommunity/public/images/apps/{appid}/{hash}.jpg"
EARLIEST_REAL_PLAY = 1_072_915_200  # 2004-01-01: older rtime_last_played values are bogus
WEBAPI_BUCKET = "steam_webapi"
_APPID_AT = len(b'{"appid":')
MAX_APP_ID = 1 << 32  # app ids are 32-bit; an entry claiming a larger one is skipped


class SteamClient:
    """The Steam Web API calls the service makes, mapped onto the error taxonomy."""

    platform = "steam"

    def __init__(self, settings: Settings, gate: CallGate | None = None) -> None:
        key = settings.steam_api_key
        self._http = PlatformHttp(
            settings,
            settings.steam_api_base_url,
            WEBAPI_BUCKET,
            gate,
            extra_params={"key": key.get_secret_value()} if key is not None else None,
        )
        self._has_key = key is not None

    @property
    def api_calls(self) -> int:
        """Web API calls made through this client so far."""
        return self._http.calls

    # -- public calls ---------------------------------------------------------

    def fetch_owned_games(
        self, platform_user_id: str, known_answer: bytes | None = None
    ) -> OwnedLibrary | SameAnswer:
        """Every owned game (free ones included), deduplicated, ordered by app id; or
        SameAnswer when the answer's digest is `known_answer` (it is then not parsed).

        The answer is held compactly, never as Python objects (see `owned_library`).
        """
        steam_id = validate_steam_id(platform_user_id)
        params = {
            "steamid": steam_id,
            "include_appinfo": 1,
            "include_played_free_games": 1,
            "skip_unvetted_apps": 0,  # unvetted apps are still owned: users miss them otherwise
            "format": "json",
        }
        self._require_key()
        return self._http.fetch(
            "/IPlayerService/GetOwnedGames/v1/",
            params,
            "GetOwnedGames",
            lambda chunks: read_owned_games(chunks, known_answer),
        )

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

    def _get(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        self._require_key()
        return self._http.get(path, params, what=path.strip("/").split("/")[1])

    def _require_key(self) -> None:
        if not self._has_key:
            raise ConfigurationError("STEAM_API_KEY is not set.")


@overload
def read_owned_games(chunks: Iterable[bytes]) -> OwnedLibrary: ...
@overload
def read_owned_games(
    chunks: Iterable[bytes], known_answer: bytes | None
) -> OwnedLibrary | SameAnswer: ...
def read_owned_games(
    chunks: Iterable[bytes], known_answer: bytes | None = None
) -> OwnedLibrary | SameAnswer:
    """A GetOwnedGames body, arriving in chunks, as an OwnedLibrary; SameAnswer, unparsed,
    when its digest is `known_answer`. The body is kept as bytes, never as Python objects."""
    answer = ReceivedAnswer(chunks)
    try:
        if answer.digest == known_answer:
            return SameAnswer(answer.digest)
        try:
            return _split_owned_games(answer)
        except NotCompact:  # not Steam's usual layout: parse it as the JSON it may still be
            return _parse_owned_games(answer)
    finally:
        answer.close()


def _split_owned_games(answer: ReceivedAnswer) -> OwnedLibrary:
    """Steam's compact answer, its entries split on bytes (`compact_split`), none parsed."""
    entries = CompactEntries(answer.chunks())
    builder = OwnedLibraryBuilder()
    try:
        for entry in entries:
            digits = entry[_APPID_AT : entry.find(b",", _APPID_AT)]  # `{"appid":10,...`
            if (
                not digits.isdigit()
                or (digits[:1] == b"0" and digits != b"0")
                or int(digits) >= MAX_APP_ID
            ):
                raise NotCompact("an app id that is not a plain number")
            if b"\\u" in entry and has_unstorable_escape(entry):
                raw = json.loads(entry)
                entry = json.dumps(
                    storable(raw), ensure_ascii=False, separators=(",", ":")
                ).encode()
            builder.add(int(digits), entry)
        envelope = json.loads(entries.envelope)
        games = envelope.get("response", {}).get("games") if isinstance(envelope, dict) else None
        if games != ([] if entries.found else None):  # the array split was not `response.games`
            raise NotCompact("the games were not where Steam puts them")
    # json's errors and UnicodeDecodeError are ValueErrors; AttributeError: a `response`
    # that is not an object (the parser then says what is wrong with the answer).
    except (NotCompact, ValueError, AttributeError):
        builder.discard()
        raise NotCompact("not Steam's compact layout") from None
    except BaseException:
        builder.discard()
        raise
    try:
        _check_envelope(envelope)
    except BaseException:
        builder.discard()
        raise
    return builder.build(_decode_entry, answer.digest)


def _parse_owned_games(answer: ReceivedAnswer) -> OwnedLibrary:
    """Any valid JSON answer, parsed item by item (`json_stream`)."""
    stream = ArrayStream(answer.chunks(), ("response", "games"))
    builder = OwnedLibraryBuilder()
    try:
        for raw, entry in stream:
            # The common case first, cheaply: this loop runs once per owned game.
            app_id = raw.get("appid") if type(raw) is dict else None
            if type(app_id) is not int or not 0 <= app_id < MAX_APP_ID:
                app_id = _app_id(raw)
                if app_id is None:
                    continue
            if "\\u" in entry and has_unstorable_escape(entry):
                entry = json.dumps(storable(raw), ensure_ascii=False, separators=(",", ":"))
            builder.add(app_id, entry.encode())
        _check_envelope(stream.envelope)
    except (JsonStreamError, UnicodeDecodeError):
        builder.discard()
        raise SteamBadResponse("Steam's GetOwnedGames answer was not valid JSON.") from None
    except BaseException:
        builder.discard()
        raise
    return builder.build(_decode_entry, answer.digest)


def _check_envelope(envelope: Any) -> None:
    """The answer around the games: a `response` object that counts them."""
    response = envelope.get("response") if isinstance(envelope, dict) else None
    if not isinstance(response, dict):
        raise SteamBadResponse("Steam's owned-games answer had no 'response' object.")
    if "game_count" not in response:
        # `{"response": {}}`: private profile or private "Game details", not "no games".
        raise PrivateProfile()


def _decode_entry(entry: bytes) -> OwnedGame:
    """A kept entry as a game, when it is written (split entries were not parsed before)."""
    try:  # orjson: five times faster per entry; it refuses integers beyond 64 bits
        raw = orjson.loads(entry)
    except orjson.JSONDecodeError:
        try:
            raw = json.loads(entry)
        except ValueError:
            raise SteamBadResponse("Steam's GetOwnedGames answer was not valid JSON.") from None
    game = normalise_game(raw, entry)
    assert game is not None  # only entries with an app id are kept
    return game


def normalise_game(raw: Any, raw_json: bytes | None = None) -> OwnedGame | None:
    """One GetOwnedGames entry as we store it; None for entries without a usable app id.

    `raw_json` is the entry's JSON text when the caller has it (else it is serialised).
    """
    app_id = _app_id(raw)
    if app_id is None:
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
        raw_json=raw_json if raw_json is not None else json.dumps(raw, ensure_ascii=False).encode(),
    )


def _app_id(raw: Any) -> int | None:
    if not isinstance(raw, dict):
        return None
    try:
        app_id = int(raw["appid"])
    except (KeyError, TypeError, ValueError):
        return None
    return app_id if 0 <= app_id < MAX_APP_ID else None


def _int(value: Any) -> int:
    if type(value) is int and value >= 0:  # nearly always: skip the conversions
        return value
    try:
        return max(int(value or 0), 0)
    except (TypeError, ValueError):
        return 0
