"""A 5,000-game GOG library beside a 5,000-game Steam library: first sync and unchanged
re-sync, calls and time, through one long-lived engine on the simulator.

GOG reads its library page by page (100 products a page, each page a checkpointed
batch) plus its play stats (50 games a page), where Steam reads one answer: the first
sync costs GOG some 100 calls and Steam one. An unchanged GOG library costs 3 calls
(userData.json with the owned list's checksum, the owned ids, the first stats page).
Medians of ROUNDS libraries each; budgets raised so no call waits for the limiter.
"""

from __future__ import annotations

import statistics
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

from sync_worker import client
from sync_worker.logs import configure_logging
from sync_worker.platforms.gog import login_url
from sync_worker.platforms.steam import SteamClient
from sync_worker.runtime import Runtime
from sync_worker.simulator import steam_id_for
from sync_worker.simulator.gog import gog_user_id_for
from sync_worker.store import libraries
from sync_worker.sync.engine import SyncEngine
from sync_worker.sync.gog_run import GogRun

from .common import bench_runtime

GAMES = 5_000
ROUNDS = 3


def engine(runtime: Runtime) -> SyncEngine:
    """One engine for every sync of the run, as a worker keeps it."""
    limiter = runtime.limiter()
    settings = runtime.settings
    return SyncEngine(
        settings,
        runtime.redis,
        runtime.pool,
        lambda: SteamClient(settings, gate=limiter),
        gate=limiter,
        platform_runs={"gog": GogRun},
    )


def link_gog(runtime: Runtime, user_id: str) -> str:
    answer = requests.get(
        f"{login_url(runtime.settings)}&login={user_id}", allow_redirects=False, timeout=10
    )
    return client.link_gog_library(parse_qs(urlsplit(answer.headers["Location"]).query)["code"][0])


def timed(sync: SyncEngine, library_id: str) -> tuple[float, int, int]:
    """(seconds, calls, games) of one sync that must complete."""
    started = time.perf_counter()
    outcome = sync.sync(library_id)
    assert outcome.status == "completed", outcome
    return time.perf_counter() - started, outcome.api_calls, outcome.total_games


def main() -> dict[str, Any]:
    """Print the figures; return them."""
    with bench_runtime() as (runtime, _simulator):
        runtime.settings = runtime.settings.model_copy(
            update={"gog_calls_per_window": 1_000_000, "steam_webapi_calls_per_window": 1_000_000}
        )
        configure_logging(runtime.settings)  # warnings only: the figures are the output
        sync = engine(runtime)
        figures: dict[str, Any] = {}
        for platform in ("steam", "gog"):
            first, again = [], []
            for seed in range(ROUNDS):
                if platform == "gog":
                    library_id = link_gog(runtime, gog_user_id_for(GAMES, seed=200 + seed))
                else:
                    with runtime.pool.connection() as conn:
                        library_id = libraries.register_library(
                            conn, "steam", steam_id_for(GAMES, seed=200 + seed)
                        )
                first.append(timed(sync, library_id))
                again.append(timed(sync, library_id))
            figures[platform] = {
                "games": first[0][2],
                "first_sync_s": round(statistics.median(t for t, _, _ in first), 3),
                "first_sync_calls": first[0][1],
                "unchanged_s": round(statistics.median(t for t, _, _ in again), 3),
                "unchanged_calls": again[0][1],
            }
        print(f"GOG beside Steam, {GAMES:,} owned products (medians of {ROUNDS}):")
        print(f"  {'':<8}{'games':>7}{'first sync':>13}{'calls':>7}{'unchanged':>12}{'calls':>7}")
        for platform, f in figures.items():
            print(
                f"  {platform:<8}{f['games']:>7}{f['first_sync_s']:>11.3f} s{f['first_sync_calls']:>7}"
                f"{f['unchanged_s']:>10.3f} s{f['unchanged_calls']:>7}"
            )
        return figures


if __name__ == "__main__":
    main()
