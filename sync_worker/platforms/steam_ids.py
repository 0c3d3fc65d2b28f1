"""Recognising what a user typed as their Steam identity: id, profile URL or vanity name."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import InvalidSteamId

STEAM_ID_PREFIX = "7656119"  # every SteamID64 of an individual account starts so
_STEAM_ID64 = re.compile(STEAM_ID_PREFIX + r"[0-9]{10}")  # ASCII only: \d takes any script's digits
_PROFILE_URL = re.compile(
    r"(?:https?://)?(?:www\.)?steamcommunity\.com/(?P<kind>profiles|id)/(?P<value>[^/?#\s]+)/?(?:[?#].*)?"
)
_VANITY = re.compile(r"[A-Za-z0-9_-]{2,32}")


@dataclass(frozen=True)
class SteamIdentity:
    """Either a SteamID64 (ready to use) or a vanity name (needs ResolveVanityURL)."""

    steam_id: str | None = None
    vanity: str | None = None


def validate_steam_id(value: str) -> str:
    """Return the SteamID64 if `value` is one (17 digits starting 7656119), else raise InvalidSteamId."""
    value = value.strip()
    if not _STEAM_ID64.fullmatch(value):
        raise InvalidSteamId(f"{value[:40]!r} is not a SteamID64 (17 digits starting 7656119).")
    return value


def parse_identity(text: str) -> SteamIdentity:
    """Read a SteamID64, a steamcommunity.com profile URL or a vanity name."""
    text = text.strip()
    if text.isascii() and text.isdigit():
        return SteamIdentity(steam_id=validate_steam_id(text))
    url = _PROFILE_URL.fullmatch(text)
    if url:
        if url["kind"] == "profiles":
            return SteamIdentity(steam_id=validate_steam_id(url["value"]))
        if _VANITY.fullmatch(url["value"]):
            return SteamIdentity(vanity=url["value"])
    elif _VANITY.fullmatch(text):
        return SteamIdentity(vanity=text)
    raise InvalidSteamId(
        f"{text[:40]!r} is not a SteamID64, a Steam profile URL or a custom URL name."
    )
