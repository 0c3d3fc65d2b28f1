"""`sync_runs` rows: a run's recorded duration includes everything up to its last statement."""

from __future__ import annotations

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
