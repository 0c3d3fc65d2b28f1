"""The house's layers as a web process meets them: the clients load none of the worker.

`make lint` checks every import against the contracts in pyproject.toml (lint-imports);
this checks what a fresh interpreter really loads, settings included.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

WORKER_SIDE = (
    "sync_worker.worker",
    "sync_worker.app",
    "sync_worker.actors",
    "sync_worker.broker",
    "sync_worker.middleware",
    "sync_worker.ops_server",
    "sync_worker.sync.engine",
    "sync_worker.store.writer",
    "sync_worker.schedule",
    "sync_worker.enrich",
)
WORKER_LIBRARIES = ("periodiq", "pendulum", "prometheus_client")

PROBE = """\
import json, sys
import {module}
from sync_worker.settings import get_settings
get_settings()
print(json.dumps(sorted(sys.modules)))
"""


@pytest.mark.parametrize("module", ["sync_worker.client", "sync_worker.aio"])
def test_a_web_process_loads_none_of_the_worker(module, tmp_path):
    # AUTO_SYNC_CRON is set on every dyno of a Heroku app: reading it must not load periodiq.
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module)],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "AUTO_SYNC_CRON": "*/10 * * * *"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    loaded = set(json.loads(result.stdout))
    assert module in loaded and "sync_worker.sending" in loaded
    worker = sorted(
        name
        for name in loaded
        if name.startswith(tuple(f"{m}." for m in WORKER_SIDE))
        or name in WORKER_SIDE
        or name.split(".")[0] in WORKER_LIBRARIES
    )
    assert worker == []
