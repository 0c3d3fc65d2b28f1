"""structlog setup: JSON or console lines, stdlib logging (Dramatiq's, urllib3's) routed through it.

Every line passes a redactor last, so the Steam API key and the database and Redis
passwords cannot reach a log even when a library logs a full request URL (urllib3 does at
DEBUG) or an exception quotes one (libpq does).
"""

from __future__ import annotations

import logging
import re
import sys
import traceback
from collections.abc import Iterable
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, ExcInfo, Processor, WrappedLogger

from .settings import Settings
from .urls import mask_credentials

REDACTED = "[redacted]"
_KEY_IN_URL = re.compile(r"(?i)([?&;]key=)[^&\s\"'#]+")
MAX_VALUE_CHARS = 2_000  # a hostile 1 MB argument (Dramatiq prints messages whole) stays short
MAX_TRACEBACK_CHARS = 50_000


class SecretRedactor:
    """A structlog processor that masks known secrets, any `key=` query parameter and any
    URL or libpq password, and shortens over-long values."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self._secrets = [s for s in secrets if s]

    def redact(self, text: str) -> str:
        """Return text with every secret masked."""
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return mask_credentials(_KEY_IN_URL.sub(lambda m: m.group(1) + REDACTED, text))

    def __call__(self, logger: WrappedLogger, name: str, event_dict: EventDict) -> EventDict:
        return {
            k: self._clean(v, MAX_TRACEBACK_CHARS if k == "exception" else MAX_VALUE_CHARS)
            for k, v in event_dict.items()
        }

    @staticmethod
    def shorten(text: str, limit: int = MAX_VALUE_CHARS) -> str:
        """Cut an over-long value (after redaction, so a cut never exposes part of a key)."""
        if len(text) <= limit:
            return text
        return f"{text[:limit]}... [{len(text) - limit} more chars]"

    def _clean(self, value: Any, limit: int = MAX_VALUE_CHARS) -> Any:
        if isinstance(value, str):
            return self.shorten(self.redact(value), limit)
        if isinstance(value, dict):
            return {k: self._clean(v, limit) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._clean(v, limit) for v in value]
        if isinstance(value, int | float | bool) or value is None:
            return value
        return self.shorten(self.redact(repr(value)), limit)


def configure_logging(settings: Settings) -> None:
    """Configure structlog and the stdlib root logger once per process (idempotent)."""
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    redactor = SecretRedactor(settings.secrets)
    renderer: Processor
    if settings.effective_log_format == "json":
        renderer = structlog.processors.JSONRenderer()
        final: list[Processor] = [structlog.processors.format_exc_info]
    else:
        # The console renderer formats tracebacks itself, after the redactor ran.
        def redacted_traceback(sio: TextIO, exc_info: ExcInfo) -> None:
            sio.write("\n" + redactor.redact("".join(traceback.format_exception(*exc_info))))

        renderer = structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=redacted_traceback
        )
        final = []
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *final,
            redactor,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    # pgserver narrates every server start at INFO: keep only its problems.
    logging.getLogger("pgserver").setLevel(max(root.level, logging.WARNING))

    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
