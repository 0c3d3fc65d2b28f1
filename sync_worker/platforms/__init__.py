"""Platform adapters: each turns a platform's API into normalised owned games."""

from .base import OwnedGame, PlatformAdapter, SameAnswer

__all__ = ["OwnedGame", "PlatformAdapter", "SameAnswer"]
