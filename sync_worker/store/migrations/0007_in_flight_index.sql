-- Reconciling after Redis lost its queues: the libraries left `queued` or `syncing`, oldest
-- first, found by every scheduler tick without a scan of every library.
CREATE INDEX user_libraries_in_flight_idx ON user_libraries (updated_at)
    WHERE sync_status IN ('queued', 'syncing');
