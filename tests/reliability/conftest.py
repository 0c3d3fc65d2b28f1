"""The fault-injection harness: real worker processes, broken on purpose, checked against the truth.

Workers start the way the Procfile starts them (`dramatiq sync_worker.worker ...`), each
group in its own process group so a test can signal it the way Heroku and honcho do.
Every test reports a row (fault, expected, observed, rows checked, time to recovery);
the table is printed at the end of the run.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sync_worker.platforms.steam import normalise_game
from sync_worker.runtime import Runtime
from tests.conftest import SimulatorAdmin, assert_no_secret, fetch_all, wait_for

REPORT: list[dict[str, Any]] = []


class WorkerGroup:
    """One `dramatiq sync_worker.worker` command and its worker processes."""

    def __init__(
        self,
        env: dict[str, str],
        log_path: Path,
        *,
        processes: int = 1,
        threads: int = 2,
        queues: tuple[str, ...] = ("high", "default"),
        shutdown_timeout_ms: int = 25_000,
    ) -> None:
        self.log_path = log_path
        self.env = env
        with log_path.open("w") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "dramatiq",
                    "sync_worker.worker",
                    "--processes",
                    str(processes),
                    "--threads",
                    str(threads),
                    "--queues",
                    *queues,
                    "--worker-shutdown-timeout",
                    str(shutdown_timeout_ms),
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,  # its own process group, like a dyno
            )
        self.processes = processes

    def wait_ready(self, timeout_s: float = 60) -> WorkerGroup:
        """Until every worker process said it is ready (fails at once if the group died)."""

        def booted() -> bool:
            if self.process.poll() is not None:
                self.process.wait()
                raise AssertionError(f"the worker group exited:\n{self.text()[-3000:]}")
            return self.text().count("ready for action") >= self.processes

        try:
            wait_for(booted, timeout_s, "the worker processes to boot")
        except AssertionError:
            self.kill()
            raise
        return self

    def signal(self, sig: signal.Signals) -> float:
        """Send `sig` to every process of the group (as Heroku does); return when it was sent."""
        os.killpg(self.process.pid, sig)
        return time.monotonic()

    def wait(self, timeout_s: float = 60) -> int:
        """The main process's exit status."""
        return self.process.wait(timeout=timeout_s)

    def text(self) -> str:
        """Everything the group logged so far."""
        return self.log_path.read_text(errors="replace")

    def events(self, event: str) -> list[dict[str, Any]]:
        """The JSON log lines whose event is `event`."""
        found = []
        for line in self.text().splitlines():
            if line.startswith("{") and f'"{event}"' in line:
                record = json.loads(line)
                if record.get("event") == event:
                    found.append(record)
        return found

    def stop(self, timeout_s: float = 60) -> int:
        """SIGTERM the group, as a deploy does, and wait for it to exit."""
        self.signal(signal.SIGTERM)
        return self.wait(timeout_s)

    def kill(self) -> None:
        """SIGKILL whatever is left of the group; its log must hold no key, even at DEBUG."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
        assert_no_secret(self.text(), self.log_path.name, self.env.get("STEAM_API_KEY"))


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
