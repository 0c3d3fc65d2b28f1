"""How a simulated Steam id encodes its profile: kind, seed and library size.

A SteamID64 is `7656119` + 10 digits. The simulator reads those 10 digits as
`8 SSS K NNNNN`: seed S (which games), kind K (public, private, ...) and the game
count N (0-99,999); a leading 9 instead of 8 counts tens of games (up to the catalog's
200,000 distinct app ids). Every valid id therefore names a deterministic profile.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

STEAM_ID_PREFIX = "7656119"
MAX_GAMES = 200_000  # the catalog's size: a library owns each app id at most once


class ProfileKind(enum.IntEnum):
    """What the simulated profile shows the world."""

    PUBLIC = 0
    PRIVATE = 1  # whole profile private: communityvisibilitystate 1, games hidden
    PRIVATE_GAME_DETAILS = 2  # public profile, private "Game details": games hidden


@dataclass(frozen=True)
class SimulatedProfile:
    """The profile a Steam id stands for in the simulator."""

    steam_id: str
    seed: int
    kind: ProfileKind
    game_count: int


def steam_id_for(games: int, kind: ProfileKind = ProfileKind.PUBLIC, seed: int = 0) -> str:
    """The Steam id of a simulated profile with that many games."""
    if not 0 <= games <= MAX_GAMES or not 0 <= seed <= 999:
        raise ValueError("games must be 0-200000 and seed 0-999")
    if games < 100_000:
        return f"{STEAM_ID_PREFIX}8{seed:03d}{int(kind)}{games:05d}"
    if games % 10:
        raise ValueError("above 99,999 games, a multiple of 10")
    return f"{STEAM_ID_PREFIX}9{seed:03d}{int(kind)}{games // 10:05d}"


def parse_profile(steam_id: str) -> SimulatedProfile | None:
    """The profile behind a Steam id, or None when the id is not a SteamID64."""
    if len(steam_id) != 17 or not steam_id.isdigit() or not steam_id.startswith(STEAM_ID_PREFIX):
        return None
    tail = steam_id[7:]
    kind_digit = int(tail[4])
    kind = (
        ProfileKind(kind_digit)
        if kind_digit in {k.value for k in ProfileKind}
        else ProfileKind.PUBLIC
    )
    return SimulatedProfile(
        steam_id=steam_id,
        seed=int(tail[1:4]),
        kind=kind,
        game_count=min(int(tail[5:]) * (10 if tail[0] == "9" else 1), MAX_GAMES),
    )
