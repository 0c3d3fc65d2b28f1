"""DATABASE_URL and REDIS_URL: checked before any connection, and their credentials masked.

libpq quotes a malformed URL whole in its error, password included, so a URL is checked
here first and every error names it masked. The log redactor masks what `url_secrets`
returns, and any `scheme://user:password@` or `password=` it meets, configured or not.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict
from redis.connection import parse_url

MASK = "***"
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
DATABASE_SCHEMES = ("postgresql", "postgres")
REDIS_SCHEMES = ("redis", "rediss", "unix")
# `scheme://user:password@`, and libpq's `password=...` keyword form.
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s:/@]*:)[^\s@]+@")
_KEYWORD_PASSWORD = re.compile(r"(?i)\b(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s'\"]+)")


def mask_credentials(text: str) -> str:
    """`text` with every URL password and libpq `password=` value replaced by ***."""
    text = _URL_PASSWORD.sub(lambda m: f"{m.group(1)}{MASK}@", text)
    return _KEYWORD_PASSWORD.sub(lambda m: f"{m.group(1)}{MASK}", text)


def url_secrets(url: str | None) -> list[str]:
    """The password in `url`, as written and percent-decoded (empty when there is none)."""
    if not url:
        return []
    # `//` optional: a malformed `rediss:/:password@host` still has its password found.
    match = re.match(r"(?i)[a-z][a-z0-9+.-]*:/{0,2}[^\s:/@]*:([^\s@]+)@", url)
    if match is None:
        return []
    password = match.group(1)
    return sorted({password, unquote(password)} - {""})


def check_database_url(url: str) -> str:
    """`url` if libpq can use it; ValueError naming the problem, the URL masked, otherwise."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else None
    if scheme is not None and scheme not in DATABASE_SCHEMES:
        raise ValueError(f"must start with postgresql:// (got {mask_credentials(url)[:80]})")
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        raise ValueError(
            f"is not a PostgreSQL URL libpq can read ({mask_credentials(url)[:80]});"
            " percent-encode special characters in the password (% as %25)"
        ) from None
    sslmode = params.get("sslmode")
    if sslmode is not None and sslmode not in SSL_MODES:
        raise ValueError(f"sslmode must be one of {', '.join(SSL_MODES)}")
    return url


def check_redis_url(url: str) -> str:
    """`url` if redis-py can use it; ValueError naming the problem, the URL masked, otherwise."""
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        scheme = ""
    if scheme not in REDIS_SCHEMES or not url.lower().startswith(f"{scheme}://"):
        # Only what precedes the first colon: a URL this malformed may not mask reliably.
        raise ValueError(
            f"must start with redis://, rediss:// or unix:// (got {url.split(':', 1)[0][:20]!r}"
            " before the first colon)"
        )
    try:
        parse_url(url)  # type: ignore[no-untyped-call]  # what redis-py makes of it
    except ValueError:
        raise ValueError(
            f"is not a Redis URL redis-py can read ({mask_credentials(url)[:80]}): a port and"
            " a database number are numbers; percent-encode special characters in the password"
        ) from None
    return url
