-- When the scheduler next auto-syncs each library (see sync_worker/schedule/policy.py).
-- '-infinity' = never synced: a row the web service inserts is due on the next tick.
ALTER TABLE user_libraries
    ADD COLUMN next_sync_at     timestamptz NOT NULL DEFAULT '-infinity',
    ADD COLUMN account_failures integer NOT NULL DEFAULT 0;  -- consecutive private / invalid outcomes

UPDATE user_libraries SET next_sync_at = last_success_at + sync_interval
WHERE last_success_at IS NOT NULL;

-- The tick's one query: due libraries, most overdue first, as a range scan.
CREATE INDEX user_libraries_due_idx ON user_libraries (next_sync_at) WHERE auto_sync;

-- A changed interval counts from the last success at once, not after the next sync.
CREATE FUNCTION user_libraries_reschedule() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.last_success_at IS NOT NULL AND NEW.account_failures = 0 THEN
        NEW.next_sync_at := NEW.last_success_at + NEW.sync_interval;
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER user_libraries_interval_changed
    BEFORE UPDATE OF sync_interval ON user_libraries
    FOR EACH ROW WHEN (OLD.sync_interval IS DISTINCT FROM NEW.sync_interval)
    EXECUTE FUNCTION user_libraries_reschedule();
