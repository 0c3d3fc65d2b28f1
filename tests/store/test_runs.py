"""`sync_runs` rows: a run's recorded duration includes everything up to its last statement."""

from __future__ import annotations

import time

import psycopg

from sync_worker.simulator import steam_id_for
from sync_worker.store import runs


def test_a_run_finishes_when_its_last_statement_runs_not_when_its_transaction_began(
    runtime, register
):
    library_id = register(steam_id_for(5, seed=260))
    with runtime.pool.connection() as conn:
        run = runs.open_run(conn, library_id, "manual", "token", "message-1")
        with conn.transaction():
            began = conn.execute("SELECT now()").fetchone()[0]
            conn.execute("SELECT pg_sleep(0.3)")  # the final statements of a big sync
            runs.finish_run(conn, library_id, run.run_id, "completed", total_games=5)
        [(finished_at,)] = conn.execute(
            "SELECT finished_at FROM sync_runs WHERE run_id = %s", (run.run_id,)
        ).fetchall()
    assert (finished_at - began).total_seconds() >= 0.3


def test_taking_a_run_over_ends_an_attempt_frozen_in_the_middle_of_a_copy(runtime, register):
    """A worker frozen (SIGSTOP) halfway through a batch's COPY holds the run's row, and is
    not idle, so PostgreSQL's idle timeout never ends it: the rescuer, which holds the
    lease, ends that session and takes the run over within a second, not a minute."""
    library_id = register(steam_id_for(5, seed=261))
    with runtime.pool.connection() as conn:
        run = runs.open_run(conn, library_id, "manual", "frozen-token", "message-1")
    frozen = psycopg.connect(runtime.settings.database_url or "")  # a transaction begins
    try:
        runs.fence(frozen, library_id, run.run_id, "frozen-token")
        copy = frozen.cursor().copy("COPY sync_runs (library_id, sync_type, status) FROM STDIN")
        copy.__enter__().write_row((library_id, "manual", "completed"))  # ...and it froze
        started = time.monotonic()
        with runtime.pool.connection() as conn:
            taken = runs.open_run(conn, library_id, "manual", "rescuer-token", "message-1")
        took_s = time.monotonic() - started
        alive = frozen.pgconn.status
    finally:
        frozen.pgconn.finish()  # the frozen worker's side: gone
    assert taken.run_id == run.run_id and taken.attempts == 2
    assert took_s < 5
    assert alive is not None
    with runtime.pool.connection() as conn:
        names = [
            name
            for (name,) in conn.execute("SELECT application_name FROM pg_stat_activity").fetchall()
        ]
    assert runs.attempt_session_name("frozen-token") not in names  # its session was ended
