"""The batch writer: one binary COPY, a probe for unchanged rows, counted upserts, removals.

Rows identical to what is stored are dropped from the staging table by a primary-key
probe before the upserts: `ON CONFLICT ... DO UPDATE ... WHERE` would still lock and
WAL-log each of them. New / updated / unchanged are exact, and re-running a batch is
a no-op: writes are idempotent. Entries arrive as JSON text and PostgreSQL parses them
once, into `jsonb`: Python never serialises a game.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import Connection

from ..platforms import OwnedGame

_CREATE_STAGING = """
CREATE TEMP TABLE IF NOT EXISTS incoming_games (
    platform_game_id        text PRIMARY KEY,
    title                   text,
    icon_url                text,
    playtime_minutes        integer,
    playtime_2weeks_minutes integer,
    last_played_at          timestamptz,
    raw_data                jsonb
) ON COMMIT DELETE ROWS
"""
# raw_data is sent as text in jsonb's binary format (a version byte, then the text).
_STAGING_TYPES = ["text", "text", "text", "int4", "int4", "timestamptz", "bytea"]
_JSONB_VERSION = b"\x01"
_COPY = (
    "COPY incoming_games (platform_game_id, title, icon_url, playtime_minutes,"
    " playtime_2weeks_minutes, last_played_at, raw_data) FROM STDIN (FORMAT BINARY)"
)

# Both tables probed by primary key, one row at a time: scalar subqueries are never turned
# into joins, so a growing catalog is never scanned whole (a hash join did, per batch).
# What is left in staging needs writing; a missing row leaves NULL, which keeps it.
_DROP_UNCHANGED = """
DELETE FROM incoming_games i
WHERE (SELECT (lg.playtime_minutes, lg.playtime_2weeks_minutes, lg.last_played_at, lg.raw_data,
               lg.removed_at)
              IS NOT DISTINCT FROM (i.playtime_minutes, i.playtime_2weeks_minutes,
                                    i.last_played_at, i.raw_data, NULL::timestamptz)
       FROM library_games lg
       WHERE lg.library_id = %(library_id)s AND lg.platform = %(platform)s
         AND lg.platform_game_id = i.platform_game_id)
  AND (SELECT (g.title, g.icon_url)
              IS NOT DISTINCT FROM (COALESCE(i.title, g.title), COALESCE(i.icon_url, g.icon_url))
       FROM games g
       WHERE g.platform = %(platform)s AND g.platform_game_id = i.platform_game_id)
"""

# Catalog first: library_games references games. A missing title never erases a known one.
# ORDER BY gives every writer the same lock order, so concurrent syncs cannot deadlock.
_UPSERT_CATALOG = """
INSERT INTO games AS g (platform, platform_game_id, title, icon_url)
SELECT %(platform)s, platform_game_id, title, icon_url FROM incoming_games ORDER BY platform_game_id
ON CONFLICT (platform, platform_game_id) DO UPDATE
SET title = COALESCE(excluded.title, g.title),
    icon_url = COALESCE(excluded.icon_url, g.icon_url),
    updated_at = now()
WHERE (g.title, g.icon_url)
      IS DISTINCT FROM (COALESCE(excluded.title, g.title), COALESCE(excluded.icon_url, g.icon_url))
"""

# `returning_games` reads the pre-statement snapshot: a game coming back (removed_at set
# before) counts as new, not updated. xmax = 0 marks a freshly inserted row.
_UPSERT_OWNERSHIP = """
WITH returning_games AS (
    SELECT platform_game_id FROM library_games
    WHERE library_id = %(library_id)s AND platform = %(platform)s AND removed_at IS NOT NULL
      AND platform_game_id IN (SELECT platform_game_id FROM incoming_games)
), upserted AS (
    INSERT INTO library_games AS lg (library_id, platform, platform_game_id, playtime_minutes,
                                     playtime_2weeks_minutes, last_played_at, raw_data)
    SELECT %(library_id)s, %(platform)s, platform_game_id, playtime_minutes,
           playtime_2weeks_minutes, last_played_at, raw_data
    FROM incoming_games ORDER BY platform_game_id
    ON CONFLICT (library_id, platform, platform_game_id) DO UPDATE
    SET playtime_minutes = excluded.playtime_minutes,
        playtime_2weeks_minutes = excluded.playtime_2weeks_minutes,
        last_played_at = excluded.last_played_at,
        raw_data = excluded.raw_data,
        removed_at = NULL,
        updated_at = now()
    WHERE (lg.playtime_minutes, lg.playtime_2weeks_minutes, lg.last_played_at, lg.raw_data, lg.removed_at)
          IS DISTINCT FROM (excluded.playtime_minutes, excluded.playtime_2weeks_minutes,
                            excluded.last_played_at, excluded.raw_data, NULL::timestamptz)
    RETURNING lg.platform_game_id, (xmax = 0) AS inserted
)
SELECT count(*) FILTER (WHERE u.inserted OR r.platform_game_id IS NOT NULL),
       count(*) FILTER (WHERE NOT u.inserted AND r.platform_game_id IS NULL)
FROM upserted u LEFT JOIN returning_games r USING (platform_game_id)
"""

# The owned ids (numeric, so never a comma) travel as one comma-separated text:
# dumping 50,000 strings as a text[] parameter costs psycopg 0.1 s of Python.
_OWNED_IDS = """
SELECT platform_game_id FROM library_games
WHERE library_id = %(library_id)s AND platform = %(platform)s AND removed_at IS NULL
"""
# `removed` lists only the games to stamp: an index condition on the primary key under
# any plan (a generic plan searches a whole library's ids in one array row by row).
_MARK_REMOVED = """
UPDATE library_games SET removed_at = now(), updated_at = now()
WHERE library_id = %(library_id)s AND platform = %(platform)s
  AND platform_game_id = ANY(%(removed)s::text[]) AND removed_at IS NULL
"""
_COUNT_OWNED = """
SELECT count(*) FROM library_games
WHERE library_id = %(library_id)s AND platform = %(platform)s AND removed_at IS NULL
"""


@dataclass(frozen=True)
class StoredGame:
    """What a library row holds of a game a platform told us of before (GOG's playtime
    comes apart from its titles: a sync keeps what it did not read again)."""

    playtime_minutes: int
    last_played_at: datetime | None
    raw_data: dict[str, Any]


# A page's ids (at most a few hundred), joined as a set: an index probe per id under
# any plan.
_STORED_GAMES = """
SELECT lg.platform_game_id, lg.playtime_minutes, lg.last_played_at, lg.raw_data
FROM unnest(%(ids)s::text[]) AS i (platform_game_id)
JOIN library_games lg ON lg.library_id = %(library_id)s AND lg.platform = %(platform)s
                     AND lg.platform_game_id = i.platform_game_id
"""


def stored_games(
    conn: Connection[Any], library_id: str, platform: str, ids: list[str]
) -> dict[str, StoredGame]:
    """The library's rows for these ids (a page's worth), owned or removed."""
    rows = conn.execute(
        _STORED_GAMES, {"library_id": library_id, "platform": platform, "ids": ids}
    ).fetchall()
    return {game_id: StoredGame(minutes, last, raw) for game_id, minutes, last, raw in rows}


def record_types(conn: Connection[Any], platform: str, types: dict[str, str]) -> None:
    """What kind of product each of these (a page's worth) is, as the platform says
    (`game`, `dlc`), in the catalog's `game_type`; written only where it changes."""
    if not types:
        return
    ids, kinds = zip(*sorted(types.items()), strict=True)
    conn.execute(
        "UPDATE games AS g SET game_type = t.kind, updated_at = now()"
        " FROM unnest(%(ids)s::text[], %(kinds)s::text[]) AS t (platform_game_id, kind)"
        " WHERE g.platform = %(platform)s AND g.platform_game_id = t.platform_game_id"
        " AND g.game_type IS DISTINCT FROM t.kind",
        {"platform": platform, "ids": list(ids), "kinds": list(kinds)},
    )


def owned_game_ids(conn: Connection[Any], library_id: str, platform: str) -> set[str]:
    """The ids the library owns as stored."""
    params = {"library_id": library_id, "platform": platform}
    return {game_id for (game_id,) in conn.execute(_OWNED_IDS, params).fetchall()}


@dataclass(frozen=True)
class BatchCounts:
    """What one batch changed."""

    new: int
    updated: int
    unchanged: int


def write_batch(
    conn: Connection[object],
    library_id: str,
    platform: str,
    games: Iterable[OwnedGame],
    *,
    probe: bool = True,
) -> BatchCounts:
    """Upsert one batch of owned games in the caller's transaction; return exact counts.

    Ids must be unique in a batch (an OwnedLibrary's are). `games` is streamed into the
    COPY: a batch is never held decoded. `probe=False` skips dropping unchanged rows first,
    for a library with nothing stored to compare (its first sync): the counts stay exact
    either way."""
    copied = 0
    params = {"library_id": library_id, "platform": platform}
    conn.execute(_CREATE_STAGING)
    # Empty but when one transaction writes several batches; TRUNCATE would cost a
    # millisecond even then (it gives the table new files).
    conn.execute("DELETE FROM incoming_games")
    with conn.cursor() as cur:
        with cur.copy(_COPY) as copy:
            copy.set_types(_STAGING_TYPES)
            for g in games:
                copied += 1
                copy.write_row(
                    (
                        g.platform_game_id,
                        g.title,
                        g.icon_url,
                        g.playtime_minutes,
                        g.playtime_2weeks_minutes,
                        g.last_played_at,
                        _JSONB_VERSION + g.raw_json,
                    )
                )
        if probe and cur.execute(_DROP_UNCHANGED, params).rowcount == copied:
            return BatchCounts(new=0, updated=0, unchanged=copied)
        cur.execute(_UPSERT_CATALOG, params)
        cur.execute(_UPSERT_OWNERSHIP, params)
        row = cur.fetchone()
    assert row is not None
    new, updated = int(row[0]), int(row[1])  # type: ignore[index]
    return BatchCounts(new=new, updated=updated, unchanged=copied - new - updated)


def mark_removed(
    conn: Connection[object], library_id: str, platform: str, owned_ids: Collection[str]
) -> int:
    """Stamp `removed_at` on the library's games that are no longer owned; return how many.

    Every id in `owned_ids` must already be stored as owned (the caller wrote them), so
    equal counts mean nothing was removed and nothing more is read; otherwise the stored
    ids are read and only the removed ones are sent.
    """
    params = {"library_id": library_id, "platform": platform}
    row = conn.execute(_COUNT_OWNED, params).fetchone()
    assert row is not None
    if int(row[0]) == len(owned_ids):  # type: ignore[index]
        return 0
    owned = set(owned_ids)
    stored: list[tuple[str]] = conn.execute(_OWNED_IDS, params).fetchall()  # type: ignore[assignment]
    removed = [game_id for (game_id,) in stored if game_id not in owned]
    if not removed:
        return 0
    return conn.execute(_MARK_REMOVED, {**params, "removed": removed}).rowcount
