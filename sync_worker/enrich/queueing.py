"""Queueing enrichment: claim the apps that need details, then send them in chunks to `low`.

The claim (`games.enrich_queued_at`) is one UPDATE, so two libraries finishing at once
sharing most apps queue each app once; a claim older than ENRICH_CLAIM_S is taken
again (its message was lost), and an app whose details are fresh is never claimed.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from ..runtime import Runtime
from ..sending import Sender, enrich_message
from ..store import catalog


def queue_for_library(runtime: Runtime, library_id: str) -> int:
    """After a library sync: queue its apps that need store details; return how many.

    The claims commit once their messages are sent: a send that fails leaves them unclaimed."""
    size = runtime.settings.enrich_chunk_size
    with runtime.pool.connection() as conn:
        return _send(
            catalog.claim_for_library(conn, library_id, max_age(runtime), claim_age(runtime), size),
            runtime,
        )


def queue_all(runtime: Runtime, *, include_stale: bool) -> int:
    """By hand: queue every app without details (and, with `include_stale`, stale ones)."""
    size = runtime.settings.enrich_chunk_size
    with runtime.pool.connection() as conn:
        return _send(
            catalog.claim_all(
                conn,
                "steam",
                max_age(runtime),
                claim_age(runtime),
                size,
                include_stale=include_stale,
            ),
            runtime,
        )


def max_age(runtime: Runtime) -> timedelta:
    """How old store details may get before they are fetched again."""
    return timedelta(days=runtime.settings.enrich_max_age_days)


def claim_age(runtime: Runtime) -> timedelta:
    """How long a queued app stays claimed before it may be queued again (its message lost)."""
    return timedelta(seconds=runtime.settings.enrich_claim_s)


def _send(chunks: Iterator[list[str]], runtime: Runtime) -> int:
    sender = Sender(runtime)
    sent = 0
    for app_ids in chunks:
        sender.send(enrich_message(app_ids))
        sent += len(app_ids)
    return sent
