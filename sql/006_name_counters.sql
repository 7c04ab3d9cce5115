-- musicfs schema, version 6: where numbering of colliding names resumes.

-- When several files render to the same name in one directory, the second is shown as
-- `name (2)`, the third `name (3)`, and so on. This table remembers, per directory and name,
-- the next number to try, so adding the k-th colliding file costs one or two lookups instead
-- of k (untagged rips all land in `Unknown Artist/Unknown Album/` as `01.wav`, `02.wav`...).
-- Numbers are never reused within a directory while it exists: names already shown stay
-- stable. Rows go when their directory goes.
CREATE TABLE name_counters (
    parent_id INTEGER NOT NULL,            -- the directory (entries.id)
    base      TEXT NOT NULL,               -- the name before numbering (folded in case-insensitive mode)
    next      INTEGER NOT NULL,            -- the next number to try
    PRIMARY KEY (parent_id, base)
) STRICT, WITHOUT ROWID;
