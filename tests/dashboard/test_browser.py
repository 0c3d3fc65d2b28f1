"""The dashboard in a real browser: headless Chromium (Debian's `chromium`) driven by
Playwright, against `sync-worker dashboard` while a real worker syncs simulated libraries.

Skipped, with the reason, where Chromium is not installed; `.ci/run` installs it and sets
SYNC_WORKER_REQUIRE_BROWSER, so in CI a missing browser fails instead. With
SYNC_WORKER_SCREENSHOTS=<dir> the screenshots are kept there (docs/ holds the last ones).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sync_worker import client
from sync_worker.simulator import steam_id_for
from sync_worker.store import libraries
from tests.conftest import library_status, wait_for
from tests.dashboard.conftest import ADMIN_TOKEN, Dashboard

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def _browser_missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed (make installs it from requirements-dev.lock)"
    if CHROMIUM is None:
        return "Chromium is not installed (apt-get install chromium; `make browser` tries)"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium, or the test is skipped with one line saying why (failed in CI)."""
    missing = _browser_missing()
    if missing is not None:
        if os.environ.get("SYNC_WORKER_REQUIRE_BROWSER"):
            pytest.fail(missing)
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def screenshot(tmp_path: Path) -> Callable[[Any, str], Path]:
    """Save a page's screenshot (and keep it in SYNC_WORKER_SCREENSHOTS when set)."""

    def take(page: Any, name: str) -> Path:
        path = tmp_path / name
        page.screenshot(path=str(path), full_page=True)
        keep = os.environ.get("SYNC_WORKER_SCREENSHOTS")
        if keep:
            shutil.copy(path, Path(keep) / name)
        return path

    return take


def named_library(runtime: Any, games: int, seed: int, name: str) -> str:
    """A registered library with a display name, as the web service registers them."""
    with runtime.pool.connection() as conn:
        return libraries.register_library(conn, "steam", steam_id_for(games, seed=seed), name)


def signed_in_tabs(browser: Any, dashboard: Dashboard, scheme: str) -> tuple[Any, Any]:
    """Two tabs of one browser session, signed in through the form, on the overview."""
    context = browser.new_context(viewport={"width": 1360, "height": 900}, color_scheme=scheme)
    first = context.new_page()
    first.goto(f"{dashboard.url}/")
    assert "/login" in first.url
    first.fill("input[name=token]", ADMIN_TOKEN)
    first.fill("input[name=name]", "browser")
    first.click("button[type=submit]")
    first.wait_for_url(f"{dashboard.url}/")
    second = context.new_page()
    second.goto(f"{dashboard.url}/")
    for tab in (first, second):
        tab.wait_for_selector("#status.live")
        tab.evaluate("window.loadedOnce = true")  # gone if the page ever reloads
    return first, second


def progress_of(tab: Any, library_id: str) -> int | None:
    """The progress bar's value in the library's active row, if the row is there."""
    value = tab.evaluate(
        """id => {
            const bar = document.querySelector(`#active tr[data-library="${id}"] [role=progressbar]`);
            return bar ? Number(bar.getAttribute("aria-valuenow")) : null;
        }""",
        library_id,
    )
    return None if value is None else int(value)


def test_the_page_follows_syncs_live_and_requeues_a_dead_letter(
    browser, dashboard: Dashboard, runtime, worker, sim, screenshot
):
    """Progress moves without a reload in two tabs at once, a sync reaches completed on the
    page, a dead letter appears, is requeued from the page and completes."""
    first, second = signed_in_tabs(browser, dashboard, "light")
    for tab in (first, second):  # the worker's next heartbeat (Redis was emptied for the test)
        tab.wait_for_selector("#workers td:has-text('high')", timeout=20_000)
    library_id = named_library(runtime, 20_000, 501, "Ada Lovelace")
    client.request_sync(library_id)

    seen: dict[str, set[int]] = {"first": set(), "second": set()}
    shot = None
    deadline = time.monotonic() + 60
    while library_status(runtime, library_id) != "completed" and time.monotonic() < deadline:
        for name, tab in (("first", first), ("second", second)):
            value = progress_of(tab, library_id)
            if value is not None:
                seen[name].add(value)
                if shot is None and 30 <= value <= 70:
                    shot = screenshot(tab, "dashboard-syncing.png")
        time.sleep(0.03)
    for name, values in seen.items():
        moving = sorted(v for v in values if 0 < v < 100)
        assert len(moving) >= 2, f"the {name} tab's bar did not move: {sorted(values)}"

    completed = f'#recent tr[data-library="{library_id}"]'
    for tab in (first, second):
        tab.wait_for_selector(f"{completed} .pill.completed", timeout=15_000)
        assert tab.evaluate("window.loadedOnce") is True  # no reload happened
        assert tab.locator(f'#active tr[data-library="{library_id}"]').count() == 0
    rows = [tab.locator(completed).inner_text() for tab in (first, second)]
    assert rows[0] == rows[1] and "Ada Lovelace" in rows[0] and "20,000" in rows[0]

    # A dead letter appears on both tabs; requeued from the first, it completes.
    failing = named_library(runtime, 50, 502, "Grace Hopper")
    sim.fault(match="GetOwnedGames", kind="status", status=503, count=4)  # RETRY_MAX=3
    message_id = client.request_sync(failing)
    letter = f'#dead tr[data-message="{message_id}"]'
    for tab in (first, second):
        tab.wait_for_selector(letter, timeout=30_000)
    assert "steam_unavailable" in first.locator(letter).inner_text()
    screenshot(first, "dashboard-dead-letter.png")
    first.once("dialog", lambda dialog: dialog.accept())
    first.locator(f"{letter} button", has_text="Requeue").click()
    first.wait_for_selector("#flash:has-text('Requeued.')")
    wait_for(lambda: library_status(runtime, failing) == "completed", 30, "the requeued sync")
    for tab in (first, second):
        tab.wait_for_selector(f'#recent tr[data-library="{failing}"] .pill.completed')
        tab.wait_for_selector(letter, state="detached")
        assert tab.evaluate("window.loadedOnce") is True
    assert shot is not None
    screenshot(first, "dashboard.png")


def test_dark_mode_and_the_history_and_library_pages(
    browser, dashboard: Dashboard, runtime, worker, screenshot
):
    """Dark mode is the system's; history filters and a library page render what is stored."""
    first, _ = signed_in_tabs(browser, dashboard, "dark")
    library_id = named_library(runtime, 120, 503, "Edsger Dijkstra")
    client.request_sync(library_id)
    first.wait_for_selector(f'#recent tr[data-library="{library_id}"] .pill.completed')
    background = first.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(15, 18, 22)"
    screenshot(first, "dashboard-dark.png")

    first.goto(f"{dashboard.url}/history?status=completed")
    row = first.locator("table.runs tbody tr").first
    assert "Edsger Dijkstra" in row.inner_text() and "120" in row.inner_text()
    first.fill("input[name=q]", steam_id_for(120, seed=503))
    first.press("input[name=q]", "Enter")
    first.wait_for_url(f"{dashboard.url}/libraries/{library_id}")
    assert "Games owned now" in first.content()
    assert first.locator("dd", has_text="120").count() >= 1
