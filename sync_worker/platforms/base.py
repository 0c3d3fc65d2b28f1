"""What the sync engine needs from a platform, independent of Steam."""

from __future__ import annotations

from typing import Protocol

from .owned_game import OwnedGame
from .owned_library import OwnedLibrary, SameAnswer

__all__ = ["OwnedGame", "PlatformAdapter", "SameAnswer"]


class PlatformAdapter(Protocol):
    """A platform the engine can sync from."""

    platform: str

    @property
    def api_calls(self) -> int:
        """Calls made to the platform by this adapter so far."""

    def fetch_owned_games(
        self, platform_user_id: str, known_answer: bytes | None = None
    ) -> OwnedLibrary | SameAnswer:
        """Every game the user owns, or SameAnswer (unparsed) when the answer's digest is
        `known_answer`; raises PrivateProfile when the platform hides them."""
