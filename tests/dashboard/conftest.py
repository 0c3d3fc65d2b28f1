"""A real worker and `sync-worker dashboard` served as documented, for every test here."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import assert_no_secret, free_port, wait_for

# The worker package's fixtures: one real worker for the package, a settled broker per test.
from tests.worker.conftest import _settled, worker  # noqa: F401

ADMIN_TOKEN = "dashboard-admin-token-8c1f0e"
VIEWER_TOKEN = "dashboard-viewer-token-27d9aa"


class SignedIn(requests.Session):
    """A browser-like session signed in to the dashboard, with its page's CSRF token."""

    csrf = ""


class Dashboard:
    """`sync-worker dashboard` in its own process, on a free port."""

    def __init__(self, env: dict[str, str], log_path: Path, *options: str) -> None:
        self.log_path = log_path
        self.env = env
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        with log_path.open("w") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "sync_worker.cli",
                    "dashboard",
                    "--port",
                    str(port),
                    *options,
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

        def up() -> bool:
            try:
                return requests.get(f"{self.url}/login", timeout=1).status_code in (200, 303)
            except requests.ConnectionError:
                assert self.process.poll() is None, self.text()
                return False

        wait_for(up, 30, "the dashboard to answer")

    def session(self, token: str, name: str = "tester") -> SignedIn:
        """A session signed in with `token`, as a browser would be."""
        http = SignedIn()
        answer = http.post(
            f"{self.url}/login", data={"token": token, "name": name}, allow_redirects=False
        )
        assert answer.status_code == 303, answer.text
        page = http.get(f"{self.url}/").text
        http.csrf = page.split('"csrf": "')[1].split('"')[0]
        return http

    def text(self) -> str:
        """What it logged so far."""
        return self.log_path.read_text(errors="replace")

    def stop(self) -> str:
        """SIGTERM, as a deploy does; it must stop cleanly within seconds, live streams
        open or not. Returns its log (which must hold no secret)."""
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(timeout=15) in (0, -signal.SIGTERM), self.text()
        log = self.text()
        for secret in (self.env.get("STEAM_API_KEY"), ADMIN_TOKEN, VIEWER_TOKEN):
            assert_no_secret(log, "the dashboard's log", secret)
        return log


@pytest.fixture(scope="package")
def dashboard_env(subprocess_env: dict[str, str]) -> dict[str, str]:
    """The test servers' environment with both dashboard tokens."""
    return {
        **subprocess_env,
        "DASHBOARD_TOKEN": ADMIN_TOKEN,
        "DASHBOARD_READONLY_TOKEN": VIEWER_TOKEN,
        "LOG_LEVEL": "INFO",
    }


@pytest.fixture(scope="package")
def dashboard(dashboard_env, tmp_path_factory) -> Iterator[Dashboard]:
    """The dashboard with both tokens, for the whole package."""
    served = Dashboard(dashboard_env, tmp_path_factory.mktemp("dashboard") / "dashboard.log")
    yield served
    served.stop()
