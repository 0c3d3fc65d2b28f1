-- A run's checkpoint lives in its sync_runs row and is written in the same transaction as
-- the batch it describes, so counts and resume position can never run ahead of the rows.
ALTER TABLE sync_runs
    ADD COLUMN resume_after    bigint,              -- every app id <= this is committed (NULL: none yet)
    ADD COLUMN games_processed integer NOT NULL DEFAULT 0,
    ADD COLUMN batches         integer NOT NULL DEFAULT 0,
    ADD COLUMN lease_token     text,                -- fence: only the attempt holding it may write
    ADD COLUMN updated_at      timestamptz NOT NULL DEFAULT now();

-- Before this migration a run waiting for a retry was 'failed' and a dead worker's run
-- stayed 'running' for ever: keep only each library's newest open run.
UPDATE sync_runs AS r
SET status = 'failed', finished_at = now(),
    error = '{"code": "abandoned", "message": "A newer run of this library replaced this one."}'
WHERE r.status = 'running'
  AND EXISTS (SELECT 1 FROM sync_runs n
              WHERE n.library_id = r.library_id AND n.status = 'running' AND n.started_at > r.started_at);

-- At most one open run per library: every attempt at a library resumes it.
CREATE UNIQUE INDEX sync_runs_one_open_per_library ON sync_runs (library_id) WHERE status = 'running';
