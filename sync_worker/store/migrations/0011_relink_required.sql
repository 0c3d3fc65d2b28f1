-- GOG (docs/behaviour.md): an account whose authorization GOG no longer accepts ends its
-- sync `relink_required`, like a private profile ends `private`: a state of its own, so
-- the web service can ask the user to link the account again.
ALTER TABLE user_libraries DROP CONSTRAINT user_libraries_sync_status_check;
ALTER TABLE user_libraries ADD CONSTRAINT user_libraries_sync_status_check
    CHECK (sync_status IN ('never_synced', 'queued', 'syncing', 'completed', 'failed',
                           'private', 'cancelled', 'relink_required'));
ALTER TABLE sync_runs DROP CONSTRAINT sync_runs_status_check;
ALTER TABLE sync_runs ADD CONSTRAINT sync_runs_status_check
    CHECK (status IN ('running', 'completed', 'failed', 'private', 'cancelled',
                      'relink_required'));
