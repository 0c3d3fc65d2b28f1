-- Store details (enrichment): typed columns for what a game-library UI filters and sorts on;
-- the whole `data` object stays in `details`. 0001 created type, free, raw release date,
-- developers, publishers, genres, metacritic score, details, store_status, enriched_at.
ALTER TABLE games
    ADD COLUMN categories        text[],
    ADD COLUMN release_on        date,           -- parsed from release_date where possible
    ADD COLUMN coming_soon       boolean,
    ADD COLUMN platforms         text[],         -- of windows, mac, linux
    ADD COLUMN header_image      text,
    ADD COLUMN short_description text,
    ADD COLUMN required_age      integer,
    ADD COLUMN fullgame_app_id   text,           -- the game a DLC, demo or soundtrack belongs to
    ADD COLUMN enrich_queued_at  timestamptz;    -- claimed for enrichment: not queued twice

COMMENT ON COLUMN games.release_date IS 'Steam''s free text, e.g. "9 Jul, 2013" or "Coming soon"';
COMMENT ON COLUMN games.store_status IS '''available'' | ''unavailable'' (no store page) once looked up';

-- No index on enriched_at: an index led by `platform` (one value) was picked by the
-- foreign-key checks of library_games on a young table and made every check scan the
-- catalog (first syncs 10x slower). The counts read the whole table anyway.
