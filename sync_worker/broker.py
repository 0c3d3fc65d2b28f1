"""The one place the Dramatiq broker is built: queues, middleware order, Redis tuning."""

from __future__ import annotations

import threading

import dramatiq
from dramatiq.brokers.redis import RedisBroker

#: Priority is by queue, each served by its own processes (see the Procfile):
#: Dramatiq on Redis has no priority across queues.
QUEUE_HIGH = "high"  # manual syncs: a user is watching
QUEUE_DEFAULT = "default"  # scheduled / auto syncs
QUEUE_LOW = "low"  # enrichment
QUEUES = (QUEUE_HIGH, QUEUE_DEFAULT, QUEUE_LOW)

# A dead worker's messages come back only in a maintenance pass, once its heartbeat is
# older than this: 60 s (Dramatiq's default) balances quick recovery against false alarms.
HEARTBEAT_TIMEOUT_MS = 60_000
# Run maintenance on ~1 in 100 fetches (default 1 in 1000) so recovery happens in seconds.
MAINTENANCE_CHANCE = 10  # per mille


def create_broker(redis_url: str) -> RedisBroker:
    """A Redis broker with our queues declared (middleware: Dramatiq's defaults for now)."""
    broker = RedisBroker(  # type: ignore[no-untyped-call]
        url=redis_url,
        heartbeat_timeout=HEARTBEAT_TIMEOUT_MS,
        maintenance_chance=MAINTENANCE_CHANCE,
    )
    for queue in QUEUES:
        broker.declare_queue(queue)
    return broker


_lock = threading.Lock()
_broker: RedisBroker | None = None


def get_broker() -> RedisBroker:
    """This process's broker, built on first use, installed globally, with the actors declared."""
    global _broker
    with _lock:
        if _broker is None:
            from . import actors  # actors need a broker to bind to; built just above them
            from .runtime import get_runtime

            redis_url = get_runtime().settings.redis_url
            assert redis_url is not None
            broker = create_broker(redis_url)
            dramatiq.set_broker(broker)
            actors.declare_actors(broker)
            _broker = broker
        return _broker


def reset_broker() -> None:
    """Forget the process's broker (tests switch Redis databases between sessions)."""
    global _broker
    with _lock:
        if _broker is not None:
            _broker.close()
        _broker = None
