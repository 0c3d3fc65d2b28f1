"""The `sync-worker` command: migrate, simulator, sync, demo."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from .errors import SyncWorkerError
from .logs import configure_logging
from .platforms.steam import SteamClient
from .runtime import get_runtime
from .settings import get_settings
from .store import libraries
from .store.migrations import migrate
from .sync.engine import SyncEngine, SyncOutcome


def cmd_migrate(args: argparse.Namespace) -> int:
    """Apply pending migrations (the Procfile's release phase)."""
    with get_runtime().pool.connection() as conn:
        applied = migrate(conn)
    print(f"applied: {', '.join(applied)}" if applied else "schema up to date")
    return 0


def cmd_simulator(args: argparse.Namespace) -> int:
    """Serve the Steam simulator in the foreground."""
    from .simulator import SimulatorServer

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
    steam = SteamClient(runtime.settings)
    library_id: str | None = None
    try:
        steam_id = steam.resolve_identity(args.steam_id)
        with runtime.pool.connection() as conn:
            library_id = libraries.find_library(
                conn, "steam", steam_id
            ) or libraries.register_library(conn, "steam", steam_id)
        engine = SyncEngine(
            runtime.settings, runtime.redis, runtime.pool, lambda: SteamClient(runtime.settings)
        )
        outcome = engine.sync(library_id, "manual")
    except SyncWorkerError as exc:
        return _report_error(args, library_id, exc)
    _report_outcome(args, outcome)
    return 0 if outcome.status == "completed" else 1


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
    from .demo import run_demo

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
