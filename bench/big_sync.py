"""A 30,000-game library through `sync-worker sync`: wall time and the process's peak RSS.

Baselines from the same run: the bare Steam fetch (HTTP + JSON parse, nothing stored),
the peak RSS of a process that only imports the package, and an unchanged re-sync.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import requests

from sync_worker.simulator import steam_id_for

from .common import BENCH_KEY, bench_runtime, child_env
from .peak_rss import MARKER

GAMES = 30_000


def run_measured(module_args: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(seconds, peak RSS in MB, stdout) of `python -m <module> <args>` in a child process."""
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "bench.peak_rss", *module_args],
        env=env,
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(
            f"{module_args} exited {result.returncode}: {result.stdout}{result.stderr}"
        )
    peak_kb = next(
        int(line.removeprefix(MARKER))
        for line in result.stderr.splitlines()
        if line.startswith(MARKER)
    )
    return elapsed, peak_kb / 1024, result.stdout


def main() -> None:
    """Print the big-library figures."""
    with bench_runtime() as (runtime, simulator):
        env = child_env(runtime)
        steam_id = steam_id_for(GAMES, seed=77)
        sync = ["sync_worker.cli", "sync", "--steam-id", steam_id, "--json"]

        started = time.perf_counter()
        body = requests.get(
            f"{simulator.url}/IPlayerService/GetOwnedGames/v1/",
            params={
                "key": BENCH_KEY,
                "steamid": steam_id,
                "include_appinfo": 1,
                "include_played_free_games": 1,
            },
            timeout=60,
        ).json()
        fetch_s = time.perf_counter() - started
        assert body["response"]["game_count"] == GAMES

        _, import_rss, _ = run_measured(["sync_worker.cli", "--help"], env)
        first_s, first_rss, first_out = run_measured(sync, env)
        again_s, again_rss, again_out = run_measured(sync, env)
        first, again = json.loads(first_out), json.loads(again_out)
        assert first["status"] == "completed" and first["new_games"] == GAMES, first
        assert (again["new_games"], again["updated_games"]) == (0, 0), again

        print(f"big library sync: {GAMES:,} games, batch size {runtime.settings.sync_batch_size}")
        print(
            f"  first sync (sync-worker sync, whole process)  {first_s:6.2f} s   peak RSS {first_rss:6.1f} MB"
        )
        print(
            f"  unchanged re-sync                             {again_s:6.2f} s   peak RSS {again_rss:6.1f} MB"
        )
        print(f"  baseline: bare fetch + JSON parse             {fetch_s:6.2f} s")
        print(
            f"  baseline: `sync-worker --help` (imports only)              peak RSS {import_rss:6.1f} MB"
        )


if __name__ == "__main__":
    main()
