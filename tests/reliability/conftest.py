"""The fault-injection harness: real worker processes, broken on purpose, checked against the truth.

Workers start the way the Procfile starts them (`dramatiq sync_worker.worker ...`), each
group in its own process group so a test can signal it the way Heroku and honcho do.
Every test reports a row (fault, expected, observed, rows checked, time to recovery);
the table is printed at the end of the run.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sync_worker.platforms.steam import normalise_game
from sync_worker.runtime import Runtime
from tests.conftest import SimulatorAdmin, fetch_all
from tests.workers import WorkerGroup

REPORT: list[dict[str, Any]] = []


@pytest.fixture(scope="module")
def worker(runtime, subprocess_env, tmp_path_factory, request) -> Iterator[WorkerGroup]:
    """One worker group for a module; the module's WORKER_ENV adjusts its environment."""
    env = {**subprocess_env, **getattr(request.module, "WORKER_ENV", {})}
    group = WorkerGroup(env, tmp_path_factory.mktemp("worker") / "worker.log").wait_ready()
    yield group
    group.kill()


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Any]:
    """Start worker groups: `workers(env, name, **options)`; all are killed at the end."""
    started: list[WorkerGroup] = []

    def start(env: dict[str, str], name: str = "worker", **options: Any) -> WorkerGroup:
        group = WorkerGroup(env, tmp_path / f"{name}.log", **options)
        started.append(group)
        return group

    yield start
    for group in started:
        group.kill()


@dataclass
class Truth:
    """How the stored library compares with what the simulator serves."""

    rows_checked: int
    mismatches: list[str]


def compare_with_simulator(
    runtime: Runtime, library_id: str, steam_id: str, sim: SimulatorAdmin
) -> Truth:
    """Every owned row against the simulator's answer, field by field; no extra, no missing."""
    expected = {}
    for raw in sim.owned_games(steam_id):
        game = normalise_game(raw)
        assert game is not None
        expected[game.platform_game_id] = (
            game.title,
            game.playtime_minutes,
            game.playtime_2weeks_minutes,
            game.last_played_at,
        )
    stored = {
        row[0]: tuple(row[1:])
        for row in fetch_all(
            runtime,
            "SELECT lg.platform_game_id, g.title, lg.playtime_minutes, lg.playtime_2weeks_minutes,"
            " lg.last_played_at FROM library_games lg JOIN games g USING (platform, platform_game_id)"
            " WHERE lg.library_id = %s AND lg.removed_at IS NULL",
            library_id,
        )
    }
    mismatches = [f"missing {k}" for k in expected.keys() - stored.keys()]
    mismatches += [f"extra {k}" for k in stored.keys() - expected.keys()]
    mismatches += [
        f"{k}: stored {stored[k]} != {expected[k]}"
        for k in expected.keys() & stored.keys()
        if stored[k] != expected[k]
    ]
    return Truth(rows_checked=len(stored), mismatches=mismatches[:10])


def report(fault: str, expected: str, observed: str, rows: int, recovery_s: float | None) -> None:
    """Add a row to the run's fault table."""
    REPORT.append(
        {
            "fault": fault,
            "expected": expected,
            "observed": observed,
            "rows": rows,
            "recovery_s": recovery_s,
        }
    )


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the fault table (also the closing note's source)."""
    if not REPORT:
        return
    terminalreporter.section("fault injection: expected vs observed")
    for row in REPORT:
        recovery = "-" if row["recovery_s"] is None else f"{row['recovery_s']:.1f} s"
        terminalreporter.write_line(
            f"{row['fault']:<46} | {row['expected']:<38} | {row['observed']:<38} "
            f"| {row['rows']:>6} rows | {recovery}"
        )
