"""The connection pool checks a connection on checkout only once it has sat idle."""

from __future__ import annotations

import psycopg
import pytest

from sync_worker import runtime as runtime_module
from sync_worker.runtime import CheckedPool


def backend_pid(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    return int(row[0])


def end_session(url: str, pid: int) -> None:
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


@pytest.fixture
def pool(settings):
    with CheckedPool(str(settings.database_url), min_size=1, max_size=1, open=True) as pool:
        yield pool


def test_a_connection_idle_past_the_threshold_is_checked_and_replaced_if_dead(
    settings, pool, monkeypatch
):
    monkeypatch.setattr(runtime_module, "RECHECK_IDLE_S", 0.0)
    with pool.connection() as conn:
        first = backend_pid(conn)
        conn.commit()
    end_session(str(settings.database_url), first)

    with pool.connection() as conn:
        assert backend_pid(conn) != first  # the dead one was found and replaced


def test_a_connection_returned_moments_ago_is_handed_out_without_a_round_trip(settings, pool):
    with pool.connection() as conn:
        first = backend_pid(conn)
        conn.commit()
    end_session(str(settings.database_url), first)

    # Unchecked: the server's ending of the session shows at the first statement, as an
    # outage mid-sync would (callers treat it as one).
    with pytest.raises(psycopg.OperationalError), pool.connection() as conn:
        conn.execute("SELECT 1")
    with pool.connection() as conn:
        assert backend_pid(conn) != first  # and the broken one is not handed out again


def test_a_connection_lost_in_autocommit_raises_the_loss_and_never_returns_in_autocommit(
    settings, pool
):
    """The engine's reads run in autocommit: a session ended under them is the outage
    (OperationalError, which callers wait out), not a ProgrammingError from handing the
    connection back, and no connection goes back to the pool in autocommit."""
    from sync_worker.sync.engine import autocommit

    with pytest.raises(psycopg.OperationalError), autocommit(pool) as conn:
        end_session(str(settings.database_url), backend_pid(conn))
        conn.execute("SELECT 1")
    with pool.connection() as conn:
        assert conn.autocommit is False
        assert backend_pid(conn) > 0
