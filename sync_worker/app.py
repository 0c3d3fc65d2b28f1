"""The worker application: this process's broker, with our middleware, the ops server and
the actors declared on it. Built once, on first use, by whatever processes messages: the
`dramatiq` entry point (`worker`), the demo's in-process workers, the tests."""

from __future__ import annotations

import threading

from .actors import declare_actors
from .broker import SyncBroker, create_broker
from .ops_server import serve
from .runtime import get_runtime

_lock = threading.Lock()
_broker: SyncBroker | None = None


def get_broker() -> SyncBroker:
    """This process's worker broker, built on first use, with the actors declared.

    It is not installed as Dramatiq's global broker: the worker entry point does that,
    for Dramatiq's and periodiq's CLIs.
    """
    global _broker
    with _lock:
        if _broker is None:
            runtime = get_runtime()
            forks = [serve] if runtime.settings.metrics_port else []
            broker = create_broker(runtime.settings, runtime.redis, forks)
            declare_actors(broker, runtime.settings)
            _broker = broker
        return _broker


def reset_broker() -> None:
    """Forget the process's broker (tests switch Redis databases between sessions)."""
    global _broker
    with _lock:
        _broker = None
