"""What losing Redis or PostgreSQL looks like (or PostgreSQL rolling a transaction back),
and the transient error we report for it."""

from __future__ import annotations

import psycopg
import redis

from .errors import DatabaseConflict, DatabaseUnavailable, RedisUnavailable, TransientError

#: Exceptions that mean "a server went away", as opposed to a bug in a query or a script.
INFRASTRUCTURE_ERRORS: tuple[type[BaseException], ...] = (
    psycopg.OperationalError,  # includes the pool's PoolTimeout and server shutdowns
    # The server ended a session left idle inside a transaction (a frozen worker): the
    # connection is gone, although psycopg files it under InternalError (SQLSTATE 25P03).
    psycopg.errors.IdleInTransactionSessionTimeout,
    redis.ConnectionError,
    redis.TimeoutError,
    redis.exceptions.InvalidResponse,  # what answers at REDIS_URL does not speak Redis
)


def infrastructure_error(exc: BaseException) -> TransientError:
    """Our transient error for a lost database or Redis connection (no server text: it may hold a URL)."""
    if isinstance(exc, psycopg.Error) and (exc.sqlstate or "").startswith("40"):
        return DatabaseConflict()  # SQLSTATE class 40: deadlock, serialization failure
    if isinstance(exc, psycopg.Error):
        return DatabaseUnavailable()
    return RedisUnavailable()
