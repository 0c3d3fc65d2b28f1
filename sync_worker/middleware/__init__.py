"""Our Dramatiq middleware, one per file; their order is decided in `sync_worker.broker`."""

from .cancellation import Cancellation
from .deduplication import Deduplication
from .deferrals import Deferrals
from .log_context import LogContext
from .observability import Observability
from .progress import Progress
from .retries import Retries
from .shutdown import Shutdown

__all__ = [
    "Cancellation",
    "Deduplication",
    "Deferrals",
    "LogContext",
    "Observability",
    "Progress",
    "Retries",
    "Shutdown",
]
