"""`make run`, the README's command for the whole Procfile locally: it comes up, a sync
requested through the client completes, the ops server answers, and Ctrl-C stops every
process and both embedded servers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import requests

from sync_worker.simulator import steam_id_for
from tests.conftest import free_port, wait_for

ROOT = Path(__file__).resolve().parents[1]

CLIENT = """
import json, sys
from sync_worker import client
library_id = client.register_steam_library(sys.argv[1])
client.request_sync(library_id)
for event in client.iter_progress(library_id, timeout_s=60):
    print(json.dumps(event), flush=True)
"""


def processes_using(home: Path) -> list[psutil.Process]:
    """Every process started for this run: they carry its SYNC_WORKER_HOME or its path."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get("SYNC_WORKER_HOME") == str(home) or any(
                str(home) in part for part in process.cmdline()
            ):
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def test_make_run_serves_a_client_sync_and_stops_on_ctrl_c(tmp_path):
    home = tmp_path / "home"
    sim_port, metrics_port, dashboard_port = free_port(), free_port(), free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_", "REDIS_", "STEAM_", "SYNC_WORKER_ENV", "DYNO"))
    }
    env.update(
        SYNC_WORKER_HOME=str(home),
        SIM_PORT=str(sim_port),
        DASHBOARD_PORT=str(dashboard_port),
        METRICS_PORT=str(metrics_port),
        WORKER_PROCESSES="1",
        WORKER_THREADS="2",
        dramatiq_prom_db=str(tmp_path / "metrics"),  # Dramatiq's multiprocess directory
    )
    log_path = tmp_path / "run.log"
    with log_path.open("w") as log:
        run = subprocess.Popen(
            ["make", "--no-print-directory", "run"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, as a terminal's foreground job
        )
    try:
        wait_for(
            lambda: (
                log_path.read_text().count("Worker process is ready for action") >= 2
                and "Registered periodic actors" in log_path.read_text()
                and "Steam simulator on" in log_path.read_text()
                and f"dashboard on http://127.0.0.1:{dashboard_port}" in log_path.read_text()
            ),
            90,
            "every Procfile process to come up",
        )
        text = log_path.read_text()
        assert text.index("release.1 stopped (rc=0)") < text.index("worker_high.1 started")
        assert f"make run: the dashboard is on http://127.0.0.1:{dashboard_port}" in text
        # The embedded servers started for this run, quietly.
        assert "[pgserver]" not in text and "waiting for server to start" not in text

        client_env = {
            **env,
            "STEAM_API_KEY": "sim-key",
            "STEAM_API_BASE_URL": f"http://127.0.0.1:{sim_port}",
        }
        watched = subprocess.run(
            [sys.executable, "-c", CLIENT, steam_id_for(250, seed=91)],
            env=client_env,
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert watched.returncode == 0, watched.stderr
        events = [json.loads(line) for line in watched.stdout.splitlines()]
        assert events[-1]["status"] == "completed", events
        assert events[-1]["total_games"] == events[-1]["games_processed"] == 250

        health = requests.get(f"http://127.0.0.1:{metrics_port}/health?min_workers=1", timeout=5)
        assert health.status_code == 200, health.text
        queues_served = sorted(q for w in health.json()["workers"] for q in w["queues"])
        assert queues_served == ["default", "high", "low"]
        bad = requests.get(f"http://127.0.0.1:{metrics_port}/health?min_workers=x", timeout=5)
        assert bad.status_code == 400
        # The dashboard, open on loopback, shows the sync and the live workers.
        overview = requests.get(f"http://127.0.0.1:{dashboard_port}/api/overview", timeout=5)
        assert overview.status_code == 200, overview.text
        assert [run["total_games"] for run in overview.json()["recent"]] == [250]
        assert len(overview.json()["workers"]) == len(health.json()["workers"])
        scrape = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
        assert 'sync_worker_syncs_total{status="completed"} 1.0' in scrape
        assert 'dramatiq_messages_total{actor_name="sync_library",queue_name="high"} 1.0' in scrape
    finally:
        os.killpg(run.pid, signal.SIGINT)  # what Ctrl-C does to the foreground job
        run.wait(timeout=60)

    text = log_path.read_text()
    assert "Worker has been shut down." in text
    # Ctrl-C ends quietly: every process stopped by itself, one line says so, make is happy.
    assert run.returncode in (0, -signal.SIGINT), text[-3000:]  # make itself saw the Ctrl-C
    assert "stopped (rc=0)" in text and "(rc=-" not in text and "rc=1)" not in text, text[-3000:]
    assert "Error 130" not in text and "Interrupt" not in text, text[-3000:]
    assert text.rstrip().endswith(
        "make run: stopped (the dashboard, the workers, the scheduler and the simulator)"
    )
    assert "sending SIGKILL" not in text  # everything stopped within honcho's 5 s
    try:
        wait_for(lambda: not processes_using(home), 20, "every process and server to stop")
    except AssertionError:
        left = [" ".join(p.cmdline()) for p in processes_using(home)]
        raise AssertionError(f"still running: {left}\n{text[-3000:]}") from None
    assert not (home / "postgres" / "postmaster.pid").exists()
    assert not any(home.glob("redis/*.sock"))
    time.sleep(0.5)
    assert not processes_using(home)
