"""What an inline `sync-worker sync` tells the person watching it, on stderr.

On a terminal: one line redrawn in place, cut to the terminal's width, with games
processed / total, rate and ETA, and, while the run waits for rate-limit budget (pacing
included), what it waits for; a log line clears it first and it is drawn again after.
Elsewhere (a pipe, a log file, `--json`): no bar, only one plain line per wait.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Mapping
from typing import Any, TextIO

from .ratelimit import Admission

BAR_WIDTH = 24
REDRAW_EVERY_S = 0.1


class SyncProgressBar:
    """Renders progress events and rate-limit waits of one inline sync."""

    def __init__(self, stream: TextIO, *, interactive: bool) -> None:
        """`interactive`: draw the bar (a terminal); otherwise only waits are reported."""
        self._stream = stream
        self.interactive = interactive
        self._done = 0
        self._total = 0
        self._started: tuple[float, int] | None = None  # (when, games) of the first figures
        self._note = ""
        self._drawn_at = 0.0
        self._width = 0

    def event(self, event: Mapping[str, Any]) -> None:
        """A progress event of the run (the same the web app receives)."""
        if event.get("status") == "starting":  # the fetch, before any figure is known
            self._note = event.get("message", "")
            self._draw(force=True)
            return
        if event.get("status") != "syncing":
            return
        self._done, self._total = event["games_processed"], event["total_games"]
        if self._started is None:
            self._started = (time.monotonic(), self._done)
        self._note = ""
        self._draw(force=self._done >= self._total)

    def waiting(self, bucket: str, seconds: float, admission: Admission) -> None:
        """The run waits `seconds` for `bucket` budget (RateLimiter's WaitNotice)."""
        if not admission.admitted and admission.used < 0:
            why = "backing off after a 429"
        elif admission.admitted:
            why = f"pacing: {admission.used}/{admission.limit} of the window used"
        else:
            why = f"{admission.used}/{admission.limit} used"
        note = f"waiting {seconds:.1f} s for {bucket} budget ({why})"
        if not self.interactive:
            print(note, file=self._stream, flush=True)
            return
        self._note = note
        self._draw(force=True)

    def before_log(self, record: logging.LogRecord) -> bool:
        """A logging filter (on the handler writing to the bar's stream): clear the bar's
        line so the log line starts at its beginning; the next update draws it again."""
        if self.interactive and self._width:
            self._stream.write("\r" + " " * self._width + "\r")
            self._width = 0
            self._drawn_at = 0.0
        return True

    def close(self) -> None:
        """End the bar's line so what follows starts on a fresh one."""
        if self.interactive and self._width:
            self._stream.write("\n")
            self._stream.flush()
            self._width = 0

    def _draw(self, *, force: bool) -> None:
        if not self.interactive:
            return
        now = time.monotonic()
        if not force and now - self._drawn_at < REDRAW_EVERY_S:
            return
        self._drawn_at = now
        bar = self._bar() if self._total else ""
        line = f"{bar} {self._note}".strip()[: self._columns() - 1]  # wider would wrap
        padding = " " * max(0, self._width - len(line))
        self._stream.write(f"\r{line}{padding}")
        self._stream.flush()
        self._width = len(line)

    def _columns(self) -> int:
        """The terminal's width; COLUMNS or 80 when it does not say (a new pty says 0)."""
        try:
            columns = os.get_terminal_size(self._stream.fileno()).columns
        except (AttributeError, OSError, ValueError):
            columns = 0
        return columns if columns > 0 else shutil.get_terminal_size().columns

    def _bar(self) -> str:
        total = max(self._total, 1)
        filled = min(BAR_WIDTH, BAR_WIDTH * self._done // total)
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        text = f"[{bar}] {self._done:,}/{self._total:,} games"
        rate = self._rate()
        if rate:
            remaining = (self._total - self._done) / rate
            text += f"  {rate:,.0f} games/s  ETA {_duration(remaining)}"
        return text

    def _rate(self) -> float:
        if self._started is None:
            return 0.0
        since, done_then = self._started
        elapsed = time.monotonic() - since
        return (self._done - done_then) / elapsed if elapsed > 0 else 0.0


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"
