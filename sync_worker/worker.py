"""The Dramatiq entry point: `dramatiq sync_worker.worker --queues ...` (see the Procfile).

Importing it boots the worker process. Configuration and both servers are checked
first: a worker whose Redis or PostgreSQL is unreachable, or a production worker
without a Steam key or a CREDENTIALS_KEY (GOG's tokens), exits with one line and status 3 instead of reporting ready and
failing every job (a platform then restarts it with back-off).
"""

from __future__ import annotations

import sys

import dramatiq

from .app import get_broker
from .broker import SyncBroker
from .errors import ConfigurationError, SyncWorkerError
from .exit_codes import EXIT_UNAVAILABLE
from .logs import configure_logging
from .runtime import get_runtime
from .schedule.scheduler import auto_sync_schedule
from .settings import get_settings
from .vault import Vault

BOOT_CHECK_S = 5.0  # a server that does not answer within this is reported as down


def boot() -> SyncBroker:
    """Check configuration and servers, then build the broker with the actors declared."""
    try:
        settings = get_settings()
        configure_logging(settings)
        if settings.is_production and settings.steam_api_key is None:
            raise ConfigurationError("STEAM_API_KEY must be set in production.")
        Vault.from_settings(settings)  # GOG's tokens: CREDENTIALS_KEY, valid, in production
        auto_sync_schedule(settings)
        get_runtime().check(within_s=BOOT_CHECK_S)
    except SyncWorkerError as exc:
        print(f"sync-worker: {exc.code}: {exc.message}", file=sys.stderr, flush=True)
        raise SystemExit(EXIT_UNAVAILABLE) from None
    broker = get_broker()
    dramatiq.set_broker(broker)  # how `dramatiq sync_worker.worker` and periodiq find it
    return broker


broker = boot()
