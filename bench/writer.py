"""The batch writer's throughput: COPY + counted upsert vs an `executemany` baseline.

Both do the same job per batch (catalog rows, then ownership rows, one commit per
batch); only ours can tell new / updated / unchanged apart and skip unchanged rows.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from psycopg import Connection
from psycopg.types.json import Jsonb

from sync_worker.platforms import OwnedGame
from sync_worker.store import libraries, writer

from .common import bench_runtime

ROWS = 30_000
BATCH = 1_000

_CATALOG = """
INSERT INTO games (platform, platform_game_id, title, icon_url) VALUES ('steam', %s, %s, %s)
ON CONFLICT (platform, platform_game_id) DO UPDATE SET title = excluded.title, icon_url = excluded.icon_url
"""
_OWNERSHIP = """
INSERT INTO library_games (library_id, platform, platform_game_id, playtime_minutes,
                           playtime_2weeks_minutes, last_played_at, raw_data)
VALUES (%s, 'steam', %s, %s, %s, %s, %s)
ON CONFLICT (library_id, platform, platform_game_id) DO UPDATE
SET playtime_minutes = excluded.playtime_minutes, playtime_2weeks_minutes = excluded.playtime_2weeks_minutes,
    last_played_at = excluded.last_played_at, raw_data = excluded.raw_data, updated_at = now()
"""


def make_games(n: int, offset: int) -> list[OwnedGame]:
    """n distinct games (app ids from offset), shaped like a real listing."""
    return [
        OwnedGame(
            platform_game_id=str(10 * (offset + i + 1)),
            title=f"Game {offset + i}",
            icon_url=f"https://media.example/{i}.jpg",
            playtime_minutes=i % 5000,
            playtime_2weeks_minutes=0,
            last_played_at=None,
            raw_data={
                "appid": 10 * (offset + i + 1),
                "name": f"Game {offset + i}",
                "playtime_forever": i % 5000,
                "playtime_windows_forever": i % 5000,
                "rtime_last_played": 0,
            },
        )
        for i in range(n)
    ]


def executemany_batch(conn: Connection[object], library_id: str, games: list[OwnedGame]) -> None:
    """The baseline: the same two upserts, row by row through executemany."""
    with conn.cursor() as cur:
        cur.executemany(_CATALOG, [(g.platform_game_id, g.title, g.icon_url) for g in games])
        cur.executemany(
            _OWNERSHIP,
            [
                (
                    library_id,
                    g.platform_game_id,
                    g.playtime_minutes,
                    g.playtime_2weeks_minutes,
                    g.last_played_at,
                    Jsonb(g.raw_data),
                )
                for g in games
            ],
        )


def main() -> None:
    """Print rows/s, fresh and unchanged, for ours and the baseline."""
    with bench_runtime() as (runtime, _):

        def rate(
            library_id: str,
            games: list[OwnedGame],
            write: Callable[[Connection[object], str, list[OwnedGame]], object],
        ) -> float:
            started = time.perf_counter()
            for i in range(0, len(games), BATCH):
                with runtime.pool.connection() as conn, conn.transaction():
                    write(conn, library_id, games[i : i + BATCH])
            return len(games) / (time.perf_counter() - started)

        with runtime.pool.connection() as conn:
            ours_id = libraries.register_library(conn, "steam", "76561198000000001")
            base_id = libraries.register_library(conn, "steam", "76561198000000002")
        ours_games, base_games = (
            make_games(ROWS, 0),
            make_games(ROWS, ROWS),
        )  # distinct catalog rows

        def ours(conn: Connection[object], lib: str, games: list[OwnedGame]) -> object:
            return writer.write_batch(conn, lib, "steam", games)

        ours_fresh, ours_same = rate(ours_id, ours_games, ours), rate(ours_id, ours_games, ours)
        base_fresh, base_same = (
            rate(base_id, base_games, executemany_batch),
            rate(base_id, base_games, executemany_batch),
        )

    print(
        f"batch writer: {ROWS:,} games (catalog + ownership rows), batches of {BATCH:,}, one commit each"
    )
    print(
        f"  COPY + counted upsert     fresh {ours_fresh:8,.0f} rows/s   unchanged {ours_same:8,.0f} rows/s"
    )
    print(
        f"  baseline: executemany     fresh {base_fresh:8,.0f} rows/s   unchanged {base_same:8,.0f} rows/s"
    )


if __name__ == "__main__":
    main()
