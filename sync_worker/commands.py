"""What each `sync-worker` subcommand does (the CLI imports this only to run one).

Kept apart from `cli` so `sync-worker --help` and argument errors import nothing heavy.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import logging
import os
import sys
import time
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import psycopg

from .actors import queue_enrichment
from .client import (
    cancel_sync,
    get_history,
    get_status,
    iter_progress,
    link_gog_library,
    register_steam_library,
    request_sync,
)
from .dead_letters import DeadLetter, discard, find_dead_letter, list_dead_letters, requeue
from .demo import demo_settings, run_demo
from .enrich.queueing import claim_age, max_age, queue_all
from .errors import (
    ConfigurationError,
    DatabaseUnavailable,
    Interrupted,
    MalformedMessage,
    SyncAlreadyRunning,
    SyncWorkerError,
    TransientError,
)
from .exit_codes import EXIT_OK, EXIT_SYNC_FAILED, EXIT_UNAVAILABLE
from .health import check_health
from .heartbeats import live_workers
from .infrastructure import infrastructure_error
from .platforms import gog
from .platforms.steam import SteamClient
from .progress_bar import SyncProgressBar
from .ratelimit import RateLimiter
from .runtime import Runtime, get_runtime, resolve_settings, set_runtime
from .schedule.scheduler import record_tick, run_tick
from .sending import serving, sync_queue
from .settings import get_settings, use_settings
from .simulator import SimulatorServer
from .store import libraries
from .store.catalog import enrichment_counts
from .store.migrations import migrate
from .sync.engine import SyncEngine
from .sync.outcome import SyncOutcome
from .sync.progress import ProgressPublisher
from .vault import Vault, new_key, reseal_all

CHECK_WITHIN_S = 2.0  # a command answers "unavailable" quickly; workers are more patient


class CommandFailed(Exception):
    """A command's one-line failure, with the library it concerns when there is one."""

    def __init__(self, error: SyncWorkerError, library_id: str | None = None) -> None:
        super().__init__(error.message)
        self.error = error
        self.library_id = library_id


def ready_runtime() -> Runtime:
    """The runtime, with both servers answering (a clear error within seconds otherwise)."""
    runtime = get_runtime()
    runtime.check(within_s=CHECK_WITHIN_S)
    return runtime


def cmd_migrate(args: argparse.Namespace) -> int:
    """Apply pending migrations (the Procfile's release phase): PostgreSQL only, no Redis."""
    settings = resolve_settings(get_settings(), need_redis=False)
    timeout_s = max(1, round(settings.db_connect_timeout_s))
    try:
        with psycopg.connect(settings.database_url or "", connect_timeout=timeout_s) as conn:
            applied = migrate(conn)
    except psycopg.OperationalError:
        # Nothing retries a release phase: say what is true for it.
        raise DatabaseUnavailable(
            "The database is unavailable; nothing was migrated. Run migrate again once it answers."
        ) from None
    print(f"applied: {', '.join(applied)}" if applied else "schema up to date")
    return EXIT_OK


def cmd_health(args: argparse.Namespace) -> int:
    """Check the servers, schema, queues and workers; never Steam. One JSON line on stdout;
    when unhealthy also one line on stderr and exit 1 (3 when a server is unreachable)."""
    settings = resolve_settings(get_settings())
    report = check_health(settings, min_workers=args.min_workers, max_backlog=args.max_backlog)
    print(json.dumps(report.to_dict()))
    if report.healthy:
        return EXIT_OK
    print(f"sync-worker: unhealthy: {report.reason}", file=sys.stderr)
    return EXIT_SYNC_FAILED if report.redis and report.postgres else EXIT_UNAVAILABLE


def cmd_dead_letters(args: argparse.Namespace) -> int:
    """List dead letters as JSON lines, or requeue or discard one, or all that match."""
    runtime = ready_runtime()
    before = datetime.now(UTC) - timedelta(seconds=args.older_than) if args.older_than else None
    filters = {"code": args.code, "actor": args.actor, "before": before}
    one = args.requeue or args.discard
    if one:
        found = find_dead_letter(runtime.redis, one)
        if found is None:
            raise MalformedMessage(f"no dead letter has message id {one!r}.")
        letters = [found]
    else:
        everything = args.requeue_all or args.purge  # every match, not a page
        letters = list_dead_letters(
            runtime.redis, limit=None if everything else args.limit, **filters
        )
        if not letters:
            print("no dead letters" + (" match" if any(filters.values()) else ""), file=sys.stderr)
            return EXIT_OK
    if not (args.requeue or args.requeue_all or args.discard or args.purge):
        for letter in letters:
            print(json.dumps(letter.to_dict()))
        return EXIT_OK
    if args.discard or args.purge:
        discard(runtime.redis, letters)
        for letter in letters:
            print(json.dumps({**_named(letter), "discarded": True}))
        return EXIT_OK
    results = requeue(runtime, letters)
    for letter, error in results:
        outcome = (
            {"requeued": True} if error is None else {"requeued": False, "error": error.to_dict()}
        )
        print(json.dumps({**_named(letter), **outcome}))
    return EXIT_OK if all(error is None for _, error in results) else EXIT_SYNC_FAILED


def _named(letter: DeadLetter) -> dict[str, str]:
    return {"message_id": letter.message_id, "redis_id": letter.redis_id, "actor": letter.actor}


def cmd_scheduler(args: argparse.Namespace) -> int:
    """periodiq on the worker module, stopped cleanly by SIGTERM or Ctrl-C (periodiq alone
    exits 1 on Ctrl-C and dies of SIGTERM, which platforms and honcho report as failures)."""
    import periodiq  # this command alone loads the scheduler

    from . import worker  # noqa: F401  # boots: configuration and servers checked, exit 3

    try:
        return int(
            periodiq.main(periodiq.make_argument_parser().parse_args(["sync_worker.worker"]))
        )
    except KeyboardInterrupt:  # Ctrl-C, and SIGTERM (`cli.main` turns it into one)
        print("sync-worker: scheduler stopped", file=sys.stderr, flush=True)
        return EXIT_OK


def cmd_simulator(args: argparse.Namespace) -> int:
    """Serve the Steam simulator in the foreground."""
    try:
        server = SimulatorServer(host=args.host, port=args.port, api_key=args.api_key)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        raise ConfigurationError(
            f"port {args.port} is already in use; choose another with --port."
        ) from None
    print(f"Steam simulator on {server.url} (key {args.api_key!r}); Ctrl-C stops it", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        server.stop()
    return EXIT_OK


def cmd_sync(args: argparse.Namespace) -> int:
    """Register the account if needed and run one sync to completion in this process."""
    runtime = ready_runtime()
    if runtime.settings.steam_api_key is None:  # before the library is registered or touched
        raise ConfigurationError("STEAM_API_KEY is not set: no sync can run.")
    bar = SyncProgressBar(sys.stderr, interactive=sys.stderr.isatty() and not args.json)
    if bar.interactive:
        if "LOG_LEVEL" not in os.environ:
            # The bar says what INFO lines would, and they would break its line.
            logging.getLogger().setLevel(logging.WARNING)
        for handler in logging.getLogger().handlers:  # a log line clears the bar first
            handler.addFilter(bar.before_log)
    # Same buckets as the workers; inline there is no queue to step back into, so wait.
    limiter = RateLimiter.from_settings(
        runtime.redis, runtime.settings, max_wait_s=None, on_wait=bar.waiting
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
            on_event=bar.event,
        )
        try:
            outcome = _sync_when_free(engine, library_id)
        finally:
            bar.close()
    except (SyncWorkerError, KeyboardInterrupt) as exc:
        error = _as_error(exc)
        if library_id is not None and isinstance(exc, TransientError | KeyboardInterrupt):
            # Nobody retries an inline run: its last event must say how it ended.
            ProgressPublisher(
                runtime.redis, library_id, ttl_s=runtime.settings.progress_ttl_s
            ).final("failed", error)
        raise CommandFailed(error, library_id) from None
    _report_outcome(args, outcome)
    if outcome.status != "completed":
        return EXIT_SYNC_FAILED
    if outcome.new_games:  # for the workers serving `low`, whenever they run
        queue_enrichment(outcome.library_id)
    return EXIT_OK


def _sync_when_free(engine: SyncEngine, library_id: str) -> SyncOutcome:
    """Sync now; while another run holds the library, wait for it (a held lease means later)."""
    while True:
        try:
            return engine.sync(library_id, "manual")
        except SyncAlreadyRunning as exc:
            print(
                "waiting for the sync already running for this library to finish",
                file=sys.stderr,
                flush=True,
            )
            time.sleep(max(exc.retry_after_s, 0.2))


def cmd_enqueue(args: argparse.Namespace) -> int:
    """Register the account if needed and queue a sync for the workers."""
    runtime = ready_runtime()
    library_id = register_steam_library(args.steam_id)
    message_id = request_sync(library_id, force=args.force, sync_type=args.type)
    queue = sync_queue(args.type)
    workers = serving(live_workers(runtime.redis), queue)
    print(
        json.dumps(
            {"library_id": library_id, "message_id": message_id, "queue": queue, "workers": workers}
        )
    )
    if not workers:
        print(
            f"sync-worker: no live worker with a Steam key serves queue {queue}:"
            " the sync waits until one starts",
            file=sys.stderr,
        )
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    """Print a library's latest progress event; with --follow, every event until a final one."""
    ready_runtime()
    current = get_status(args.library_id)  # UnknownLibrary before anything
    if not args.follow:
        print(json.dumps(current))
        return EXIT_OK
    bar = SyncProgressBar(sys.stderr, interactive=sys.stderr.isatty())
    last = current
    try:
        for event in iter_progress(current["library_id"]):
            last = event
            if bar.interactive:
                bar.event(event)
            else:
                print(json.dumps(event), flush=True)
    finally:
        bar.close()
    if bar.interactive:
        print(f"{last['status']}: {last.get('message', '')}")
    return EXIT_OK if last["status"] == "completed" else EXIT_SYNC_FAILED


def cmd_history(args: argparse.Namespace) -> int:
    """Print a library's runs, newest first."""
    ready_runtime()
    for run in get_history(args.library_id, limit=args.limit):
        print(json.dumps(run))
    return EXIT_OK


def cmd_cancel(args: argparse.Namespace) -> int:
    """Cancel a library's queued or running sync."""
    ready_runtime()
    if cancel_sync(args.library_id):
        print(
            "cancellation requested: a queued sync is skipped, a running one stops at its next batch"
        )
    else:
        print("nothing to cancel: no sync of this library is queued or running")
    return EXIT_OK


def cmd_schedule(args: argparse.Namespace) -> int:
    """Run one auto-sync tick now (what the scheduler process does on AUTO_SYNC_CRON)."""
    runtime = ready_runtime()
    now = datetime.now(UTC)
    tick_id = f"by-hand-{now.isoformat()}"
    result = run_tick(runtime, now, tick_id)
    record_tick(runtime, {"tick": tick_id, "at": now, **asdict(result)})  # the dashboard's
    print(json.dumps(asdict(result)))
    return EXIT_OK


def cmd_enrich(args: argparse.Namespace) -> int:
    """Queue store enrichment by hand, or show how far it has got."""
    runtime = ready_runtime()
    if args.status:
        with runtime.pool.connection() as conn:
            counts = enrichment_counts(conn, "steam", max_age(runtime), claim_age(runtime))
        print(json.dumps(counts))
        return EXIT_OK
    queued = queue_all(runtime, include_stale=args.all_stale)
    print(json.dumps({"queued": queued}))
    return EXIT_OK


def cmd_link(args: argparse.Namespace) -> int:
    """Link a GOG account: the login URL, then the code (from --code or standard input)."""
    runtime = ready_runtime()
    Vault.from_settings(runtime.settings)  # refused in production without a key: no code spent
    code = args.code
    if code is None:
        print(
            f"Log in to GOG in a browser:\n  {gog.login_url(runtime.settings, args.redirect_uri)}\n"
            "then paste the address the login ends on (or just its code):",
            file=sys.stderr,
            flush=True,
        )
        code = sys.stdin.readline()
    code = _login_code(code)
    library_id = link_gog_library(code, redirect_uri=args.redirect_uri)
    print(json.dumps({"library_id": library_id, "platform": "gog"}))
    return EXIT_OK


def _login_code(text: str) -> str:
    """The code in what was pasted: the redirect's whole address, or the code alone."""
    text = text.strip()
    if "code=" in text:
        found = parse_qs(urlsplit(text).query).get("code")
        text = found[0] if found else ""
    if not text:
        raise MalformedMessage("no GOG login code was given.")
    return text


def cmd_credentials(args: argparse.Namespace) -> int:
    """Print a new Fernet key, or re-seal every stored token with CREDENTIALS_KEY's first."""
    if args.action == "new-key":
        print(new_key())
        return EXIT_OK
    runtime = ready_runtime()
    print(json.dumps({"resealed": reseal_all(runtime.pool, Vault.from_settings(runtime.settings))}))
    return EXIT_OK


def cmd_dashboard(args: argparse.Namespace) -> int:
    """Serve the operator's dashboard in the foreground; SIGTERM or Ctrl-C stop it."""
    from . import dashboard  # the [dashboard] extra: only this command loads it

    dashboard.check_access(get_settings(), args.host)  # before any server is touched
    if args.demo:
        settings = demo_settings(get_settings())
        use_settings(settings)
        set_runtime(Runtime(settings))
    settings = resolve_settings(get_settings())
    try:
        import uvicorn

        from .dashboard.web import create_app
    except ImportError:
        raise ConfigurationError(
            "the dashboard needs its extra: pip install 'sync-worker[dashboard]'."
        ) from None
    sock = dashboard.listen(args.host, args.port)
    app = create_app(ready_runtime())
    host = f"[{args.host}]" if ":" in args.host else args.host
    access = "open to anyone on this machine" if settings.dashboard_token is None else "token"
    print(f"dashboard on http://{host}:{args.port} ({access}); Ctrl-C stops it", flush=True)
    config = uvicorn.Config(
        app,
        log_config=None,  # our logging: one format, secrets masked
        access_log=False,
        timeout_graceful_shutdown=dashboard.GRACEFUL_STOP_S,
    )
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises the signal it stopped on
        uvicorn.Server(config).run(sockets=[sock])
    print("sync-worker: dashboard stopped", file=sys.stderr, flush=True)
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    """Real syncs through real Dramatiq messages on embedded servers and the simulator."""
    return run_demo()


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


def _as_error(exc: BaseException) -> SyncWorkerError:
    if isinstance(exc, SyncWorkerError):
        return exc
    if isinstance(exc, KeyboardInterrupt):
        return Interrupted()
    return infrastructure_error(exc)
