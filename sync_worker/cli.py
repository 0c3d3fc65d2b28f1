"""sync-worker: keeps users' Steam libraries mirrored in PostgreSQL, on Dramatiq workers.

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

from . import __version__
from .errors import Interrupted, SyncWorkerError
from .exit_codes import exit_code_for

EPILOG = """\
environment (all settings: docs/operations.md; a .env file is read too):
  DATABASE_URL        PostgreSQL; unset outside production: embedded, in SYNC_WORKER_HOME
  REDIS_URL           Redis (redis://, rediss://, unix://); unset: embedded likewise
  REDIS_TLS_VERIFY    false accepts a self-signed rediss:// certificate (Heroku Redis)
  STEAM_API_KEY       required for syncs and registrations; never printed
  STEAM_API_BASE_URL  point at `sync-worker simulator` to sync without a key
  SYNC_WORKER_HOME    embedded servers' data (default ~/.local/share/sync-worker)
  SYNC_WORKER_ENV     production: missing URLs are errors (any Heroku dyno counts)
  CREDENTIALS_KEY     Fernet key(s) sealing GOG tokens; required in production for GOG
  DASHBOARD_TOKEN     the dashboard's operator token (DASHBOARD_READONLY_TOKEN: view only)
  LOG_LEVEL, LOG_FORMAT   INFO / json or console

exit status:
  0 done; 1 a sync ended other than completed, or health found a problem; 2 bad usage
  or input; 3 Redis, PostgreSQL or configuration unavailable; 130 interrupted.
"""

STEAM_ID_HELP = "SteamID64, profile URL or custom URL name"
GOG_REDIRECT_URI = "https://embed.gog.com/on_login_success?origin=client"  # platforms.gog
LIBRARY_ID_HELP = "the library's id (a UUID, as `sync` and `enqueue` print it)"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and --help)."""
    parser = argparse.ArgumentParser(
        prog="sync-worker",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, summary: str, *, json_output: bool = False) -> argparse.ArgumentParser:
        cmd = sub.add_parser(
            name,
            help=summary,
            description=summary,
            epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if json_output:
            cmd.set_defaults(json=True)
        return cmd

    command("migrate", "apply pending database migrations (the release phase); idempotent")

    sim = command("simulator", "serve the Steam simulator (a fake Steam, for the demo and tests)")
    sim.add_argument("--host", default="127.0.0.1", help="address to listen on (%(default)s)")
    sim.add_argument("--port", type=int, default=8765, help="port to listen on (%(default)s)")
    sim.add_argument("--api-key", default="sim-key", help="the key it accepts (%(default)s)")

    sync = command("sync", "sync one Steam library now, in this process; exit 0 only if completed")
    sync.add_argument("--steam-id", required=True, help=STEAM_ID_HELP)
    sync.add_argument(
        "--json", action="store_true", help="print one JSON summary (no progress bar)"
    )

    enqueue = command("enqueue", "queue a sync for the workers (de-duplicated)", json_output=True)
    enqueue.add_argument("--steam-id", required=True, help=STEAM_ID_HELP)
    enqueue.add_argument(
        "--type",
        choices=["manual", "scheduled", "auto"],
        default="manual",
        help="manual goes to the `high` queue, the others to `default` (%(default)s)",
    )
    enqueue.add_argument(
        "--force", action="store_true", help="queue even if a sync is already queued or running"
    )

    status = command("status", "print a library's latest progress event, as JSON", json_output=True)
    status.add_argument("--library-id", required=True, help=LIBRARY_ID_HELP)
    status.add_argument(
        "--follow",
        action="store_true",
        help="follow its progress until a final event: the bar on a terminal, JSON lines"
        " otherwise; exit 0 only if it completed",
    )

    history = command("history", "a library's sync runs, newest first, as JSON lines")
    history.add_argument("--library-id", required=True, help=LIBRARY_ID_HELP)
    history.add_argument(
        "--limit", type=int, default=20, help="list at most this many runs (%(default)s)"
    )

    cancel = command("cancel", "cancel a library's queued or running sync")
    cancel.add_argument("--library-id", required=True, help=LIBRARY_ID_HELP)

    command(
        "schedule",
        "queue the libraries due for an auto-sync now (one scheduler tick)",
        json_output=True,
    )

    enrich = command(
        "enrich", "queue store details for apps that have none, or show progress", json_output=True
    )
    enrich.add_argument(
        "--all-stale", action="store_true", help="also refresh details past ENRICH_MAX_AGE_DAYS"
    )
    enrich.add_argument(
        "--status",
        action="store_true",
        help="print counts instead: enriched, unavailable, stale, pending, not_queued",
    )

    health = command(
        "health",
        "check Redis, PostgreSQL, the schema, queues, dead letters and live workers "
        "(never Steam); exit 1 with one line when unhealthy",
        json_output=True,
    )
    health.add_argument(
        "--min-workers",
        type=int,
        default=0,
        metavar="N",
        help="unhealthy unless N live workers serve each queue (%(default)s)",
    )
    health.add_argument(
        "--max-backlog",
        type=int,
        metavar="N",
        help="unhealthy when a queue holds more than N ready messages",
    )

    letters = command(
        "dead-letters",
        "list the messages given up on, with their error; --requeue sends them again",
        json_output=True,
    )
    which = letters.add_mutually_exclusive_group()
    which.add_argument("--requeue", metavar="MESSAGE_ID", help="requeue this dead letter")
    which.add_argument(
        "--requeue-all", action="store_true", help="requeue every dead letter (matching)"
    )
    which.add_argument("--discard", metavar="MESSAGE_ID", help="remove this dead letter")
    which.add_argument(
        "--purge", action="store_true", help="remove every dead letter (matching the filters)"
    )
    letters.add_argument("--code", help="only letters whose last error has this code")
    letters.add_argument("--actor", help="only letters of this actor (sync_library, ...)")
    letters.add_argument(
        "--older-than",
        type=duration,
        metavar="DURATION",
        help="only letters dead longer than this (90s, 30m, 12h, 7d)",
    )
    letters.add_argument(
        "--limit", type=int, default=100, help="list at most this many (%(default)s)"
    )

    command(
        "scheduler",
        "run the auto-sync scheduler (periodiq) in the foreground, exactly one per deployment;"
        " SIGTERM or Ctrl-C stop it (exit 0)",
    )

    link = command(
        "link",
        "link a GOG account from a terminal: prints GOG's login URL, reads the address the"
        " login ends on (or its code); prints the library id as JSON",
        json_output=True,
    )
    link.add_argument("platform", choices=["gog"], help="the platform (gog)")
    link.add_argument("--code", help="the login code (else it is read from standard input)")
    link.add_argument(
        "--redirect-uri",
        default=GOG_REDIRECT_URI,
        help="the redirect URI the login used (%(default)s)",
    )

    keys_cmd = command(
        "credentials",
        "the keys that seal linked accounts' tokens (CREDENTIALS_KEY): print a new key, or"
        " re-seal every stored token with the first key",
        json_output=True,
    )
    keys_cmd.add_argument(
        "action",
        choices=["new-key", "rotate-key"],
        help="new-key prints a fresh key; rotate-key re-seals every stored token",
    )

    board = command(
        "dashboard",
        "serve the operator's live dashboard (syncs, queues, budget, schedule, dead letters);"
        " DASHBOARD_TOKEN required in production or off loopback",
    )
    board.add_argument("--host", default="127.0.0.1", help="address to listen on (%(default)s)")
    board.add_argument("--port", type=int, default=8000, help="port to listen on (%(default)s)")
    board.add_argument(
        "--demo", action="store_true", help="show what the last `sync-worker demo` left"
    )

    command("demo", "real syncs end to end on embedded servers and the simulator")
    return parser


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(text: str) -> float:
    """Seconds in a duration such as `90s`, `30m`, `12h` or `7d` (argparse type)."""
    number, unit = text[:-1], text[-1:].lower()
    if unit not in _UNITS or not number.isascii() or not number.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration such as 90s, 30m, 12h or 7d")
    return int(number) * _UNITS[unit]


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
        return int(getattr(commands, f"cmd_{args.command.replace('-', '_')}")(args))
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
        # A sync answers how the library's sync ended; another command, its error (and
        # the library it concerns, when there is one).
        answer: dict[str, Any] = {"error": error.to_dict()}
        if args.command == "sync":
            answer = {"library_id": library_id, "status": "failed", **answer}
        elif library_id is not None:
            answer = {"library_id": library_id, **answer}
        print(json.dumps(answer))
    print(f"sync-worker: {error.code}: {error.message}", file=sys.stderr)
    return exit_code_for(error)


if __name__ == "__main__":
    sys.exit(main())
