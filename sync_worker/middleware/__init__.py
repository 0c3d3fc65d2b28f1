"""Our Dramatiq middleware, one per file; their order is decided in `sync_worker.broker`."""

from .cancellation import Cancellation
from .log_context import LogContext
from .progress import Progress
from .rate_limit import RateLimit
from .retries import Retries

__all__ = ["Cancellation", "LogContext", "Progress", "RateLimit", "Retries"]
