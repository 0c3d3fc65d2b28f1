-- The four tables of the public contract. The web service reads them: change on purpose only.

CREATE TABLE user_libraries (
    library_id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    platform            text NOT NULL,
    platform_user_id    text NOT NULL,                 -- SteamID64 as text
    display_name        text,
    sync_status         text NOT NULL DEFAULT 'never_synced',
    sync_error          jsonb,                         -- {"code": ..., "message": ...} of the last failure
    total_games         integer NOT NULL DEFAULT 0,
    last_sync_at        timestamptz,                   -- last attempt that finished, whatever its outcome
    last_success_at     timestamptz,
    auto_sync           boolean NOT NULL DEFAULT true,
    sync_interval       interval NOT NULL DEFAULT interval '24 hours',
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (platform, platform_user_id),
    CHECK (sync_status IN ('never_synced', 'queued', 'syncing', 'completed', 'failed',
                           'private', 'cancelled'))
);

CREATE TABLE games (
    platform            text NOT NULL,
    platform_game_id    text NOT NULL,
    title               text,
    icon_url            text,
    -- store details: typed columns for what people filter on, the rest in details
    game_type           text,
    is_free             boolean,
    release_date        text,                          -- Steam's free text, e.g. "9 Jul, 2013"
    developers          text[],
    publishers          text[],
    genres              text[],
    metacritic_score    integer,
    details             jsonb,
    store_status        text,                          -- 'available' | 'unavailable' once looked up
    enriched_at         timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (platform, platform_game_id)
);

CREATE TABLE library_games (
    library_id              uuid NOT NULL REFERENCES user_libraries (library_id) ON DELETE CASCADE,
    platform                text NOT NULL,
    platform_game_id        text NOT NULL,
    playtime_minutes        integer NOT NULL DEFAULT 0,
    playtime_2weeks_minutes integer NOT NULL DEFAULT 0,
    last_played_at          timestamptz,               -- NULL when never played (or before 2004)
    raw_data                jsonb NOT NULL,
    first_seen_at           timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    removed_at              timestamptz,               -- NULL while owned; rows are never deleted
    PRIMARY KEY (library_id, platform, platform_game_id),
    FOREIGN KEY (platform, platform_game_id) REFERENCES games (platform, platform_game_id)
);

CREATE INDEX library_games_owned_idx ON library_games (library_id) WHERE removed_at IS NULL;
-- The writer looks up only removed rows per batch (to count returning games as new):
-- this keeps that lookup proportional to removed games, not to the library's size.
CREATE INDEX library_games_removed_idx ON library_games (library_id, platform, platform_game_id)
    WHERE removed_at IS NOT NULL;
CREATE INDEX games_unenriched_idx ON games (platform, platform_game_id) WHERE enriched_at IS NULL;

CREATE TABLE sync_runs (
    run_id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    library_id      uuid NOT NULL REFERENCES user_libraries (library_id) ON DELETE CASCADE,
    sync_type       text NOT NULL CHECK (sync_type IN ('manual', 'scheduled', 'auto')),
    status          text NOT NULL CHECK (status IN ('running', 'completed', 'failed',
                                                    'private', 'cancelled')),
    started_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    total_games     integer NOT NULL DEFAULT 0,
    new_games       integer NOT NULL DEFAULT 0,
    updated_games   integer NOT NULL DEFAULT 0,
    removed_games   integer NOT NULL DEFAULT 0,
    api_calls       integer NOT NULL DEFAULT 0,
    attempts        integer NOT NULL DEFAULT 1,
    error           jsonb                               -- {"code": ..., "message": ...}
);

CREATE INDEX sync_runs_library_idx ON sync_runs (library_id, started_at DESC);
