"""Deterministic fake data: owned-game entries and store details, with Steam's real quirks."""

from __future__ import annotations

import hashlib
import random
from typing import Any

from .ids import SimulatedProfile

CATALOG_SIZE = 200_000  # distinct app ids libraries draw from, so libraries overlap
_STRIDE = 7_919  # prime, coprime with CATALOG_SIZE: index -> app id is a bijection
NOW = 1_764_000_000  # a fixed "now" (Nov 2025) keeps generated data stable

_ADJECTIVES = [
    "Ancient",
    "Broken",
    "Crimson",
    "Distant",
    "Electric",
    "Frozen",
    "Hidden",
    "Iron",
    "Lost",
    "Neon",
    "Quiet",
    "Silent",
    "Wild",
    "Último",
    "Café",
    "Κρυφός",
]
_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
_NOUNS = [
    "Kingdom",
    "Signal",
    "Garden",
    "Protocol",
    "Harbor",
    "Circuit",
    "Legend",
    "Frontier",
    "Dungeon",
    "Orbit",
    "Meadow",
    "Requiem",
    "Tower",
    "ドラゴン",
    "Straße",
    "Звезда",
]


def app_id_at(index: int, seed: int) -> int:
    """The app id of a library's index-th game (distinct for distinct indexes < CATALOG_SIZE)."""
    return 10 * (1 + (index * _STRIDE + seed * 104_729) % CATALOG_SIZE)


def _rng(*parts: object) -> random.Random:
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))


def game_name(app_id: int) -> str:
    """A stable, sometimes unicode, sometimes shared (two app ids, one name) game title."""
    base = app_id - app_id % 40 if app_id % 40 == 20 else app_id  # every 4th pair shares a name
    rng = _rng("name", base)
    return f"{rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)} {rng.randint(1, 9)}"


def icon_hash(app_id: int) -> str:
    """The icon hash Steam would send; empty for some games, as Steam does."""
    if app_id % 17 == 0:
        return ""
    return hashlib.sha1(f"icon{app_id}".encode()).hexdigest()  # noqa: S324


def is_free_game(app_id: int) -> bool:
    """Free games appear only with include_played_free_games=1."""
    return app_id % 13 == 0


def owned_game(
    profile: SimulatedProfile, app_id: int, *, include_appinfo: bool, playtime_bonus: int = 0
) -> dict[str, Any]:
    """One entry of GetOwnedGames for this profile, in Steam's current (or legacy) shape.

    Every random draw happens unconditionally, in a fixed order, so a playtime bonus
    changes only what it should: the game's minutes, recent minutes and last-played time.
    """
    rng = _rng("own", profile.seed, app_id)
    base_played, base_minutes = rng.random() < 0.7, rng.randint(1, 30_000)
    recent, recent_minutes = rng.random() < 0.1, rng.randint(1, 1_200)
    has_stats, legacy_logo, descriptors = (
        rng.random() < 0.6,
        rng.random() < 0.05,
        rng.random() < 0.1,
    )
    windows_share, linux_share = rng.random(), rng.random()
    ancient, last_played = rng.random() < 0.05, rng.randint(1_262_304_000, NOW)  # 2010 .. now

    playtime = (base_minutes if base_played else 0) + playtime_bonus
    game: dict[str, Any] = {"appid": app_id}
    if include_appinfo:
        game["name"] = game_name(app_id)
        game["img_icon_url"] = icon_hash(app_id)
        if legacy_logo:  # a few old-format entries still carry the retired logo hash
            game["img_logo_url"] = hashlib.sha1(f"logo{app_id}".encode()).hexdigest()  # noqa: S324
    game["playtime_forever"] = playtime
    if playtime_bonus > 0:
        game["playtime_2weeks"] = playtime_bonus
    elif base_played and recent:
        game["playtime_2weeks"] = min(recent_minutes, playtime)
    if has_stats:  # optional booleans are omitted rather than false
        game["has_community_visible_stats"] = True
    windows = int(playtime * (0.75 + windows_share / 4))
    if playtime_bonus > 0:
        last_played = NOW
    elif not base_played:
        last_played = 0
    elif ancient:  # very old games report dates in 1970
        last_played = last_played % (86_400 * 365)
    game.update(
        {
            "playtime_windows_forever": windows,
            "playtime_mac_forever": 0,
            "playtime_linux_forever": int((playtime - windows) * linux_share),
            "playtime_deck_forever": 0,
            "rtime_last_played": last_played,
            "playtime_disconnected": 0,
        }
    )
    if descriptors:
        game["content_descriptorids"] = [2, 5]
    return game


def app_type(app_id: int) -> str:
    """Store `type`: mostly games, some DLC, soundtracks ("music") and demos."""
    if app_id % 11 == 0:
        return "dlc"
    if app_id % 19 == 0:
        return "music"
    if app_id % 23 == 0:
        return "demo"
    return "game"


def _release(rng: random.Random) -> dict[str, Any]:
    """release_date as Steam writes it: localised free text, sometimes not a date at all."""
    day, month, year = rng.randint(1, 28), rng.choice(_MONTHS), rng.randint(2004, 2025)
    text = rng.choice(
        [f"{day} {month}, {year}"] * 6
        + [f"{month} {day}, {year}", f"{month} {year}", "Coming soon", f"Q{rng.randint(1, 4)} 2027"]
    )
    return {"coming_soon": text in ("Coming soon",) or text.startswith("Q"), "date": text}


def app_details(app_id: int) -> dict[str, Any]:
    """The store's appdetails answer for one app id, quirks included."""
    if app_id % 97 == 0:  # delisted / region-locked
        return {str(app_id): {"success": False}}
    rng = _rng("store", app_id)
    kind = app_type(app_id)
    belongs_to_game = kind != "game"
    free = is_free_game(app_id)
    data: dict[str, Any] = {
        "type": kind,
        "name": game_name(app_id),
        "steam_appid": app_id,
        "required_age": rng.choice([0, 0, "16", 18]),  # int or string, as Steam sends
        "is_free": free,
        "short_description": f"A game about {game_name(app_id).lower()}.",
        "header_image": f"https://cdn.example/steam/apps/{app_id}/header.jpg",
        "developers": [f"Studio {rng.randint(1, 400)}"],
        "publishers": [f"Publisher {rng.randint(1, 80)}"],
        "platforms": {"windows": True, "mac": rng.random() < 0.3, "linux": rng.random() < 0.2},
        "categories": [{"id": 2, "description": "Single-player"}],
        "genres": [
            {"id": str(rng.randint(1, 30)), "description": rng.choice(["Action", "RPG", "Indie"])}
        ],
        "release_date": _release(rng),
        "pc_requirements": {"minimum": "<strong>OS:</strong> Windows 10"}
        if rng.random() < 0.5
        else [],
        "mac_requirements": [],
        "linux_requirements": [],
    }
    if not free:
        cents = rng.choice([499, 999, 1999, 5999])
        data["price_overview"] = {
            "currency": "USD",
            "initial": cents,
            "final": cents,
            "discount_percent": 0,
            "final_formatted": f"${cents / 100:.2f}",
        }
    if rng.random() < 0.3:
        data["metacritic"] = {"score": rng.randint(40, 97), "url": "https://www.metacritic.com/"}
    if belongs_to_game:
        data["fullgame"] = {"appid": str(app_id - 10), "name": game_name(app_id - 10)}
    return {str(app_id): {"success": True, "data": data}}
