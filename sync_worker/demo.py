"""`sync-worker demo`: real syncs through real Dramatiq messages, no key and no network.

Embedded PostgreSQL + Redis, the Steam simulator on a local port, an in-process worker,
all in a sandbox: database `sync_worker_demo` and Redis db 2, emptied on every run.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import dramatiq
from psycopg.rows import dict_row

from . import client
from .broker import QUEUE_DEFAULT, QUEUE_HIGH, get_broker, reset_broker
from .logs import configure_logging
from .runtime import get_runtime
from .sandbox import sandbox
from .settings import get_settings
from .simulator import ProfileKind, SimulatorServer, steam_id_for
from .simulator.ids import parse_profile

DEMO_DATABASE = "sync_worker_demo"
DEMO_REDIS_DB = 2
DEMO_KEY = "demo-key"


@dataclass(frozen=True)
class DemoLibrary:
    """One simulated account the demo syncs."""

    label: str
    steam_id: str
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


def run_demo() -> int:
    """Run the demo; return the process exit code."""
    base = get_settings()
    # The demo prints its own story; logs only for problems unless LOG_LEVEL says otherwise.
    base = base.model_copy(update={"log_level": os.environ.get("LOG_LEVEL", "WARNING")})
    with sandbox(base, database=DEMO_DATABASE, redis_db=DEMO_REDIS_DB, api_key=DEMO_KEY) as (
        runtime,
        simulator,
    ):
        configure_logging(runtime.settings)
        print(
            f"Steam simulator: {simulator.url}   PostgreSQL + Redis: embedded in {base.sync_worker_home}/"
        )
        broker = get_broker()
        worker = dramatiq.Worker(broker, worker_threads=2, queues={QUEUE_HIGH, QUEUE_DEFAULT})
        worker.start()
        try:
            ids = {lib.label: client.register_steam_library(lib.steam_id) for lib in LIBRARIES}
            print(f"\n1) First sync of {len(LIBRARIES)} libraries, sent as Dramatiq messages:")
            _sync_all(broker, worker, [(lib, ids[lib.label]) for lib in LIBRARIES])

            regular = LIBRARIES[1]
            games = _owned_app_ids(simulator, regular.steam_id)
            simulator.state.change_library(
                regular.steam_id,
                {
                    "bump_playtime": {str(a): 90 for a in games[:7]},
                    "remove": games[7:10],
                    "add": [1_999_990, 1_999_980],
                },
            )
            print(
                f"\n2) '{regular.label}' played 7 games, lost 3 and bought 2; re-sync all libraries:"
            )
            _sync_all(broker, worker, [(lib, ids[lib.label]) for lib in LIBRARIES])
        finally:
            worker.stop()
            reset_broker()
    return 0


def _sync_all(
    broker: dramatiq.Broker, worker: dramatiq.Worker, libs: list[tuple[DemoLibrary, str]]
) -> None:
    started = time.monotonic()
    for lib, library_id in libs:
        client.request_sync(library_id, sync_type=lib.sync_type)
    for queue in (QUEUE_HIGH, QUEUE_DEFAULT):
        broker.join(queue, timeout=300_000)
    worker.join()
    elapsed = time.monotonic() - started
    print(
        f"   {'library':<22}{'queue':<9}{'status':<11}{'games':>7}{'new':>7}{'updated':>9}"
        f"{'removed':>9}{'calls':>7}  note"
    )
    for lib, library_id in libs:
        run = _latest_run(library_id)
        note = (run["error"] or {}).get("code", "")
        queue = QUEUE_HIGH if lib.sync_type == "manual" else QUEUE_DEFAULT
        print(
            f"   {lib.label:<22}{queue:<9}{run['status']:<11}{run['total_games']:>7}{run['new_games']:>7}"
            f"{run['updated_games']:>9}{run['removed_games']:>9}{run['api_calls']:>7}  {note}"
        )
    print(f"   all done in {elapsed:.1f} s")


def _latest_run(library_id: str) -> dict[str, Any]:
    with get_runtime().pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "SELECT status, total_games, new_games, updated_games, removed_games, api_calls, error"
            " FROM sync_runs WHERE library_id = %s ORDER BY started_at DESC LIMIT 1",
            (library_id,),
        ).fetchone()
    assert row is not None, "every library was synced"
    return row


def _owned_app_ids(simulator: SimulatorServer, steam_id: str) -> list[int]:
    profile = parse_profile(steam_id)
    assert profile is not None
    games = simulator.state.owned_games(profile, include_appinfo=False, include_free=True)
    return sorted(int(g["appid"]) for g in games)
