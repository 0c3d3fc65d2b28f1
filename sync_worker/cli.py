"""The `sync-worker` command: migrate, simulator, sync, enqueue, status, cancel, demo."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from .client import cancel_sync, get_status, register_steam_library, request_sync
from .demo import run_demo
from .errors import SyncWorkerError, TransientError
from .logs import configure_logging
from .platforms.steam import SteamClient
from .ratelimit import Admission, RateLimiter
from .runtime import get_runtime
from .settings import get_settings
from .simulator import SimulatorServer
from .store import libraries
from .store.migrations import migrate
from .sync.engine import SyncEngine, SyncOutcome
from .sync.progress import publish_lifecycle, utc_now_iso


def cmd_migrate(args: argparse.Namespace) -> int:
    """Apply pending migrations (the Procfile's release phase)."""
    with get_runtime().pool.connection() as conn:
        applied = migrate(conn)
    print(f"applied: {', '.join(applied)}" if applied else "schema up to date")
    return 0


def cmd_simulator(args: argparse.Namespace) -> int:
    """Serve the Steam simulator in the foreground."""
    server = SimulatorServer(host=args.host, port=args.port, api_key=args.api_key)
    print(f"Steam simulator on {server.url} (key {args.api_key!r}); Ctrl-C stops it", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        server.stop()
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    """Register the account if needed and run one sync to completion in this process."""
    runtime = get_runtime()
    if not get_settings().database_url:  # embedded database: make it ready to use
        with runtime.pool.connection() as conn:
            migrate(conn)
    # Same buckets as the workers; inline there is no queue to step back into, so wait.
    limiter = RateLimiter.from_settings(
        runtime.redis, runtime.settings, max_wait_s=None, on_wait=_say_waiting
    )
    steam = SteamClient(runtime.settings, gate=limiter)
    library_id: str | None = None
    try:
        steam_id = steam.resolve_identity(args.steam_id)
        with runtime.pool.connection() as conn:
            library_id = libraries.find_library(conn, "steam", steam_id)
            if library_id is None:
                library_id = libraries.register_library(conn, "steam", steam_id)
        engine = SyncEngine(
            runtime.settings,
            runtime.redis,
            runtime.pool,
            lambda: SteamClient(runtime.settings, gate=limiter),
        )
        outcome = engine.sync(library_id, "manual")
    except SyncWorkerError as exc:
        if library_id is not None and isinstance(exc, TransientError):
            # Nobody retries an inline run: its last event must say it failed.
            publish_lifecycle(
                runtime,
                library_id,
                "failed",
                exc.message,
                error=exc.to_dict(),
                completed_at=utc_now_iso(),
            )
        return _report_error(args, library_id, exc)
    _report_outcome(args, outcome)
    return 0 if outcome.status == "completed" else 1


def _say_waiting(bucket: str, admission: Admission) -> None:
    used = (
        "backing off after a 429"
        if admission.used < 0
        else f"{admission.used}/{admission.limit} used"
    )
    print(
        f"waiting {admission.retry_after_s:.1f} s for {bucket} budget ({used})",
        file=sys.stderr,
        flush=True,
    )


def cmd_enqueue(args: argparse.Namespace) -> int:
    """Register the account if needed and queue a sync for the workers."""
    library_id = register_steam_library(args.steam_id)
    message_id = request_sync(library_id, force=args.force, sync_type=args.type)
    print(json.dumps({"library_id": library_id, "message_id": message_id}))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """Print a library's latest progress event."""
    print(json.dumps(get_status(args.library_id)))
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    """Cancel a library's queued or running sync."""
    if cancel_sync(args.library_id):
        print(
            "cancellation requested: a queued sync is skipped, a running one stops at its next batch"
        )
    else:
        print("nothing to cancel: no sync of this library is queued or running")
    return 0


def _report_outcome(args: argparse.Namespace, outcome: SyncOutcome) -> None:
    keys = (
        "library_id",
        "status",
        "total_games",
        "new_games",
        "updated_games",
        "removed_games",
        "api_calls",
    )
    summary = {k: getattr(outcome, k) for k in keys}
    if outcome.error:
        summary["error"] = outcome.error
    if args.json:
        print(json.dumps(summary))
        return
    print(
        f"{outcome.status}: {outcome.total_games} games ({outcome.new_games} new, "
        f"{outcome.updated_games} updated, {outcome.removed_games} removed), "
        f"{outcome.api_calls} Steam call(s); library {outcome.library_id}"
    )
    if outcome.error:
        print(f"  {outcome.error['code']}: {outcome.error['message']}")


def _report_error(args: argparse.Namespace, library_id: str | None, exc: SyncWorkerError) -> int:
    if args.json:
        print(json.dumps({"library_id": library_id, "status": "failed", "error": exc.to_dict()}))
    else:
        print(f"failed: {exc.code}: {exc.message}", file=sys.stderr)
    return 1


def cmd_demo(args: argparse.Namespace) -> int:
    """Real syncs through real Dramatiq messages on embedded servers and the simulator."""
    return run_demo()


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and --help)."""
    parser = argparse.ArgumentParser(prog="sync-worker", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("migrate", help="apply database migrations").set_defaults(func=cmd_migrate)

    sim = sub.add_parser("simulator", help="serve the Steam simulator")
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=8765)
    sim.add_argument("--api-key", default="sim-key", help="the key the simulator accepts")
    sim.set_defaults(func=cmd_simulator)

    sync = sub.add_parser("sync", help="sync one Steam library now, in this process")
    sync.add_argument("--steam-id", required=True, help="SteamID64, profile URL or custom URL name")
    sync.add_argument("--json", action="store_true", help="print one JSON object")
    sync.set_defaults(func=cmd_sync)

    enqueue = sub.add_parser("enqueue", help="queue a sync for the workers")
    enqueue.add_argument(
        "--steam-id", required=True, help="SteamID64, profile URL or custom URL name"
    )
    enqueue.add_argument("--type", choices=["manual", "scheduled", "auto"], default="manual")
    enqueue.add_argument(
        "--force", action="store_true", help="queue even if one is queued or running"
    )
    enqueue.set_defaults(func=cmd_enqueue)

    status = sub.add_parser("status", help="a library's latest progress event, as JSON")
    status.add_argument("--library-id", required=True)
    status.set_defaults(func=cmd_status)

    cancel = sub.add_parser("cancel", help="cancel a library's queued or running sync")
    cancel.add_argument("--library-id", required=True)
    cancel.set_defaults(func=cmd_cancel)

    sub.add_parser("demo", help="sync simulated libraries end to end").set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `sync-worker` script."""
    args = build_parser().parse_args(argv)
    try:
        configure_logging(get_settings())
        return int(args.func(args))
    except SyncWorkerError as exc:
        print(f"sync-worker: {exc.code}: {exc.message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
