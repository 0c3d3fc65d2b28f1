"""Sending work to the workers: the queues, the actors' names, and the one way a new
message leaves a process.

The client, the scheduler, enrichment queueing and dead-letter requeue all send through
here. Sending needs Redis and the names below, never the actors or the middleware, so a
web process that requests syncs loads none of the worker (docs/architecture.md).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from . import keys
from .errors import MalformedMessage
from .heartbeats import live_workers
from .infrastructure import INFRASTRUCTURE_ERRORS
from .runtime import Runtime
from .store import libraries
from .sync.lease import lease_owners
from .sync.pending import claim_many, release_pending, track_pending
from .sync.progress import make_event, write_queued_events

#: Priority is by queue, each served by its own processes (see the Procfile):
#: Dramatiq on Redis has no priority across queues.
QUEUE_HIGH = "high"  # manual syncs: a user is watching
QUEUE_DEFAULT = "default"  # scheduled / auto syncs
QUEUE_LOW = "low"  # enrichment
QUEUES = (QUEUE_HIGH, QUEUE_DEFAULT, QUEUE_LOW)

#: The actors' stable names: messages already queued name them, so they never change.
SYNC_ACTOR = "sync_library"
ENRICH_ACTOR = "enrich_games"
SCHEDULE_ACTOR = "schedule_auto_syncs"

SYNC_TYPES = ("manual", "scheduled", "auto")
MAX_LIBRARY_ID = 64  # ids are uuids: a 1 MB "id" must not become Redis keys or log lines


def serving(workers: list[dict[str, Any]], queue: str) -> int:
    """How many of `workers` (`heartbeats.live_workers`) can run `queue`'s messages: a
    worker without STEAM_API_KEY cannot run syncs."""
    needs_key = queue in (QUEUE_HIGH, QUEUE_DEFAULT)
    return sum(
        queue in w.get("queues", []) and (not needs_key or w.get("can_sync", True)) for w in workers
    )


def sync_queue(sync_type: str) -> str:
    """The queue a sync of that type goes to: manual ones jump the scheduled ones."""
    return QUEUE_HIGH if sync_type == "manual" else QUEUE_DEFAULT


def sync_message(
    library_id: str, *, force: bool = False, sync_type: str = "manual"
) -> dramatiq.Message[None]:
    """The `sync_library` message for a request: `high` for manual syncs, `default` otherwise."""
    if sync_type not in SYNC_TYPES:
        raise MalformedMessage(f"sync_type must be one of {', '.join(SYNC_TYPES)}.")
    return dramatiq.Message(
        queue_name=sync_queue(sync_type),
        actor_name=SYNC_ACTOR,
        args=(library_id,),
        kwargs={"force": force, "sync_type": sync_type},
        options={},
    )


def enrich_message(app_ids: list[str]) -> dramatiq.Message[None]:
    """The `enrich_games` message for a chunk of app ids, on `low`."""
    return dramatiq.Message(
        queue_name=QUEUE_LOW, actor_name=ENRICH_ACTOR, args=(app_ids,), kwargs={}, options={}
    )


def library_id_of(message: Any) -> str | None:
    """The library a sync message is about; None for other messages and for values that
    cannot be a library id (the actor rejects those as malformed)."""
    if message.actor_name != SYNC_ACTOR:
        return None
    value = message.args[0] if message.args else message.kwargs.get("library_id")
    return value if isinstance(value, str) and len(value) <= MAX_LIBRARY_ID else None


def track_copy(runtime: Runtime, message: Any) -> None:
    """Point the library's request slot at the broker copy of a sync message just stored.

    Every enqueue of a sync message makes a new copy (a request, a retry, a deferral,
    Dramatiq moving a delayed message onto its queue); the slot follows it, so a request
    can tell a live message from one long gone. Only a slot this message holds moves.
    Best effort: an untracked slot only lets a later request queue a duplicate, which then
    waits for the lease; it never blocks a sync.
    """
    library_id = library_id_of(message)
    redis_id = message.options.get("redis_message_id")
    if library_id is None or redis_id is None:
        return
    with contextlib.suppress(*INFRASTRUCTURE_ERRORS):
        track_pending(
            runtime.redis,
            library_id,
            message.message_id,
            message.queue_name,
            redis_id,
            runtime.settings.pending_ttl_s,
        )


class Sender:
    """Stores new messages on the workers' queues, on this process's Redis connection.

    A bare Dramatiq Redis broker: no middleware (those run where messages are processed)
    and no maintenance (the workers requeue what dead workers held).
    """

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._broker = RedisBroker(  # type: ignore[no-untyped-call]
            client=runtime.redis,
            namespace=keys.BROKER_NAMESPACE,
            middleware=[],
            maintenance_chance=0,
        )

    def send(self, message: dramatiq.Message[None], *, delay_ms: int = 0) -> None:
        """Enqueue `message` (on its queue's delay queue when `delay_ms`)."""
        stored = self._broker.enqueue(message, delay=delay_ms or None)
        track_copy(self._runtime, stored)


def request_syncs(
    runtime: Runtime,
    library_ids: Sequence[str],
    *,
    force: bool = False,
    sync_type: str = "manual",
    spread_s: float = 0.0,
) -> list[str]:
    """Queue a sync of each registered library, the i-th new message delayed by
    `i * spread_s`; return each library's message id.

    A library with a live sync message queued or running keeps it, and its id is
    returned instead (`force=True` queues anyway; it then runs after the current one).
    """
    # Every id a UUID before anything is claimed (UnknownLibrary, not a database error).
    ids = [str(libraries.library_key(library_id)) for library_id in library_ids]
    messages = [sync_message(lib, force=force, sync_type=sync_type) for lib in ids]
    held = claim_many(runtime.redis, [(m.args[0], m.message_id) for m in messages], force=force)
    fresh = [m for m, holder in zip(messages, held, strict=True) if holder is None]
    sender = Sender(runtime)
    sent = 0
    try:
        for position, message in enumerate(fresh):
            sender.send(message, delay_ms=int(position * spread_s * 1000))
            sent += 1
    except Exception:
        for message in fresh[sent:]:  # those sent hold their slots: they will run
            release_pending(runtime.redis, message.args[0], message.message_id)
        raise
    _announce_queued(runtime, fresh, sync_type)
    return [holder or m.message_id for m, holder in zip(messages, held, strict=True)]


def _announce_queued(
    runtime: Runtime, sent: Sequence[dramatiq.Message[None]], sync_type: str
) -> None:
    """Mark the libraries of messages now stored `queued`, and say so on the progress channel,
    with the queue and how many live workers can run it (0: the sync waits for one).

    After the message exists, never before: a process dying in between leaves a message
    that runs, not a `queued` with nothing behind it. A library whose sync already runs
    keeps its own status: another message's (a forced request queued behind it, an inline
    run), or this one's, taken by a worker at once (its events carry its message id).
    """
    owners = lease_owners(runtime.redis, [m.args[0] for m in sent])
    ours = {m.args[0]: m.message_id for m in sent if owners[m.args[0]] in (None, m.message_id)}
    with runtime.pool.connection() as conn:
        totals = libraries.set_queued(conn, list(ours.items()))
    if not totals:
        return
    queue = sent[0].queue_name  # one sync type: one queue
    workers = serving(live_workers(runtime.redis), queue)
    waiting = "" if workers else "; no worker is running to take it yet"
    events = [
        make_event(
            lib,
            "queued",
            message=f"Queued a {sync_type} sync{waiting}",
            total_games=total,
            message_id=ours[lib],
            queue=queue,
            workers=workers,
        )
        for lib, total in totals.items()
    ]
    write_queued_events(runtime.redis, events, runtime.settings.progress_ttl_s)
