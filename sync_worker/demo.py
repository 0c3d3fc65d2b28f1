"""`sync-worker demo`: real syncs through real Dramatiq messages, no key and no network.

Embedded PostgreSQL + Redis, the simulator (Steam and GOG) on a local port, an in-process worker
on every queue, all in a sandbox: database `sync_worker_demo` and Redis db 2, emptied
on every run. The simulator gets generous budgets so the story fits in seconds.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import dramatiq
import psycopg
import requests
from psycopg.rows import dict_row

from . import client
from .app import get_broker, reset_broker
from .enrich.queueing import claim_age, max_age
from .errors import ConfigurationError
from .local import EmbeddedServers
from .logs import configure_logging
from .platforms.gog import login_url
from .runtime import Runtime, get_runtime
from .sandbox import sandbox
from .schedule.scheduler import record_tick, run_tick
from .sending import QUEUE_DEFAULT, QUEUE_HIGH, QUEUE_LOW
from .settings import Settings, get_settings
from .simulator import ProfileKind, SimulatorServer, steam_id_for
from .simulator.gog import gog_user_id_for, is_dlc, is_movie, parse_account
from .simulator.ids import parse_profile
from .store.catalog import enrichment_counts
from .store.migrations import migrate

DEMO_DATABASE = "sync_worker_demo"
DEMO_REDIS_DB = 2
DEMO_KEY = "demo-key"
# The simulator is not Steam: let the demo spend budget quickly.
DEMO_BUDGETS = {
    "steam_webapi_calls_per_window": 6_000,
    "steam_webapi_window_seconds": 60.0,
    "steam_daily_limit": 10_000_000,
    "steam_store_calls_per_window": 100_000,
    "steam_store_window_seconds": 60.0,
    "auto_sync_cron": "* * * * *",
}


@dataclass(frozen=True)
class DemoLibrary:
    """One simulated account the demo syncs."""

    label: str
    account: str  # the platform user id (a SteamID64, a GOG user id)
    sync_type: str = "manual"


LIBRARIES = [
    DemoLibrary("small collector", steam_id_for(25)),
    DemoLibrary("regular player", steam_id_for(480, seed=1)),
    DemoLibrary("big backlog", steam_id_for(3_000, seed=2), "scheduled"),
    DemoLibrary("hoarder", steam_id_for(12_000, seed=3), "scheduled"),
    DemoLibrary("owns nothing", steam_id_for(0, seed=4), "auto"),
    DemoLibrary("private profile", steam_id_for(300, ProfileKind.PRIVATE, seed=5)),
    DemoLibrary("hidden game details", steam_id_for(300, ProfileKind.PRIVATE_GAME_DETAILS, seed=6)),
]
ENRICHMENT_WATCH_S = 9
NEWCOMER = DemoLibrary("newcomer (web insert)", steam_id_for(150, seed=7), "scheduled")
GOG_ACCOUNT = gog_user_id_for(1_200, seed=8)  # 12 pages of products


def demo_settings(base: Settings) -> Settings:
    """Settings reading the last demo's sandbox as it left it (nothing is wiped): what
    `sync-worker dashboard --demo` shows."""
    if base.is_production:
        raise ConfigurationError("the demo's sandbox exists only outside production.")
    servers = EmbeddedServers(base.sync_worker_home)
    urls = servers.acquire()
    servers.ensure_database(urls, DEMO_DATABASE)
    database_url = urls.database_url(DEMO_DATABASE)
    with psycopg.connect(database_url) as conn:  # a demo never run: an empty page, not errors
        migrate(conn)
    return base.model_copy(
        update={"database_url": database_url, "redis_url": urls.redis_url(DEMO_REDIS_DB)}
    )


def run_demo() -> int:
    """Run the demo; return the process exit code."""
    base = get_settings()
    # The demo prints its own story; logs only for problems unless LOG_LEVEL says otherwise.
    base = base.model_copy(
        update={"log_level": os.environ.get("LOG_LEVEL", "WARNING"), **DEMO_BUDGETS}
    )
    with sandbox(base, database=DEMO_DATABASE, redis_db=DEMO_REDIS_DB, api_key=DEMO_KEY) as (
        runtime,
        simulator,
    ):
        configure_logging(runtime.settings)
        print(
            f"Steam simulator: {simulator.url}   PostgreSQL + Redis: embedded in {base.sync_worker_home}/"
        )
        broker = get_broker()
        worker = dramatiq.Worker(
            broker, worker_threads=4, queues={QUEUE_HIGH, QUEUE_DEFAULT, QUEUE_LOW}
        )
        worker.start()
        try:
            _story(runtime, simulator, broker, worker)
        finally:
            worker.stop()
            reset_broker()
    print(
        "\nEvery run above, in the operator's dashboard:"
        " .venv/bin/sync-worker dashboard --demo   (then open http://127.0.0.1:8000)"
    )
    return 0


def _story(
    runtime: Runtime, simulator: SimulatorServer, broker: dramatiq.Broker, worker: dramatiq.Worker
) -> None:
    ids = {lib.label: client.register_steam_library(lib.account) for lib in LIBRARIES}
    every = [(lib, ids[lib.label]) for lib in LIBRARIES]
    print(f"\n1) First sync of {len(LIBRARIES)} libraries, sent as Dramatiq messages:")
    for lib, library_id in every:
        client.request_sync(library_id, sync_type=lib.sync_type)
    _report(broker, every)
    _report_enrichment(runtime, "   store details, queued for every app synced")

    regular = LIBRARIES[1]
    games = _owned_app_ids(simulator, regular.account)
    simulator.state.change_library(
        regular.account,
        {
            "bump_playtime": {str(a): 90 for a in games[:7]},
            "remove": games[7:10],
            "add": [1_999_990, 1_999_980],
        },
    )
    print(f"\n2) '{regular.label}' played 7 games, lost 3 and bought 2; re-sync all libraries:")
    for lib, library_id in every:
        client.request_sync(library_id, sync_type=lib.sync_type)
    _report(broker, every)

    print(
        "\n3) A day later: the web service inserted a new library row, and every interval"
        " has passed.\n   One scheduler tick (the `scheduler` process runs one on AUTO_SYNC_CRON):"
    )
    newcomer = _insert_like_the_web_service(runtime, NEWCOMER.account)
    _a_day_passes(runtime)
    now = datetime.now(UTC)
    tick = run_tick(runtime, now, "demo")
    record_tick(runtime, {"tick": "demo", "at": now, **asdict(tick)})
    print(
        f"   tick: budget {tick.budget} syncs, queued {tick.queued}, one every"
        f" {tick.spread_s:.2f} s (private profiles wait 1 day, then 3, 7, weekly)"
    )
    due = [
        (lib, ids[lib.label])
        for lib in LIBRARIES
        if lib.label not in {"private profile", "hidden game details"}
    ]
    _report(broker, [*due, (NEWCOMER, newcomer)], started_by="tick")

    _gog_chapter(runtime, simulator, broker)

    print(
        "\n5) Store enrichment on the `low` queue: one store call per distinct app, whichever"
        " libraries own it."
    )
    _watch_enrichment(runtime, simulator, worker)


def _gog_chapter(runtime: Runtime, simulator: SimulatorServer, broker: dramatiq.Broker) -> None:
    """A GOG account: linked by its login code, synced page by page, re-synced for 3 calls."""
    print(
        "\n4) A GOG account: the user logs in on GOG's page, the web service exchanges the code"
        "\n   at once (tokens sealed with CREDENTIALS_KEY), then the same workers sync it:"
    )
    gog = DemoLibrary("GOG account", GOG_ACCOUNT)
    answer = requests.get(
        f"{login_url(runtime.settings)}&login={GOG_ACCOUNT}", allow_redirects=False, timeout=10
    )
    code = parse_qs(urlsplit(answer.headers["Location"]).query)["code"][0]
    library_id = client.link_gog_library(code)
    client.request_sync(library_id)
    _report(broker, [(gog, library_id)])
    account = parse_account(GOG_ACCOUNT)
    assert account is not None
    played = next(p for p in simulator.gog.owned(account) if not is_movie(p) and not is_dlc(p))
    simulator.gog.change_library(GOG_ACCOUNT, {"bump_playtime": {str(played): 30}})
    print("   played one game; nothing bought: the checksum says so, no product page is read")
    client.request_sync(library_id)
    _report(broker, [(gog, library_id)])


def _report(
    broker: dramatiq.Broker, libs: list[tuple[DemoLibrary, str]], started_by: str = "request"
) -> None:
    started = time.monotonic()
    for queue in (QUEUE_HIGH, QUEUE_DEFAULT):
        broker.join(queue, timeout=300_000)
    elapsed = time.monotonic() - started
    print(
        f"   {'library':<24}{'type':<11}{'status':<11}{'games':>7}{'new':>7}{'updated':>9}"
        f"{'removed':>9}{'calls':>7}  note"
    )
    for lib, library_id in libs:
        run = _latest_run(library_id)
        note = (run["error"] or {}).get("code", "")
        print(
            f"   {lib.label:<24}{run['sync_type']:<11}{run['status']:<11}{run['total_games']:>7}"
            f"{run['new_games']:>7}{run['updated_games']:>9}{run['removed_games']:>9}"
            f"{run['api_calls']:>7}  {note}"
        )
    print(f"   all done {elapsed:.1f} s after the {started_by}")


def _insert_like_the_web_service(runtime: Runtime, steam_id: str) -> str:
    with runtime.pool.connection() as conn:
        row = conn.execute(
            "INSERT INTO user_libraries (platform, platform_user_id) VALUES ('steam', %s)"
            " RETURNING library_id::text",
            (steam_id,),
        ).fetchone()
    assert row is not None
    return str(row[0])


def _a_day_passes(runtime: Runtime) -> None:
    with runtime.pool.connection() as conn:
        conn.execute(
            "UPDATE user_libraries SET next_sync_at = next_sync_at - %s WHERE account_failures = 0",
            (timedelta(days=1),),
        )


def _report_enrichment(runtime: Runtime, label: str) -> dict[str, int]:
    with runtime.pool.connection() as conn:
        counts = enrichment_counts(conn, "steam", max_age(runtime), claim_age(runtime))
    print(f"{label}: " + ", ".join(f"{n} {name.replace('_', ' ')}" for name, n in counts.items()))
    return counts


def _watch_enrichment(
    runtime: Runtime, simulator: SimulatorServer, worker: dramatiq.Worker
) -> None:
    deadline = time.monotonic() + ENRICHMENT_WATCH_S
    while time.monotonic() < deadline:
        counts = _report_enrichment(runtime, "   so far")
        if counts["pending"] == 0 and counts["not_queued"] == 0:
            break
        time.sleep(3)
    worker.pause()  # let the chunks in flight finish, so calls and counts agree
    calls = simulator.state.calls["appdetails"]
    counts = _report_enrichment(runtime, "   paused at")
    looked_up = counts["enriched"] + counts["unavailable"]
    print(
        f"   {calls} store calls for {looked_up} distinct apps looked up"
        f" ({calls / max(looked_up, 1):.2f} per app); the rest stays queued on `low`"
        " (Steam allows about 200 store calls per 5 minutes)"
    )
    with runtime.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        sample = cur.execute(
            "SELECT platform_game_id AS app_id, title, game_type, fullgame_app_id, genres,"
            " release_date, release_on, platforms FROM games"
            " WHERE store_status = 'available' AND game_type = 'dlc' LIMIT 1"
        ).fetchone()
    if sample:
        print("   e.g. " + ", ".join(f"{k}={v}" for k, v in sample.items()))


def _latest_run(library_id: str) -> dict[str, Any]:
    with get_runtime().pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "SELECT sync_type, status, total_games, new_games, updated_games, removed_games,"
            " api_calls, error FROM sync_runs WHERE library_id = %s ORDER BY started_at DESC LIMIT 1",
            (library_id,),
        ).fetchone()
    assert row is not None, "every library was synced"
    return row


def _owned_app_ids(simulator: SimulatorServer, steam_id: str) -> list[int]:
    profile = parse_profile(steam_id)
    assert profile is not None
    games = simulator.state.owned_games(profile, include_appinfo=False, include_free=True)
    return sorted(int(g["appid"]) for g in games)
