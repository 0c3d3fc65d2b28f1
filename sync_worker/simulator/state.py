"""The simulator's mutable state: call counters, rate limits, queued faults, library changes.

Shared by the server's handler threads under one lock; the admin API changes it.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from . import catalog
from .ids import SimulatedProfile

KEPT_BODIES = 8


@dataclass
class LibraryChanges:
    """Edits applied to a generated library, so tests can change it between two syncs."""

    playtime_bonus: dict[int, int] = field(default_factory=dict)
    removed: set[int] = field(default_factory=set)
    added: list[int] = field(default_factory=list)
    names: dict[int, str] = field(default_factory=dict)  # hostile or odd titles, by app id


@dataclass
class Fault:
    """An injected failure for the next `count` matching calls."""

    match: str
    kind: str  # status | truncate | delay | reset | html | bad_key
    count: int = 1
    status: int = 500
    retry_after: int | None = None  # a Retry-After header on a `status` fault
    delay_s: float = 0.0


class SimulatorState:
    """Everything the admin API can change; shared by the handler threads."""

    def __init__(self, api_key: str) -> None:
        self.api_key = api_key
        self.lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.changes: dict[str, LibraryChanges] = {}
        self.faults: list[Fault] = []
        # Per API ("webapi", or "store" for appdetails): (calls, window_s) answered 429 above.
        self.rate_limits: dict[str, tuple[int, float]] = {}
        self.recent_calls: dict[str, deque[float]] = {
            "webapi": deque(),
            "store": deque(),
            "gog": deque(),
        }
        self.rejected_429 = 0
        self.peak_window_calls = {"webapi": 0, "store": 0, "gog": 0}  # most in one window
        # Recent GetOwnedGames answers as sent, until their library changes (see owned_body).
        self._bodies: dict[tuple[str, bool, bool], bytes] = {}
        self._revision = 0  # bumped by every library change: a body built before is stale

    def reset(self) -> None:
        """Back to a fresh simulator (the api key stays)."""
        with self.lock:
            self.calls.clear()
            self.changes.clear()
            self.faults.clear()
            self.rate_limits.clear()
            for recent in self.recent_calls.values():
                recent.clear()
            self.rejected_429 = 0
            self.peak_window_calls = {"webapi": 0, "store": 0, "gog": 0}
            self._bodies.clear()
            self._revision += 1

    def count_call(self, endpoint: str) -> bool:
        """Count a call; return False when its API's rate limit rejects it."""
        api = (
            "store"
            if endpoint == "appdetails"
            else "gog"
            if endpoint.startswith("gog")
            else "webapi"
        )
        with self.lock:
            self.calls[endpoint] += 1
            if api not in self.rate_limits:
                return True
            calls, window_s = self.rate_limits[api]
            recent = self.recent_calls[api]
            now = time.monotonic()
            while recent and recent[0] <= now - window_s:
                recent.popleft()
            if len(recent) >= calls:
                self.rejected_429 += 1
                return False
            recent.append(now)
            self.peak_window_calls[api] = max(self.peak_window_calls[api], len(recent))
            return True

    def take_fault(self, endpoint: str) -> Fault | None:
        """The next fault queued for this endpoint, consuming one of its uses."""
        with self.lock:
            for fault in self.faults:
                if fault.match in endpoint and fault.count > 0:
                    fault.count -= 1
                    if fault.count == 0:
                        self.faults.remove(fault)
                    return fault
        return None

    def owned_games(
        self, profile: SimulatedProfile, *, include_appinfo: bool, include_free: bool
    ) -> list[dict[str, Any]]:
        """The profile's library as GetOwnedGames lists it, changes applied, in Steam's unsorted order."""
        with self.lock:
            changes = self.changes.get(profile.steam_id, LibraryChanges())
            ids = [catalog.app_id_at(i, profile.seed) for i in range(profile.game_count)]
            ids = [a for a in ids if a not in changes.removed] + list(changes.added)
            bonus = dict(changes.playtime_bonus)
            names = dict(changes.names)
        if not include_free:
            ids = [a for a in ids if not catalog.is_free_game(a)]
        random.Random(profile.steam_id).shuffle(ids)
        games = [
            catalog.owned_game(
                profile, a, include_appinfo=include_appinfo, playtime_bonus=bonus.get(a, 0)
            )
            for a in ids
        ]
        if include_appinfo and names:
            for game in games:
                if game["appid"] in names:
                    game["name"] = names[game["appid"]]
        return games

    def owned_body(
        self, profile: SimulatedProfile, *, include_appinfo: bool, include_free: bool
    ) -> bytes:
        """A public profile's GetOwnedGames answer, as sent.

        The last few answers are kept until their library changes, so a big library served
        again costs no generation time (benchmarks time the service, not the simulator).
        """
        key = (profile.steam_id, include_appinfo, include_free)
        with self.lock:
            body, revision = self._bodies.get(key), self._revision
        if body is not None:
            return body
        games = self.owned_games(
            profile, include_appinfo=include_appinfo, include_free=include_free
        )
        response: dict[str, Any] = {"game_count": len(games)}
        if games:  # a public profile owning nothing has no "games" key at all
            response["games"] = games
        body = json.dumps(
            {"response": response}, ensure_ascii=False, separators=(",", ":")
        ).encode()
        with self.lock:
            if revision == self._revision:
                self._bodies[key] = body
                while len(self._bodies) > KEPT_BODIES:
                    del self._bodies[next(iter(self._bodies))]  # the oldest
        return body

    def change_library(self, steam_id: str, body: dict[str, Any]) -> None:
        """Apply an admin change to one library."""
        with self.lock:
            self._revision += 1
            for key in [k for k in self._bodies if k[0] == steam_id]:
                del self._bodies[key]
            changes = self.changes.setdefault(steam_id, LibraryChanges())
            for app_id, minutes in body.get("bump_playtime", {}).items():
                changes.playtime_bonus[int(app_id)] = changes.playtime_bonus.get(
                    int(app_id), 0
                ) + int(minutes)
            for app_id in body.get("remove", []):
                changes.removed.add(int(app_id))
                if int(app_id) in changes.added:
                    changes.added.remove(int(app_id))
            for app_id in body.get("add", []):
                changes.removed.discard(int(app_id))
                if int(app_id) not in changes.added:
                    changes.added.append(int(app_id))
            for app_id, name in body.get("rename", {}).items():
                changes.names[int(app_id)] = str(name)
