"""The inline sync's bar fits the terminal and never has a log line glued onto it."""

from __future__ import annotations

import io
import logging

from sync_worker.progress_bar import SyncProgressBar


def syncing(done: int, total: int) -> dict:
    return {"status": "syncing", "games_processed": done, "total_games": total}


def drawn_lines(output: str) -> list[str]:
    """What each redraw put on the line (the text between carriage returns)."""
    return [part for line in output.split("\n") for part in line.split("\r")]


def test_the_bar_is_cut_to_the_terminals_width(monkeypatch):
    monkeypatch.setenv("COLUMNS", "40")
    stream = io.StringIO()
    bar = SyncProgressBar(stream, interactive=True)
    bar.event({"status": "starting", "message": "Fetching the game list from Steam"})
    for done in (0, 5_000, 10_000, 123_456):
        bar.event(syncing(done, 123_456))
    bar.close()

    lines = drawn_lines(stream.getvalue())
    assert any("[" in line for line in lines)
    assert max(len(line) for line in lines) <= 39  # one column short: no wrap


def test_a_log_line_clears_the_bar_first_and_the_bar_comes_back(monkeypatch):
    monkeypatch.setenv("COLUMNS", "120")
    stream = io.StringIO()
    bar = SyncProgressBar(stream, interactive=True)
    handler = logging.StreamHandler(stream)
    handler.addFilter(bar.before_log)
    logger = logging.getLogger("test.bar")
    logger.addHandler(handler)
    try:
        bar.event(syncing(100, 1_000))
        logger.warning("Steam is slow")
        bar.event(syncing(200, 1_000))
    finally:
        logger.removeHandler(handler)
    output = stream.getvalue()

    before, after = output.split("Steam is slow\n")
    cleared = before.rsplit("\r", 2)
    assert cleared[-1] == "" and cleared[-2].strip() == ""  # the bar's text blanked out
    assert "200/1,000 games" in after  # drawn again on the next update
