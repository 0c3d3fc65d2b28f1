"""The Dramatiq entry point: `dramatiq sync_worker.worker --queues ...` (see the Procfile)."""

from __future__ import annotations

from .broker import get_broker
from .logs import configure_logging
from .runtime import get_runtime

configure_logging(get_runtime().settings)
broker = get_broker()
