"""The batch writer: one binary COPY + one counted upsert per batch, and soft removals.

Unchanged rows are not rewritten (`IS DISTINCT FROM` guard), so new / updated /
unchanged are exact, and re-running a batch is a no-op: writes are idempotent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from psycopg import Connection
from psycopg.types.json import Jsonb

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
_STAGING_TYPES = ["text", "text", "text", "int4", "int4", "timestamptz", "jsonb"]
_COPY = (
    "COPY incoming_games (platform_game_id, title, icon_url, playtime_minutes,"
    " playtime_2weeks_minutes, last_played_at, raw_data) FROM STDIN (FORMAT BINARY)"
)

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

_MARK_REMOVED = """
UPDATE library_games SET removed_at = now(), updated_at = now()
WHERE library_id = %(library_id)s AND platform = %(platform)s AND removed_at IS NULL
  AND NOT (platform_game_id = ANY(%(owned)s))
"""


@dataclass(frozen=True)
class BatchCounts:
    """What one batch changed."""

    new: int
    updated: int
    unchanged: int


def write_batch(
    conn: Connection[object], library_id: str, platform: str, games: Sequence[OwnedGame]
) -> BatchCounts:
    """Upsert one batch of owned games in the caller's transaction; return exact counts."""
    unique = list({g.platform_game_id: g for g in games}.values())
    conn.execute(_CREATE_STAGING)
    conn.execute("TRUNCATE incoming_games")  # one transaction may write several batches
    with conn.cursor() as cur:
        with cur.copy(_COPY) as copy:
            copy.set_types(_STAGING_TYPES)
            for g in unique:
                copy.write_row(
                    (
                        g.platform_game_id,
                        g.title,
                        g.icon_url,
                        g.playtime_minutes,
                        g.playtime_2weeks_minutes,
                        g.last_played_at,
                        Jsonb(g.raw_data),
                    )
                )
        cur.execute(_UPSERT_CATALOG, {"platform": platform})
        cur.execute(_UPSERT_OWNERSHIP, {"library_id": library_id, "platform": platform})
        row = cur.fetchone()
    assert row is not None
    new, updated = int(row[0]), int(row[1])  # type: ignore[index]
    return BatchCounts(new=new, updated=updated, unchanged=len(unique) - new - updated)


def mark_removed(
    conn: Connection[object], library_id: str, platform: str, owned_ids: Sequence[str]
) -> int:
    """Stamp `removed_at` on the library's games that are no longer owned; return how many."""
    cur = conn.execute(
        _MARK_REMOVED, {"library_id": library_id, "platform": platform, "owned": list(owned_ids)}
    )
    return cur.rowcount
