"""Queueing enrichment: claim the apps that need details, then send them in chunks to `low`.

The claim (`games.enrich_queued_at`) is one UPDATE, so two libraries finishing at once
sharing most apps queue each app once; a claim older than ENRICH_CLAIM_S is taken
again (its message was lost), and an app whose details are fresh is never claimed.
"""

from __future__ import annotations

from datetime import timedelta

from ..runtime import Runtime
from ..sending import Sender, enrich_message
from ..store import catalog


def queue_for_library(runtime: Runtime, library_id: str) -> int:
    """After a library sync: queue its apps that need store details; return how many."""
    with runtime.pool.connection() as conn:
        app_ids = catalog.claim_for_library(conn, library_id, max_age(runtime), claim_age(runtime))
    return _send(app_ids, runtime)


def queue_all(runtime: Runtime, *, include_stale: bool) -> int:
    """By hand: queue every app without details (and, with `include_stale`, stale ones)."""
    with runtime.pool.connection() as conn:
        app_ids = catalog.claim_all(
            conn, "steam", max_age(runtime), claim_age(runtime), include_stale=include_stale
        )
    return _send(app_ids, runtime)


def max_age(runtime: Runtime) -> timedelta:
    """How old store details may get before they are fetched again."""
    return timedelta(days=runtime.settings.enrich_max_age_days)


def claim_age(runtime: Runtime) -> timedelta:
    """How long a queued app stays claimed before it may be queued again (its message lost)."""
    return timedelta(seconds=runtime.settings.enrich_claim_s)


def _send(app_ids: list[str], runtime: Runtime) -> int:
    sender = Sender(runtime)
    size = runtime.settings.enrich_chunk_size
    for start in range(0, len(app_ids), size):
        sender.send(enrich_message(app_ids[start : start + size]))
    return len(app_ids)
