"""The checkpoint of a sync in flight: where to resume, and the totals so far.

Saved after every committed batch, so a killed worker's rerun skips what is already
written and still reports exact totals for the whole run.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import redis

from .. import keys
from ..store.libraries import RunTotals


@dataclass
class Checkpoint:
    """Resumable state of one run (one attempt-to-completion)."""

    run_id: str
    sync_type: str
    started_at: str
    last_game_id: int = -1  # every game with a smaller or equal id is committed
    games_processed: int = 0
    new_games: int = 0
    updated_games: int = 0
    api_calls: int = 0
    batches: int = 0

    def totals(self, total_games: int, removed_games: int = 0) -> RunTotals:
        """The run's counters as `sync_runs` records them."""
        return RunTotals(
            total_games=total_games,
            new_games=self.new_games,
            updated_games=self.updated_games,
            removed_games=removed_games,
            api_calls=self.api_calls,
        )


class CheckpointStore:
    """Loads, saves and clears checkpoints in Redis."""

    def __init__(self, client: redis.Redis, ttl_s: int) -> None:
        self._client = client
        self._ttl_s = ttl_s

    def load(self, library_id: str) -> Checkpoint | None:
        """The library's checkpoint, or None (also for an unreadable one: start afresh)."""
        raw = self._client.get(keys.checkpoint_key(library_id))
        if raw is None:
            return None
        try:
            return Checkpoint(**json.loads(raw))
        except (TypeError, ValueError):
            return None

    def save(self, library_id: str, checkpoint: Checkpoint) -> None:
        """Persist the checkpoint (refreshing its TTL)."""
        self._client.set(
            keys.checkpoint_key(library_id), json.dumps(asdict(checkpoint)), ex=self._ttl_s
        )

    def clear(self, library_id: str) -> None:
        """Forget the checkpoint: the run ended."""
        self._client.delete(keys.checkpoint_key(library_id))
