"""Every Redis key and channel name the service uses, in one place.

The web service reads `PROGRESS_CHANNEL` and `progress_key()`; the rest are internal.
A sync's resumable checkpoint is not here: it lives in PostgreSQL with the rows it
describes (`sync_runs`), so what the database says was written is what was written.
"""

from __future__ import annotations

PREFIX = "sync"

#: Pub/sub channel carrying one JSON event per progress change, for every library.
PROGRESS_CHANNEL = f"{PREFIX}:progress"


def progress_key(library_id: str) -> str:
    """The latest progress event of a library (JSON, with a TTL)."""
    return f"{PREFIX}:progress:{library_id}"


def lock_key(library_id: str) -> str:
    """The lease that lets one run at a time sync a library: `{owner} {token}`, short TTL."""
    return f"{PREFIX}:lock:{library_id}"


def cancel_key(library_id: str) -> str:
    """A set of the owners (message ids, inline run ids) whose sync of the library is cancelled."""
    return f"{PREFIX}:cancel:{library_id}"


def pending_key(library_id: str) -> str:
    """`{message id} {queue}` of the library's queued or running sync (de-duplicates requests)."""
    return f"{PREFIX}:pending:{library_id}"


#: Dramatiq's own key prefix (RedisBroker's default namespace).
BROKER_NAMESPACE = "dramatiq"


def broker_queue_key(queue: str) -> str:
    """Dramatiq's list of a queue's ready message ids (`{queue}.DQ` is its delay queue)."""
    return f"{BROKER_NAMESPACE}:{queue}"


def broker_dead_letters_key(queue: str) -> str:
    """Dramatiq's sorted set of a queue's dead message ids, scored by when they died (ms);
    their bodies are in the hash of the same name + `.msgs`."""
    return f"{BROKER_NAMESPACE}:{queue}.XQ"


def broker_messages_key(queue: str) -> str:
    """Dramatiq's hash of a queue's live messages (queued, delayed or in a worker's hands)."""
    return f"{BROKER_NAMESPACE}:{queue}.msgs"


def broker_acks_key(broker_id: str, queue: str) -> str:
    """Dramatiq's set of the messages one broker (one per process) fetched from a queue and
    has not acked yet; its maintenance requeues them once that broker stops heartbeating."""
    return f"{BROKER_NAMESPACE}:__acks__.{broker_id}.{queue}"


#: JSON of the last tick a scheduler ran: when, what it queued (the dashboard shows it).
SCHEDULER_LAST_TICK_KEY = f"{PREFIX}:scheduler:last_tick"


def scheduler_tick_key(tick_id: str) -> str:
    """Taken by the first scheduler to run a tick: the others skip it."""
    return f"{PREFIX}:scheduler:tick:{tick_id}"


def rate_window_key(bucket: str) -> str:
    """Sorted set: one member per admitted unit of weight, scored by Redis server time (ms)."""
    return f"{PREFIX}:ratelimit:{bucket}:window"


def rate_backoff_key(bucket: str) -> str:
    """Exists while the platform told us to back off (a 429): nobody calls until it expires."""
    return f"{PREFIX}:ratelimit:{bucket}:backoff"


def rate_strikes_key(bucket: str) -> str:
    """Consecutive 429s, for doubling the backoff."""
    return f"{PREFIX}:ratelimit:{bucket}:strikes"


def rate_deferrals_prefix(bucket: str) -> str:
    """Prefix of the per-minute count of deferrals (`:{epoch minute}`, kept an hour or so)."""
    return f"{PREFIX}:ratelimit:{bucket}:deferred"


def rate_daily_prefix(bucket: str) -> str:
    """Prefix of the per-UTC-day counter; the Lua script appends the day number itself."""
    return f"{PREFIX}:ratelimit:{bucket}:day"


#: Sorted set of live worker processes (JSON: id, host, pid, queues), scored by the time of
#: their last heartbeat in ms; `sync-worker health` counts the recent ones.
WORKERS_KEY = f"{PREFIX}:workers"
