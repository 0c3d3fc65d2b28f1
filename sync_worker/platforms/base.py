"""What the sync engine needs from a platform, independent of Steam."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .owned_library import OwnedLibrary


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


class PlatformAdapter(Protocol):
    """A platform the engine can sync from."""

    platform: str

    @property
    def api_calls(self) -> int:
        """Calls made to the platform by this adapter so far."""

    def fetch_owned_games(self, platform_user_id: str) -> OwnedLibrary:
        """Every game the user owns; raises PrivateProfile when the platform hides them."""
