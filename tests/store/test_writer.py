"""The batch writer on real PostgreSQL: exact counts, idempotence, soft removal."""

from __future__ import annotations

import json
from dataclasses import replace

from sync_worker.platforms import OwnedGame
from sync_worker.platforms.steam import read_owned_games
from sync_worker.store import writer
from tests.conftest import fetch_all


def game(app_id: int, playtime: int = 10, title: str | None = "A Game") -> OwnedGame:
    return OwnedGame(
        platform_game_id=str(app_id),
        title=title,
        icon_url=None,
        playtime_minutes=playtime,
        playtime_2weeks_minutes=0,
        last_played_at=None,
        raw_json=json.dumps({"appid": app_id, "playtime_forever": playtime}).encode(),
    )


def write(runtime, library_id: str, games: list[OwnedGame]) -> writer.BatchCounts:
    with runtime.pool.connection() as conn, conn.transaction():
        return writer.write_batch(conn, library_id, "steam", games)


def test_counts_new_updated_and_unchanged_exactly(runtime, register):
    """New rows, changed rows and untouched rows are told apart row by row."""
    library_id = register("76561198000000001")
    assert write(runtime, library_id, [game(10), game(20), game(30)]) == writer.BatchCounts(3, 0, 0)

    counts = write(runtime, library_id, [game(10), game(20, playtime=99), game(30), game(40)])

    assert counts == writer.BatchCounts(new=1, updated=1, unchanged=2)


def test_unchanged_rows_are_not_rewritten(runtime, register):
    """The IS DISTINCT FROM guard leaves identical rows alone (updated_at and xmin stay)."""
    library_id = register("76561198000000002")
    write(runtime, library_id, [game(10)])
    before = fetch_all(runtime, "SELECT xmin::text, updated_at FROM library_games")
    write(runtime, library_id, [game(10)])
    assert fetch_all(runtime, "SELECT xmin::text, updated_at FROM library_games") == before


def test_an_app_listed_twice_is_written_once_as_listed_last(runtime, register):
    """Steam listing one app twice cannot break the COPY or double count: the library
    read from its answer keeps the last entry, and the writer gets each id once."""
    library_id = register("76561198000000003")
    listed = [{"appid": 10, "playtime_forever": 1}, {"appid": 10, "playtime_forever": 2}]
    body = json.dumps({"response": {"game_count": 2, "games": listed}}).encode()
    with read_owned_games([body]) as owned:
        counts = write(runtime, library_id, owned.games(0, len(owned)))
    assert counts == writer.BatchCounts(1, 0, 0)
    assert fetch_all(runtime, "SELECT playtime_minutes FROM library_games") == [(2,)]


def test_catalog_is_shared_and_a_missing_title_never_erases_one(runtime, register):
    """Two libraries owning one game share one catalog row; a nameless listing keeps the name."""
    a, b = register("76561198000000004"), register("76561198000000005")
    write(runtime, a, [game(10, title="Half-Life")])
    write(runtime, b, [replace(game(10), title=None)])
    assert fetch_all(runtime, "SELECT platform_game_id, title FROM games") == [("10", "Half-Life")]
    assert len(fetch_all(runtime, "SELECT 1 FROM library_games")) == 2


def test_mark_removed_stamps_only_games_no_longer_owned(runtime, register):
    """Removal is a timestamp, limited to this library and to games not listed."""
    mine, other = register("76561198000000006"), register("76561198000000007")
    write(runtime, mine, [game(10), game(20), game(30)])
    write(runtime, other, [game(10), game(20)])
    with runtime.pool.connection() as conn:
        assert writer.mark_removed(conn, mine, "steam", ["20"]) == 2
        assert writer.mark_removed(conn, mine, "steam", ["20"]) == 0  # idempotent
    rows = fetch_all(
        runtime,
        "SELECT library_id::text, platform_game_id, removed_at IS NOT NULL FROM library_games ORDER BY 1, 2",
    )
    assert sorted(r[1:] for r in rows if r[0] == mine) == [
        ("10", True),
        ("20", False),
        ("30", True),
    ]
    assert all(not removed for lib, _, removed in rows if lib == other)
