-- Differential sync, one row per library instead of one per slice: a small library's games
-- sit in about as many slices as it has games, so writing their digests cost as much as
-- writing the games. `slices` packs (slice number, 4 bytes big-endian; digest, 16 bytes)
-- by slice number; `answer` is the digest of the whole answer of the library's last
-- completed sync (NULL from the first batch a later run writes until that run completes).
-- Both describe rows committed in the same transaction. Deleting a library's row (or all)
-- only makes its next sync compare every game.
CREATE TABLE library_digests (
    library_id  uuid PRIMARY KEY REFERENCES user_libraries (library_id) ON DELETE CASCADE,
    slices      bytea NOT NULL,
    answer      bytea
);
-- Digests are random bytes: compressing them is wasted work.
ALTER TABLE library_digests ALTER COLUMN slices SET STORAGE EXTERNAL;

INSERT INTO library_digests (library_id, slices)
SELECT library_id, string_agg(int4send(slice) || digest, ''::bytea ORDER BY slice)
FROM library_slices GROUP BY library_id;

DROP TABLE library_slices;
