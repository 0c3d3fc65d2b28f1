"""Reading Steam's store `appdetails` answer, quirks included, into what we store.

Quirks (see shared/design/STEAM_API.md): `required_age` is an int or a string;
requirements are an object or `[]`; `fullgame.appid` is a string; free games have no
`price_overview`; `release_date.date` is localised free text; `type` is also dlc,
music (soundtracks), demo, video... An app without a store page answers
`{"<id>": {"success": false}}`. Every field is read defensively: an odd value becomes
NULL in its column, and `data` is kept whole.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

_DATE_FORMATS = ("%d %b, %Y", "%b %d, %Y", "%d %B, %Y", "%B %d, %Y", "%d %b %Y", "%Y-%m-%d")
_MONTH_FORMATS = ("%b %Y", "%B %Y", "%b, %Y", "%B, %Y")
_YEAR = re.compile(r"[0-9]{4}")


@dataclass(frozen=True)
class StoreDetails:
    """One app's store page, as typed columns plus the whole `data` object."""

    app_type: str | None
    name: str | None
    is_free: bool | None
    required_age: int | None
    short_description: str | None
    header_image: str | None
    developers: list[str] | None
    publishers: list[str] | None
    genres: list[str] | None
    categories: list[str] | None
    platforms: list[str] | None
    release_date: str | None  # the raw text
    release_on: date | None  # parsed where possible (a month or a year alone: its first day)
    coming_soon: bool | None
    metacritic_score: int | None
    fullgame_app_id: str | None
    data: dict[str, Any]


def parse_app_details(app_id: str, body: dict[str, Any]) -> StoreDetails | None:
    """The details in an appdetails answer; None when the app has no store page."""
    entry = body.get(app_id)
    if not isinstance(entry, dict) or entry.get("success") is not True:
        return None
    data = entry.get("data")
    if not isinstance(data, dict):
        return None
    release = _object(data.get("release_date"))
    raw_date = _text(release.get("date"))
    fullgame = _object(data.get("fullgame"))
    platforms = _object(data.get("platforms"))
    metacritic = _object(data.get("metacritic"))
    return StoreDetails(
        app_type=_text(data.get("type")),
        name=_text(data.get("name")),
        is_free=data.get("is_free") if isinstance(data.get("is_free"), bool) else None,
        required_age=_int(data.get("required_age")),
        short_description=_text(data.get("short_description")),
        header_image=_text(data.get("header_image")),
        developers=_strings(data.get("developers")),
        publishers=_strings(data.get("publishers")),
        genres=_descriptions(data.get("genres")),
        categories=_descriptions(data.get("categories")),
        platforms=sorted(name for name, on in platforms.items() if on is True) or None,
        release_date=raw_date,
        release_on=parse_release_date(raw_date),
        coming_soon=release.get("coming_soon")
        if isinstance(release.get("coming_soon"), bool)
        else None,
        metacritic_score=_int(metacritic.get("score")),
        fullgame_app_id=_text(fullgame.get("appid")),
        data=data,
    )


def parse_release_date(text: str | None) -> date | None:
    """A date from Steam's English release-date text; None for "Coming soon", "Q3 2026"..."""
    if not text:
        return None
    cleaned = text.strip()
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(cleaned, fmt).date()
        except ValueError:
            pass
    for fmt in _MONTH_FORMATS:
        try:
            return datetime.strptime(cleaned, fmt).date()
        except ValueError:
            pass
    if _YEAR.fullmatch(cleaned):
        return date(int(cleaned), 1, 1)
    return None


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
        return str(value)
    return None


def _int(value: Any) -> int | None:
    """An int from an int or a numeric string ("16"); None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value.strip())
    return None


def _strings(value: Any) -> list[str] | None:
    if not isinstance(value, list):
        return None
    return [str(v) for v in value if isinstance(v, str) and v.strip()] or None


def _descriptions(value: Any) -> list[str] | None:
    """`[{"id": .., "description": "Action"}, ...]` -> ["Action", ...]."""
    if not isinstance(value, list):
        return None
    return [
        str(item["description"])
        for item in value
        if isinstance(item, dict) and isinstance(item.get("description"), str)
    ] or None
