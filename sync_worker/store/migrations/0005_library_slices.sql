-- Differential sync: per library, one digest for each slice of its games (app ids sharing
-- `app_id >> 8`) as last written. Written in the same transaction as the slice's rows, so
-- a matching digest means the stored rows already say what Steam says: the slice is skipped.
-- Deleting a library's digests (or all of them) only makes its next sync write everything.
CREATE TABLE library_slices (
    library_id  uuid NOT NULL REFERENCES user_libraries (library_id) ON DELETE CASCADE,
    slice       integer NOT NULL,
    digest      bytea NOT NULL,
    PRIMARY KEY (library_id, slice)
);
