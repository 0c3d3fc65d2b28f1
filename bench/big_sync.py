"""Big libraries through a long-lived sync engine, beside the writer floor; peak RSS by size.

For 30,000 and 50,000 games: a first sync, an unchanged re-sync, and re-syncs with 1 %
and 10 % of playtimes changed, each in a bench process that stays up (no CLI start-up),
the simulator (in its own process) serving a kept body (its generation time excluded).
Medians of ROUNDS libraries. Baselines in the same run:
- the one-table floor: a binary COPY + one upsert of the same rows into one table shaped
  like `library_games` (no catalog, no foreign keys, no counts): the physical limit;
- the two-table floor: what a sync writes, without the rest of a sync: a binary COPY, the
  catalog upsert and the ownership upsert into tables shaped like `games` and
  `library_games`, with their foreign keys, in one transaction.
Peak RSS: `sync-worker sync` of 1k to 200k games in child processes.
"""

from __future__ import annotations

import json
import random
import statistics
import subprocess
import sys
import time
from typing import Any

import requests

from sync_worker.logs import configure_logging
from sync_worker.platforms.steam import SteamClient, read_owned_games
from sync_worker.runtime import Runtime
from sync_worker.simulator import steam_id_for
from sync_worker.store import libraries
from sync_worker.sync.engine import SyncEngine

from .common import BENCH_KEY, bench_runtime, child_env, simulator_process
from .peak_rss import MARKER

SIZES = (30_000, 50_000)
RSS_SIZES = (1_000, 10_000, 50_000, 200_000)
ROUNDS = 3
CASES = ("first sync", "unchanged", "1 % changed", "10 % changed")
TARGETS = {"first sync": 1.5, "unchanged": 0.3, "1 % changed": 0.4}  # x the floor's fresh write
TWO_TABLE_TARGET = 1.5  # the first sync, x the two-table floor
RSS_TARGET = 1.25  # the largest library's peak RSS, x the smallest's

_FLOOR_TABLE = """
CREATE TABLE IF NOT EXISTS floor_games (LIKE library_games INCLUDING DEFAULTS INCLUDING INDEXES)
"""
_FLOOR_STAGING = """
CREATE TEMP TABLE floor_incoming (
    platform_game_id text, playtime_minutes int4, playtime_2weeks_minutes int4,
    last_played_at timestamptz, raw_data jsonb
) ON COMMIT DROP
"""
_FLOOR_COPY = (
    "COPY floor_incoming (platform_game_id, playtime_minutes, playtime_2weeks_minutes,"
    " last_played_at, raw_data) FROM STDIN (FORMAT BINARY)"
)
_FLOOR_UPSERT = """
INSERT INTO floor_games (library_id, platform, platform_game_id, playtime_minutes,
                         playtime_2weeks_minutes, last_played_at, raw_data)
SELECT %s, 'steam', platform_game_id, playtime_minutes, playtime_2weeks_minutes,
       last_played_at, raw_data FROM floor_incoming
ON CONFLICT (library_id, platform, platform_game_id) DO UPDATE
SET playtime_minutes = excluded.playtime_minutes, raw_data = excluded.raw_data
"""
_TWO_TABLES = """
CREATE TABLE IF NOT EXISTS floor_catalog (LIKE games INCLUDING DEFAULTS INCLUDING INDEXES);
CREATE TABLE IF NOT EXISTS floor_owned (
    LIKE library_games INCLUDING DEFAULTS INCLUDING INDEXES,
    FOREIGN KEY (library_id) REFERENCES user_libraries (library_id) ON DELETE CASCADE,
    FOREIGN KEY (platform, platform_game_id) REFERENCES floor_catalog (platform, platform_game_id)
)
"""
_TWO_STAGING = """
CREATE TEMP TABLE floor_incoming2 (
    platform_game_id text, title text, icon_url text, playtime_minutes int4,
    playtime_2weeks_minutes int4, last_played_at timestamptz, raw_data jsonb
) ON COMMIT DROP
"""
_TWO_COPY = (
    "COPY floor_incoming2 (platform_game_id, title, icon_url, playtime_minutes,"
    " playtime_2weeks_minutes, last_played_at, raw_data) FROM STDIN (FORMAT BINARY)"
)
_TWO_CATALOG = """
INSERT INTO floor_catalog (platform, platform_game_id, title, icon_url)
SELECT 'steam', platform_game_id, title, icon_url FROM floor_incoming2
ON CONFLICT (platform, platform_game_id) DO UPDATE
SET title = excluded.title, icon_url = excluded.icon_url
"""
_TWO_OWNED = """
INSERT INTO floor_owned (library_id, platform, platform_game_id, playtime_minutes,
                         playtime_2weeks_minutes, last_played_at, raw_data)
SELECT %s, 'steam', platform_game_id, playtime_minutes, playtime_2weeks_minutes,
       last_played_at, raw_data FROM floor_incoming2
ON CONFLICT (library_id, platform, platform_game_id) DO UPDATE
SET playtime_minutes = excluded.playtime_minutes, raw_data = excluded.raw_data
"""


def serve_body(url: str, steam_id: str, session: requests.Session | None = None) -> bytes:
    """Have the simulator build (and keep) the library's body; return it (through
    `session` when given, as a client keeping its connection would)."""
    response = (session or requests).get(
        f"{url}/IPlayerService/GetOwnedGames/v1/",
        params={
            "key": BENCH_KEY,
            "steamid": steam_id,
            "include_appinfo": 1,
            "include_played_free_games": 1,
        },
        timeout=120,
    )
    response.raise_for_status()
    return response.content


def two_table_floor(runtime: Runtime, body: bytes) -> float:
    """Seconds to COPY the body's games and upsert them into a catalog (kept between
    rounds, as the real one is) and an emptied ownership table, with foreign keys."""
    return _timed_floor(
        runtime,
        body,
        prepare=[_TWO_TABLES, "TRUNCATE floor_owned"],
        staging=_TWO_STAGING,
        copy_sql=_TWO_COPY,
        columns=(
            "platform_game_id",
            "title",
            "icon_url",
            "playtime_minutes",
            "playtime_2weeks_minutes",
            "last_played_at",
        ),
        types=["text", "text", "text", "int4", "int4", "timestamptz", "bytea"],
        upserts=[_TWO_CATALOG, _TWO_OWNED],
        steam_id="76561190000000001",
    )


def floor_write(runtime: Runtime, body: bytes) -> float:
    """Seconds to COPY + upsert the body's games into an empty `floor_games` (rows prepared)."""
    return _timed_floor(
        runtime,
        body,
        prepare=[_FLOOR_TABLE, "TRUNCATE floor_games"],
        staging=_FLOOR_STAGING,
        copy_sql=_FLOOR_COPY,
        columns=(
            "platform_game_id",
            "playtime_minutes",
            "playtime_2weeks_minutes",
            "last_played_at",
        ),
        types=["text", "int4", "int4", "timestamptz", "bytea"],
        upserts=[_FLOOR_UPSERT],
        steam_id="76561190000000000",
    )


def _timed_floor(
    runtime: Runtime,
    body: bytes,
    *,
    prepare: list[str],
    staging: str,
    copy_sql: str,
    columns: tuple[str, ...],
    types: list[str],
    upserts: list[str],
    steam_id: str,
) -> float:
    """Seconds for one transaction: a temp table, a binary COPY of the body's games (the
    rows prepared before the clock starts) and the upserts; `%s` in them is the library."""
    with read_owned_games([body]) as owned:
        rows = [
            # raw_data last, in jsonb's binary format: a version byte, then the text.
            (*(getattr(g, column) for column in columns), b"\x01" + g.raw_json)
            for g in owned.games(0, len(owned))
        ]
    with runtime.pool.connection() as conn:
        for statement in prepare:
            conn.execute(statement)
        conn.commit()
        library_id = libraries.register_library(conn, "steam", steam_id)
        started = time.perf_counter()
        with conn.transaction(), conn.cursor() as cur:
            cur.execute(staging)
            with cur.copy(copy_sql) as copy:
                copy.set_types(types)
                for row in rows:
                    copy.write_row(row)
            for upsert in upserts:
                cur.execute(upsert, (library_id,) if "%s" in upsert else None)
        return time.perf_counter() - started


def timed_sync(engine: SyncEngine, library_id: str) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    outcome = engine.sync(library_id)
    elapsed = time.perf_counter() - started
    assert outcome.status == "completed", outcome
    return elapsed, outcome.to_dict()


def bump_playtimes(url: str, steam_id: str, body: bytes, share: float) -> int:
    """Change the playtime of `share` of the library's games (a seeded random pick)."""
    app_ids = [g["appid"] for g in json.loads(body)["response"]["games"]]
    picked = random.Random(steam_id).sample(app_ids, int(len(app_ids) * share))
    requests.post(
        f"{url}/_sim/libraries/{steam_id}",
        json={"bump_playtime": {str(a): 30 for a in picked}},
        timeout=10,
    ).raise_for_status()
    return len(picked)


def measure_size(runtime: Runtime, games: int) -> dict[str, Any]:
    """Medians over ROUNDS libraries of `games` games: each case, and the floor."""
    settings = runtime.settings
    url = settings.steam_api_base_url
    engine = SyncEngine(settings, runtime.redis, runtime.pool, lambda: SteamClient(settings))
    times: dict[str, list[float]] = {case: [] for case in (*CASES, "floor", "two-table floor")}
    for round_ in range(ROUNDS):
        steam_id = steam_id_for(games, seed=300 + round_)
        with runtime.pool.connection() as conn:
            library_id = libraries.register_library(conn, "steam", steam_id)
        body = serve_body(url, steam_id)
        times["floor"].append(floor_write(runtime, body))
        times["two-table floor"].append(two_table_floor(runtime, body))
        seconds, first = timed_sync(engine, library_id)
        assert first["new_games"] == games, first
        times["first sync"].append(seconds)
        seconds, same = timed_sync(engine, library_id)
        assert (same["new_games"], same["updated_games"]) == (0, 0), same
        times["unchanged"].append(seconds)
        for case, share in (("1 % changed", 0.01), ("10 % changed", 0.10)):
            changed = bump_playtimes(url, steam_id, body, share)
            serve_body(url, steam_id)  # the simulator builds the changed body untimed
            seconds, outcome = timed_sync(engine, library_id)
            assert outcome["updated_games"] == changed, (case, outcome)
            times[case].append(seconds)
    return {case: statistics.median(values) for case, values in times.items()}


def peak_rss_mb(runtime: Runtime, games: int) -> float:
    """Peak RSS of a `sync-worker sync` child process syncing a fresh library."""
    steam_id = steam_id_for(games, seed=500)
    result = subprocess.run(
        [sys.executable, "-m", "bench.peak_rss", "sync_worker.cli", "sync", "--steam-id", steam_id],
        env=child_env(runtime),
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise SystemExit(f"sync of {games} games exited {result.returncode}: {result.stderr}")
    peak_kb = next(
        int(line.removeprefix(MARKER))
        for line in result.stderr.splitlines()
        if line.startswith(MARKER)
    )
    return peak_kb / 1024


def main() -> dict[str, Any]:
    """Print the big-library table; return its figures."""
    results: dict[str, Any] = {}
    with bench_runtime() as (base, _), simulator_process(base) as runtime:
        configure_logging(runtime.settings)  # WARNING: no line per sync
        for games in SIZES:
            results[str(games)] = measure_size(runtime, games)
        rss = {str(games): peak_rss_mb(runtime, games) for games in RSS_SIZES}
    print(
        f"big libraries: a long-lived engine, batch size {runtime.settings.sync_batch_size},"
        f" medians of {ROUNDS} libraries; x = ratio to the floor's fresh write"
    )
    for games in SIZES:
        figures = results[str(games)]
        floor, two = figures["floor"], figures["two-table floor"]
        print(
            f"  {games:,} games   floor (COPY + one upsert, one table) {floor:5.2f} s;"
            f" two-table floor (COPY + catalog + ownership, foreign keys) {two:5.2f} s"
        )
        for case in CASES:
            ratio = figures[case] / floor
            target = f"target <= {TARGETS[case]:.1f}x" if case in TARGETS else ""
            print(f"    {case:<14} {figures[case]:6.2f} s  {ratio:5.2f}x  {target}")
        print(
            f"    first sync / two-table floor {figures['first sync'] / two:5.2f}x"
            f"  target <= {TWO_TABLE_TARGET:.1f}x"
        )
    base = rss[str(RSS_SIZES[0])]
    print(
        f"  peak RSS of `sync-worker sync` (whole process), x = ratio to {RSS_SIZES[0]:,} games"
        f" (target <= {RSS_TARGET}x)"
    )
    for games in RSS_SIZES:
        print(f"    {games:>7,} games  {rss[str(games)]:6.1f} MB  {rss[str(games)] / base:5.2f}x")
    results["peak_rss_mb"] = rss
    return results


if __name__ == "__main__":
    main()
