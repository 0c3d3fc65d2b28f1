-- Which message each run was last attempted by (a Dramatiq message id, kept across its
-- retries and redeliveries; `inline-...` for the CLI). A message that comes back after its
-- run ended (a worker killed between the final commit and the ack) finds its run here and
-- is acknowledged without a second run. Looked up per library through
-- sync_runs_library_idx.
ALTER TABLE sync_runs ADD COLUMN message_id text;
