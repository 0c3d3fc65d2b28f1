"""Plans that cannot turn against us: a 30k library synced on normal and on generic plans.

PostgreSQL may switch a prepared statement to a generic plan by itself (psycopg prepares
a statement after its fifth run on one connection, so every long-lived worker gets
there); `plan_cache_mode=force_generic_plan` forces that for every statement. A generic
plan searches an array parameter row by row, so a statement passing a library's worth of
values in one array turns quadratic: a removal once took 129 s.

One long-lived engine per mode, each on its own pool (the mode set per session), the same
library, alternating round by round: an unchanged re-sync, and a re-sync that finds one
game removed (put back, untimed, before the next round). Medians of ROUNDS.
Target: each case on generic plans within 1.2x of the same case on normal plans.

    python -m bench.generic_plans
"""

from __future__ import annotations

import json
import statistics
import time
from typing import Any

import requests
from psycopg_pool import ConnectionPool

from sync_worker.logs import configure_logging
from sync_worker.platforms.steam import SteamClient
from sync_worker.runtime import Runtime
from sync_worker.simulator import steam_id_for
from sync_worker.store import libraries
from sync_worker.sync.engine import SyncEngine

from .big_sync import serve_body
from .common import bench_runtime, simulator_process

GAMES = 30_000
ROUNDS = 5
MODES = ("auto", "force_generic_plan")
TARGET = 1.2


def engine_for(runtime: Runtime, mode: str) -> tuple[SyncEngine, ConnectionPool]:
    """A long-lived engine whose every session plans with `plan_cache_mode = mode`."""
    settings = runtime.settings
    pool = ConnectionPool(
        settings.database_url or "",
        min_size=1,
        max_size=2,
        kwargs={"options": f"-c plan_cache_mode={mode}"},
        open=True,
    )
    engine = SyncEngine(settings, runtime.redis, pool, lambda: SteamClient(settings))
    return engine, pool


def change(url: str, steam_id: str, **body: Any) -> None:
    requests.post(f"{url}/_sim/libraries/{steam_id}", json=body, timeout=10).raise_for_status()


def timed(engine: SyncEngine, library_id: str) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    outcome = engine.sync(library_id)
    assert outcome.status == "completed", outcome
    return time.perf_counter() - started, outcome.to_dict()


def main() -> dict[str, Any]:
    """Print both modes' medians and their ratio; return the figures."""
    with bench_runtime() as (base, _), simulator_process(base) as runtime:
        configure_logging(runtime.settings)  # WARNING: no line per sync
        url = runtime.settings.steam_api_base_url
        steam_id = steam_id_for(GAMES, seed=700)
        with runtime.pool.connection() as conn:
            library_id = libraries.register_library(conn, "steam", steam_id)
        body = serve_body(url, steam_id)
        app_ids = [game["appid"] for game in json.loads(body)["response"]["games"]]
        slices = len({app_id >> 8 for app_id in app_ids})
        engines = {mode: engine_for(runtime, mode) for mode in MODES}
        timed(engines["auto"][0], library_id)  # the first sync, untimed
        times: dict[str, dict[str, list[float]]] = {
            mode: {"unchanged": [], "one removed": []} for mode in MODES
        }
        # Warm-up: past psycopg's prepare threshold on every pooled connection.
        for engine, _ in engines.values():
            for _ in range(6):
                timed(engine, library_id)
        for round_ in range(ROUNDS):
            for mode in MODES if round_ % 2 == 0 else reversed(MODES):
                engine = engines[mode][0]
                seconds, outcome = timed(engine, library_id)
                assert outcome["new_games"] + outcome["updated_games"] == 0, outcome
                times[mode]["unchanged"].append(seconds)
                gone = app_ids[(round_ * 7919) % len(app_ids)]
                change(url, steam_id, remove=[gone])
                seconds, outcome = timed(engine, library_id)
                assert outcome["removed_games"] == 1, outcome
                times[mode]["one removed"].append(seconds)
                change(url, steam_id, add=[gone])
                timed(engine, library_id)  # put back, untimed
        for _, pool in engines.values():
            pool.close()
    medians = {
        mode: {case: statistics.median(values) for case, values in cases.items()}
        for mode, cases in times.items()
    }
    ratios = {
        case: medians["force_generic_plan"][case] / medians["auto"][case]
        for case in ("unchanged", "one removed")
    }
    print(
        f"generic plans: a {GAMES:,}-game library in {slices:,} slices, long-lived engines,"
        f" medians of {ROUNDS}"
    )
    for case, ratio in ratios.items():
        print(
            f"  {case:<12} normal {medians['auto'][case]:6.3f} s   generic"
            f" {medians['force_generic_plan'][case]:6.3f} s   {ratio:4.2f}x (target <= {TARGET}x)"
        )
    return {"games": GAMES, "slices": slices, "median_s": medians, "generic_vs_normal": ratios}


if __name__ == "__main__":
    main()
