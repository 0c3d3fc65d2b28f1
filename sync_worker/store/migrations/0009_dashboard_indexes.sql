-- The operator's dashboard (docs/dashboard.md): history newest first, whole or by status or
-- by error code, paged by (started_at, run_id); the recently finished runs; the accounts in
-- back-off. Each page query is an index range scan, whatever the size of the tables.
CREATE INDEX sync_runs_started_idx ON sync_runs (started_at DESC, run_id DESC);
CREATE INDEX sync_runs_status_started_idx ON sync_runs (status, started_at DESC, run_id DESC);
CREATE INDEX sync_runs_error_code_idx ON sync_runs ((error->>'code'), started_at DESC, run_id DESC)
    WHERE error IS NOT NULL;
CREATE INDEX sync_runs_finished_idx ON sync_runs (finished_at DESC) WHERE finished_at IS NOT NULL;
CREATE INDEX user_libraries_failing_idx ON user_libraries (next_sync_at) WHERE account_failures > 0;
