"""The `sync-worker` command: migrate, simulator, sync, enqueue, status, cancel, schedule,
enrich, demo.

Exit codes: 0 done; 1 a sync ended other than completed; 2 bad usage or input;
3 infrastructure or configuration unavailable; 130 interrupted (Ctrl-C, SIGTERM).
Every failure is one line on stderr, `sync-worker: <code>: <sentence>`; commands that
print JSON print the error as JSON on stdout too.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Sequence
from types import FrameType
from typing import Any

from .errors import (
    ConfigurationError,
    DatabaseUnavailable,
    Interrupted,
    InvalidSteamId,
    MalformedMessage,
    RedisUnavailable,
    SyncWorkerError,
    UnknownLibrary,
    VanityNotFound,
)

EXIT_OK, EXIT_SYNC_FAILED, EXIT_BAD_INPUT, EXIT_UNAVAILABLE, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
BAD_INPUT_ERRORS = (InvalidSteamId, VanityNotFound, UnknownLibrary, MalformedMessage)
UNAVAILABLE_ERRORS = (RedisUnavailable, DatabaseUnavailable, ConfigurationError)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and --help)."""
    parser = argparse.ArgumentParser(prog="sync-worker", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("migrate", help="apply database migrations")

    sim = sub.add_parser("simulator", help="serve the Steam simulator")
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=8765)
    sim.add_argument("--api-key", default="sim-key", help="the key the simulator accepts")

    sync = sub.add_parser("sync", help="sync one Steam library now, in this process")
    sync.add_argument("--steam-id", required=True, help="SteamID64, profile URL or custom URL name")
    sync.add_argument("--json", action="store_true", help="print one JSON object")

    enqueue = sub.add_parser("enqueue", help="queue a sync for the workers")
    enqueue.add_argument(
        "--steam-id", required=True, help="SteamID64, profile URL or custom URL name"
    )
    enqueue.add_argument("--type", choices=["manual", "scheduled", "auto"], default="manual")
    enqueue.add_argument(
        "--force", action="store_true", help="queue even if one is queued or running"
    )
    enqueue.set_defaults(json=True)

    status = sub.add_parser("status", help="a library's latest progress event, as JSON")
    status.add_argument("--library-id", required=True)
    status.set_defaults(json=True)

    cancel = sub.add_parser("cancel", help="cancel a library's queued or running sync")
    cancel.add_argument("--library-id", required=True)

    sub.add_parser(
        "schedule", help="queue the libraries due for an auto-sync now (one scheduler tick)"
    ).set_defaults(json=True)

    enrich = sub.add_parser(
        "enrich", help="queue store details for apps that have none, or show progress"
    )
    enrich.add_argument(
        "--all-stale", action="store_true", help="also refresh details past ENRICH_MAX_AGE_DAYS"
    )
    enrich.add_argument(
        "--status",
        action="store_true",
        help="print counts: enriched, unavailable, stale, pending, not_queued",
    )
    enrich.set_defaults(json=True)

    sub.add_parser("demo", help="sync simulated libraries end to end")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `sync-worker` script."""
    args = build_parser().parse_args(argv)
    # SIGTERM (a supervisor, a terminal closing) stops an inline sync like Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)
    # Imported only now: `--help` and usage errors never pay for Dramatiq, psycopg, pydantic.
    from . import commands
    from .infrastructure import INFRASTRUCTURE_ERRORS, infrastructure_error
    from .logs import configure_logging
    from .settings import get_settings

    try:
        configure_logging(get_settings())
        return int(getattr(commands, f"cmd_{args.command}")(args))
    except commands.CommandFailed as failure:
        return _fail(args, failure.error, failure.library_id)
    except SyncWorkerError as exc:
        return _fail(args, exc)
    except INFRASTRUCTURE_ERRORS as exc:
        return _fail(args, infrastructure_error(exc))
    except KeyboardInterrupt:
        return _fail(args, Interrupted())


def _interrupt(signum: int, frame: FrameType | None) -> Any:
    raise KeyboardInterrupt


def _fail(args: argparse.Namespace, error: SyncWorkerError, library_id: str | None = None) -> int:
    """Print the one-line failure (and its JSON form); return the exit code for it."""
    if getattr(args, "json", False):
        print(json.dumps({"library_id": library_id, "status": "failed", "error": error.to_dict()}))
    print(f"sync-worker: {error.code}: {error.message}", file=sys.stderr)
    if isinstance(error, Interrupted):
        return EXIT_INTERRUPTED
    if isinstance(error, BAD_INPUT_ERRORS):
        return EXIT_BAD_INPUT
    if isinstance(error, UNAVAILABLE_ERRORS):
        return EXIT_UNAVAILABLE
    return EXIT_SYNC_FAILED


if __name__ == "__main__":
    sys.exit(main())
