"""How one sync ended: what the actor logs and the CLI prints with `--json`."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class SyncOutcome:
    """How one sync ended: the CLI's `--json` summary and the actor's log line."""

    library_id: str
    run_id: str
    status: str  # completed | private | cancelled | failed
    total_games: int
    new_games: int
    updated_games: int
    removed_games: int
    api_calls: int
    error: dict[str, Any] | None = None
    #: The message came back after its run had ended (a worker died before the ack):
    #: these are that run's figures, and nothing was done again.
    redelivered: bool = False

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)
