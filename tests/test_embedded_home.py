"""The embedded default: one per-user home, whatever the directory, ready without `migrate`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from sync_worker.local import EmbeddedServers
from sync_worker.settings import Settings


def test_the_default_home_is_per_user_and_not_the_current_directory(monkeypatch, tmp_path):
    monkeypatch.delenv("SYNC_WORKER_HOME", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    assert Settings(_env_file=None).sync_worker_home == tmp_path / "data" / "sync-worker"  # type: ignore[call-arg]
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "someone"))
    assert Settings(_env_file=None).sync_worker_home == (  # type: ignore[call-arg]
        tmp_path / "someone" / ".local" / "share" / "sync-worker"
    )


def test_a_command_from_another_directory_on_a_fresh_home_needs_no_migrate(tmp_path):
    """`status` from an unrelated directory, on a never-used home: the schema is there (an
    unknown library is exit 2, not a missing table) and pgserver's narration stays quiet."""
    home = tmp_path / "home"
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "SYNC_WORKER_ENV", "DYNO"}
    }
    env["SYNC_WORKER_HOME"] = str(home)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "sync_worker.cli", "status", "--library-id", str(uuid.uuid4())],
            cwd=elsewhere,
            env=env,
            capture_output=True,
            text=True,
            timeout=90,
        )
    finally:
        EmbeddedServers(home).stop()
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("sync-worker: unknown_library: "), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr  # no pgserver lines
    assert json.loads(result.stdout)["error"]["code"] == "unknown_library"
    assert not (elsewhere / ".sync-worker").exists()
    assert (home / "postgres" / "PG_VERSION").exists()
    assert list(Path(elsewhere).iterdir()) == []
