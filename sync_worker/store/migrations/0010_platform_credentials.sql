-- Linked accounts' OAuth tokens (GOG), encrypted with Fernet under CREDENTIALS_KEY before
-- they reach the database (sync_worker/vault.py): the database never holds one in clear.
-- One row per library, gone with it. A refresh locks the library's row, then this one
-- (the lock order of store/runs.py), so two processes never refresh one account at once.
CREATE TABLE platform_credentials (
    library_id          uuid PRIMARY KEY REFERENCES user_libraries (library_id) ON DELETE CASCADE,
    refresh_token       bytea NOT NULL,
    access_token        bytea NOT NULL,
    access_expires_at   timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL DEFAULT now()
);
