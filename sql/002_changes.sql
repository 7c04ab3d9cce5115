-- musicfs schema, version 2: change log for live mounts, library totals for statfs.

-- Every change to the virtual tree, written in the same transaction as the change itself. A
-- running mount tails it (by seq) to invalidate exactly the kernel entries and attributes
-- that changed. The writer keeps only the newest rows (see docs/schema.md); a mount that fell
-- further behind drops all its caches instead.
CREATE TABLE changes (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    parent_id INTEGER NOT NULL,            -- the directory whose listing or child changed
    name      TEXT NOT NULL,               -- the name added, removed or whose attributes changed
    entry_id  INTEGER NOT NULL             -- that entry's inode (may no longer exist)
) STRICT;

-- Library totals, kept by the writer with each change (statfs must not scan `files`).
CREATE TABLE totals (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    files INTEGER NOT NULL,
    bytes INTEGER NOT NULL
) STRICT;
INSERT INTO totals (id, files, bytes) SELECT 1, count(*), coalesce(sum(size), 0) FROM files;

-- readdir reads names and kinds only: make its index covering, so listing a directory reads
-- one contiguous index range instead of a table row (scattered) per child. ~40 bytes per entry.
DROP INDEX entries_by_parent;
CREATE INDEX entries_by_parent ON entries(parent_id, id, name, file_id);
