"""Logging: structured lines, stdlib routed through structlog, secrets redacted everywhere."""

from __future__ import annotations

import json
import logging

import pytest
import structlog
from pydantic import SecretStr

from sync_worker.logs import REDACTED, SecretRedactor, configure_logging
from sync_worker.settings import Settings

SECRET = "S3CR3T-KEY-abcdef"


@pytest.fixture(autouse=True)
def restore_logging():
    """Put the global logging setup back: these tests point it at pytest's capture streams."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


def configure(fmt: str) -> None:
    configure_logging(
        Settings(_env_file=None, steam_api_key=SecretStr(SECRET), log_format=fmt, log_level="DEBUG")
    )  # type: ignore[call-arg]


def test_stdlib_and_structlog_lines_are_json_and_redacted(capsys):
    """urllib3-style URL logs and structlog events both lose the key."""
    configure("json")
    logging.getLogger("urllib3.connectionpool").debug(
        '"GET /x?steamid=1&key=%s HTTP/1.1" 200', SECRET
    )
    structlog.get_logger("t").info(
        "calling", url=f"http://h/p?key={SECRET}", nested={"k": [SECRET]}
    )
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert len(lines) == 2 and lines[0]["logger"] == "urllib3.connectionpool"
    assert SECRET not in json.dumps(lines) and REDACTED in lines[0]["event"]


def test_console_tracebacks_are_redacted(capsys):
    """The console renderer's own traceback formatting is redacted too."""
    configure("console")
    try:
        raise RuntimeError(f"boom at https://h/p?key={SECRET}")
    except RuntimeError:
        structlog.get_logger("t").exception("failed")
    err = capsys.readouterr().err
    assert "RuntimeError" in err and SECRET not in err


def test_redactor_masks_any_key_parameter():
    """Unknown keys in URLs are masked by pattern, known secrets anywhere."""
    redactor = SecretRedactor([SECRET])
    assert redactor.redact("u?a=1&key=OTHER&b=2") == f"u?a=1&key={REDACTED}&b=2"
    assert redactor.redact(f"plain {SECRET} text") == f"plain {REDACTED} text"


def test_database_and_redis_passwords_never_reach_a_log(capsys):
    """The configured passwords (as written and percent-decoded) are masked wherever they
    appear, and any URL or libpq password by its shape, configured or not."""
    configure_logging(
        Settings(  # type: ignore[call-arg]
            _env_file=None,
            database_url="postgresql://app:db%2Fpass@127.0.0.1/app",
            redis_url="rediss://:redis-pass@127.0.0.1:6380/0",
            log_format="json",
        )
    )
    log = structlog.get_logger("t")
    log.error("pool", error='connection failed: password "db/pass" refused')
    log.error("libpq", dsn="host=h password='other pw' dbname=x user=u")
    logging.getLogger("redis").warning("lost redis-pass at rediss://u:anything@h:6380/0")
    out = capsys.readouterr().err
    for secret in ("db/pass", "db%2Fpass", "redis-pass", "other pw", "anything"):
        assert secret not in out
    assert out.count(REDACTED) == 2 and out.count("***") == 2
