"""The `games` catalog's store details: claiming apps for enrichment and recording what the
store said. One row per platform game serves every library that owns it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from psycopg import Connection
from psycopg.types.json import Jsonb

from ..platforms.store_details import StoreDetails

# An app needs details when it has none, or when they are older than the refresh age
# (for an app without a store page too: it is looked at again then, never in a loop).
# It is claimable when it needs details and no claim younger than the claim TTL holds it.
_NEEDS_DETAILS = "(g.enriched_at IS NULL OR g.enriched_at < now() - %(max_age)s)"
_UNCLAIMED = "(g.enrich_queued_at IS NULL OR g.enrich_queued_at < now() - %(claim_ttl)s)"
_CLAIMABLE = f"{_NEEDS_DETAILS} AND {_UNCLAIMED}"

# Claims lock rows in one order and skip rows another transaction holds (a claim, a
# sync writing that game, an enrichment recording it): two libraries finishing at once
# never deadlock, and a skipped app is claimed by its holder or the next sync owning it.
# Returned in numeric order (ids are numbers without leading zeros) for stable chunks.
_CLAIM = """
WITH claimable AS (
    SELECT g.platform, g.platform_game_id FROM games AS g {join}
    WHERE {where}
    ORDER BY g.platform_game_id
    FOR UPDATE OF g SKIP LOCKED
), claimed AS (
    UPDATE games AS g SET enrich_queued_at = now() FROM claimable AS c
    WHERE g.platform = c.platform AND g.platform_game_id = c.platform_game_id
    RETURNING g.platform_game_id
)
SELECT platform_game_id FROM claimed ORDER BY length(platform_game_id), platform_game_id
"""
_CLAIM_FOR_LIBRARY = _CLAIM.format(
    join="JOIN library_games AS lg"
    " ON lg.platform = g.platform AND lg.platform_game_id = g.platform_game_id",
    # Store details are Steam's: another platform's games are never sent to its store.
    where=f"lg.library_id = %(library_id)s AND lg.platform = 'steam' AND lg.removed_at IS NULL"
    f" AND {_CLAIMABLE}",
)
_CLAIM_ALL = _CLAIM.format(
    join="",
    where=f"g.platform = %(platform)s AND {_CLAIMABLE}"
    " AND (%(include_stale)s OR g.enriched_at IS NULL)",
)

_RECORD = """
UPDATE games SET
    store_status = %(status)s, enriched_at = now(), enrich_queued_at = NULL, updated_at = now(),
    game_type = %(app_type)s, is_free = %(is_free)s, required_age = %(required_age)s,
    short_description = %(short_description)s, header_image = %(header_image)s,
    developers = %(developers)s, publishers = %(publishers)s, genres = %(genres)s,
    categories = %(categories)s, platforms = %(platforms)s, release_date = %(release_date)s,
    release_on = %(release_on)s, coming_soon = %(coming_soon)s,
    metacritic_score = %(metacritic_score)s, fullgame_app_id = %(fullgame_app_id)s,
    details = %(details)s, title = COALESCE(title, %(name)s)
WHERE platform = %(platform)s AND platform_game_id = %(app_id)s
"""

_RECORD_UNAVAILABLE = """
UPDATE games SET store_status = 'unavailable', enriched_at = now(), enrich_queued_at = NULL,
    updated_at = now()
WHERE platform = %(platform)s AND platform_game_id = %(app_id)s
"""

_COUNTS = f"""
SELECT
    count(*) FILTER (WHERE g.enriched_at >= now() - %(max_age)s AND g.store_status = 'available'),
    count(*) FILTER (WHERE g.enriched_at >= now() - %(max_age)s AND g.store_status = 'unavailable'),
    count(*) FILTER (WHERE g.enriched_at < now() - %(max_age)s),
    count(*) FILTER (WHERE {_NEEDS_DETAILS} AND g.enrich_queued_at >= now() - %(claim_ttl)s),
    count(*) FILTER (WHERE g.enriched_at IS NULL AND {_UNCLAIMED})
FROM games AS g WHERE g.platform = %(platform)s
"""


def claim_for_library(
    conn: Connection[Any], library_id: str, max_age: timedelta, claim_ttl: timedelta, chunk: int
) -> Iterator[list[str]]:
    """Claim the library's owned apps that need details and nobody is fetching already;
    yield them `chunk` at a time (a big library's ids never all become Python strings).
    The claims commit with the caller's transaction, after it has used them."""
    yield from _claimed(
        conn,
        _CLAIM_FOR_LIBRARY,
        {"library_id": library_id, "max_age": max_age, "claim_ttl": claim_ttl},
        chunk,
    )


def claim_all(
    conn: Connection[Any],
    platform: str,
    max_age: timedelta,
    claim_ttl: timedelta,
    chunk: int,
    *,
    include_stale: bool,
) -> Iterator[list[str]]:
    """Claim every app with no details (and, with `include_stale`, those past the refresh
    age), `chunk` at a time."""
    yield from _claimed(
        conn,
        _CLAIM_ALL,
        {
            "platform": platform,
            "max_age": max_age,
            "claim_ttl": claim_ttl,
            "include_stale": include_stale,
        },
        chunk,
    )


def _claimed(
    conn: Connection[Any], sql: str, params: dict[str, Any], chunk: int
) -> Iterator[list[str]]:
    with conn.cursor() as cur:
        cur.execute(sql, params)
        while rows := cur.fetchmany(chunk):
            yield [row[0] for row in rows]


def needing_details(
    conn: Connection[Any], platform: str, app_ids: list[str], max_age: timedelta
) -> set[str]:
    """Which of `app_ids` still need details (an app done by another message is skipped)."""
    rows = conn.execute(
        f"SELECT g.platform_game_id FROM games AS g WHERE g.platform = %(platform)s"
        f" AND g.platform_game_id = ANY(%(app_ids)s) AND {_NEEDS_DETAILS}",
        {"platform": platform, "app_ids": app_ids, "max_age": max_age},
    ).fetchall()
    return {row[0] for row in rows}


def record_details(
    conn: Connection[Any], platform: str, app_id: str, details: StoreDetails | None
) -> None:
    """Store what the store said; None: no store page (looked at again after the refresh age)."""
    if details is None:
        conn.execute(_RECORD_UNAVAILABLE, {"platform": platform, "app_id": app_id})
        return
    values = {k: v for k, v in vars(details).items() if k != "data"}
    conn.execute(
        _RECORD,
        {
            **values,
            "status": "available",
            "details": Jsonb(details.data),
            "platform": platform,
            "app_id": app_id,
        },
    )


def enrichment_counts(
    conn: Connection[Any], platform: str, max_age: timedelta, claim_ttl: timedelta
) -> dict[str, int]:
    """How far store details have got: enriched, unavailable, stale, pending, not queued."""
    row = conn.execute(
        _COUNTS, {"platform": platform, "max_age": max_age, "claim_ttl": claim_ttl}
    ).fetchone()
    assert row is not None
    names = ("enriched", "unavailable", "stale", "pending", "not_queued")
    return dict(zip(names, (int(n) for n in row), strict=True))
