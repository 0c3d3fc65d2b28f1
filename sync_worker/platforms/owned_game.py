"""One owned game as every platform adapter hands it over: the unit the writer stores."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(slots=True)  # not frozen: built once per written game, and frozen is 5x slower
class OwnedGame:
    """One game a user owns, normalised to what we store."""

    platform_game_id: str
    title: str | None
    icon_url: str | None
    playtime_minutes: int
    playtime_2weeks_minutes: int
    last_played_at: datetime | None
    raw_json: bytes  # the platform's whole entry (UTF-8 JSON), stored as `raw_data`

    @property
    def sort_key(self) -> int:
        """Numeric order of the platform id (Steam app ids are integers)."""
        return int(self.platform_game_id)
