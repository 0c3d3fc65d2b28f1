"""The project beside a hand-written peer, first and unchanged syncs, same run.

The peer is what a small team might write instead of this service: one `requests` GET,
`json.loads` of the whole answer, `executemany` upserts into the same two tables
(`games`, `library_games`), 1,000 games per transaction; no checkpoints, leases, events,
removals or differential skipping. The project is a long-lived `SyncEngine` in the bench
process. Both read the same simulated libraries (the simulator in its own process,
answers kept, so generation time is excluded) and write their own library rows.

Sizes: the median library (140 games, LIBRARIES_140 libraries), 2,000 and 30,000 games.
Each figure is the median time of one library's sync; the ratio is project / peer.
Target (the performance issue): <= 0.8x the peer on every case.

    python -m bench.peer
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import requests
from psycopg.types.json import Jsonb

from sync_worker.logs import configure_logging
from sync_worker.platforms.steam import SteamClient
from sync_worker.runtime import Runtime
from sync_worker.simulator import steam_id_for
from sync_worker.store import libraries
from sync_worker.sync.engine import SyncEngine

from .big_sync import serve_body
from .common import bench_runtime, simulator_process

SIZES = {140: 100, 2_000: 5, 30_000: 3}  # games: libraries measured
PEER_CHUNK = 1_000
TARGET = 0.8

_PEER_GAMES = """
INSERT INTO games (platform, platform_game_id, title, icon_url) VALUES ('steam', %s, %s, %s)
ON CONFLICT (platform, platform_game_id) DO UPDATE
SET title = coalesce(excluded.title, games.title), icon_url = excluded.icon_url
"""
_PEER_OWNED = """
INSERT INTO library_games (library_id, platform, platform_game_id, playtime_minutes,
                           playtime_2weeks_minutes, last_played_at, raw_data)
VALUES (%s, 'steam', %s, %s, %s, to_timestamp(%s), %s)
ON CONFLICT (library_id, platform, platform_game_id) DO UPDATE
SET playtime_minutes = excluded.playtime_minutes,
    playtime_2weeks_minutes = excluded.playtime_2weeks_minutes,
    last_played_at = excluded.last_played_at, raw_data = excluded.raw_data, updated_at = now()
"""
ICON = "https://media.steampowered.com/steamcommunity/public/images/apps/{}/{}.jpg"


def peer_sync(runtime: Runtime, session: requests.Session, library_id: str, steam_id: str) -> int:
    """The hand-written peer's whole sync; returns the games it wrote."""
    body = serve_body(runtime.settings.steam_api_base_url, steam_id, session)
    games = json.loads(body)["response"].get("games", [])
    with runtime.pool.connection() as conn:
        for start in range(0, len(games), PEER_CHUNK):
            chunk = games[start : start + PEER_CHUNK]
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(
                    _PEER_GAMES,
                    [
                        (
                            str(g["appid"]),
                            g.get("name"),
                            ICON.format(g["appid"], g["img_icon_url"])
                            if g.get("img_icon_url")
                            else None,
                        )
                        for g in chunk
                    ],
                )
                cur.executemany(
                    _PEER_OWNED,
                    [
                        (
                            library_id,
                            str(g["appid"]),
                            g.get("playtime_forever", 0),
                            g.get("playtime_2weeks", 0),
                            g.get("rtime_last_played") or None,
                            Jsonb(g),
                        )
                        for g in chunk
                    ],
                )
    return len(games)


def timed(action: Callable[[], Any]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def measure(runtime: Runtime, games: int, count: int) -> dict[str, float]:
    """Median seconds of one library's first and unchanged sync, project and peer."""
    settings = runtime.settings
    engine = SyncEngine(settings, runtime.redis, runtime.pool, lambda: SteamClient(settings))
    times: dict[str, list[float]] = {
        f"{who} {case}": [] for who in ("project", "peer") for case in ("first", "unchanged")
    }
    with requests.Session() as session:
        for n in range(count):
            steam_id = steam_id_for(games, seed=900 + n)
            serve_body(settings.steam_api_base_url, steam_id)  # generated untimed
            with runtime.pool.connection() as conn:
                ours = libraries.register_library(conn, "steam", steam_id)
                theirs = libraries.register_library(conn, "steam", f"peer-{steam_id}")
            order = ("project", "peer") if n % 2 == 0 else ("peer", "project")
            for case in ("first", "unchanged"):
                for who in order:
                    sync = (
                        partial(engine.sync, ours)
                        if who == "project"
                        else partial(peer_sync, runtime, session, theirs, steam_id)
                    )
                    times[f"{who} {case}"].append(timed(sync))
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> dict[str, Any]:
    """Print project / peer for each size and case; return the figures."""
    results: dict[str, Any] = {}
    with bench_runtime() as (base, _), simulator_process(base) as runtime:
        configure_logging(runtime.settings)
        for games, count in SIZES.items():
            results[str(games)] = measure(runtime, games, count)
    print("project vs a hand-written peer (requests + json.loads + executemany), same run,")
    print("median seconds of one library's sync; x = project / peer")
    for games, count in SIZES.items():
        figures = results[str(games)]
        for case in ("first", "unchanged"):
            ours, theirs = figures[f"project {case}"], figures[f"peer {case}"]
            print(
                f"  {games:>6,} games ({count:>3} libraries) {case:<9}"
                f" project {ours * 1000:8.1f} ms   peer {theirs * 1000:8.1f} ms"
                f"   {ours / theirs:4.2f}x (target <= {TARGET}x)"
            )
    return results


if __name__ == "__main__":
    main()
