-- musicfs schema, version 1. This file is a public contract: see docs/schema.md.
--
-- Path bytes: Linux file names are bytes. Every column documented as "path bytes" holds TEXT when
-- the bytes are valid UTF-8 and a BLOB otherwise. The storage class is a pure function of the
-- bytes, so UNIQUE constraints hold, non-UTF-8 names round-trip exactly, and sqlite3 users can
-- write `WHERE name = 'Song.flac'`. Virtual names (entries.name) are always valid UTF-8 TEXT.

-- 'MUFS': tells a musicfs DB from any other SQLite file.
PRAGMA application_id = 1297434195;

-- Key/value settings shared by scanner and mount (layout options, counters).
CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

-- One row per music folder given to the scanner.
CREATE TABLE origins (
    id       INTEGER PRIMARY KEY,
    root     ANY NOT NULL UNIQUE,          -- absolute path bytes of the origin root
    kind     TEXT NOT NULL DEFAULT 'local' -- 'local' now; 'sftp', 's3' later (content cache)
) STRICT;

-- The real directories of each origin, as last walked. The root folder of an origin has
-- path '' and parent_id NULL.
CREATE TABLE folders (
    id        INTEGER PRIMARY KEY,
    origin_id INTEGER NOT NULL REFERENCES origins(id),
    parent_id INTEGER REFERENCES folders(id),
    path      ANY NOT NULL,                -- path bytes relative to the origin root, no trailing '/'
    UNIQUE (origin_id, path),
    CHECK ((parent_id IS NULL) = (path = ''))
) STRICT;
CREATE INDEX folders_by_parent ON folders(parent_id);

-- One row per audio file. Tags and audio properties are NULL when absent or unreadable.
CREATE TABLE files (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    folder_id    INTEGER NOT NULL REFERENCES folders(id),
    name         ANY NOT NULL,             -- file name bytes inside the folder
    size         INTEGER NOT NULL,         -- bytes, as stat'ed at scan time
    mtime_ns     INTEGER NOT NULL,         -- modification time, ns since the epoch
    ext          TEXT NOT NULL,            -- real extension, lowercased ('flac', 'mp3', 'm4a')
    format       TEXT,                     -- container as read ('flac', 'mpeg', 'opus', 'mp4', ...)
    duration_ms  INTEGER,
    bitrate_kbps INTEGER,
    sample_rate  INTEGER,
    bit_depth    INTEGER,
    channels     INTEGER,
    title        TEXT,
    artist       TEXT,
    album        TEXT,
    albumartist  TEXT,
    genre        TEXT,
    date         TEXT,                     -- as tagged ('1997', '1997-05-21')
    year         INTEGER,                  -- parsed from date
    track        INTEGER,
    tracktotal   INTEGER,
    disc         INTEGER,
    disctotal    INTEGER,
    compilation  INTEGER,                  -- 1 when flagged as a compilation, else NULL
    scan_error   TEXT,                     -- why tags could not be read (full cause chain)
    scanned_ns   INTEGER NOT NULL,         -- when this row was last (re)read
    UNIQUE (folder_id, name)
) STRICT;

-- Layout templates. A single view with name '' is rendered at the root; several views each
-- get a top-level directory named `name`.
CREATE TABLE views (
    id       INTEGER PRIMARY KEY,
    name     TEXT NOT NULL UNIQUE,
    template TEXT NOT NULL
) STRICT;

-- The virtual tree. One row per name in one directory; `id` is the FUSE inode. The root is
-- id 1 with parent_id NULL. AUTOINCREMENT: ids are never reused, so a stale kernel inode never
-- aliases a new entry. A file entry keeps its id across rescans while its rendered path is
-- unchanged. file_id is NULL for directories.
CREATE TABLE entries (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    parent_id  INTEGER REFERENCES entries(id),
    name       TEXT NOT NULL,
    file_id    INTEGER REFERENCES files(id),
    render_key INTEGER,                    -- file entries: hash of (view, rendered path) before
                                           -- disambiguation; tells "same placement" on rescan
    name_fold  TEXT,                       -- case-insensitive mode only: folded name
    UNIQUE (parent_id, name),
    CHECK ((parent_id IS NULL) = (id = 1)),
    CHECK ((file_id IS NULL) = (render_key IS NULL))
);
-- readdir pages by (parent_id, id): ids only grow, so offsets stay stable under writes.
CREATE INDEX entries_by_parent ON entries(parent_id);
CREATE INDEX entries_by_file ON entries(file_id) WHERE file_id IS NOT NULL;
CREATE UNIQUE INDEX entries_by_fold ON entries(parent_id, name_fold) WHERE name_fold IS NOT NULL;

-- Directory attributes of the virtual tree, one row per directory entry.
CREATE TABLE dirs (
    id       INTEGER PRIMARY KEY REFERENCES entries(id),
    nentries INTEGER NOT NULL,             -- direct children
    mtime_ns INTEGER NOT NULL              -- last time a child was added or removed
) STRICT;

-- Content-defined chunks of a file's bytes (fastcdc + xxh3), for the content cache of remote
-- origins and offline play. Empty for local origins.
CREATE TABLE chunks (
    file_id INTEGER NOT NULL REFERENCES files(id),
    seq     INTEGER NOT NULL,              -- 0-based position in the file
    offset  INTEGER NOT NULL,              -- byte offset in the file
    len     INTEGER NOT NULL,
    hash    INTEGER NOT NULL,              -- xxh3-64 of the chunk bytes
    PRIMARY KEY (file_id, seq)
) STRICT, WITHOUT ROWID;
CREATE INDEX chunks_by_hash ON chunks(hash);

INSERT INTO entries (id, parent_id, name) VALUES (1, NULL, '');
INSERT INTO dirs (id, nentries, mtime_ns) VALUES (1, 0, 0);

-- Friendly views for sqlite3 users and scripts.

-- Every file with its absolute and relative path.
CREATE VIEW file_paths AS
SELECT f.id AS file_id,
       o.id AS origin_id,
       o.root AS origin_root,
       CASE WHEN d.path = '' THEN f.name ELSE d.path || '/' || f.name END AS path,
       o.root || '/' || CASE WHEN d.path = '' THEN f.name ELSE d.path || '/' || f.name END
           AS abs_path
FROM files f JOIN folders d ON d.id = f.folder_id JOIN origins o ON o.id = d.origin_id;

-- Full virtual path of every entry (walks the tree from the root: fine for scripts, not hot).
CREATE VIEW entry_paths AS
WITH RECURSIVE walk(id, file_id, vpath) AS (
    SELECT id, file_id, name FROM entries WHERE parent_id = 1
    UNION ALL
    SELECT e.id, e.file_id, walk.vpath || '/' || e.name
    FROM entries e JOIN walk ON e.parent_id = walk.id
)
SELECT id AS entry_id, file_id, vpath FROM walk;

-- Tags of every file joined with its real and virtual paths (one row per placement).
CREATE VIEW tracks AS
SELECT p.vpath, fp.abs_path, f.*
FROM files f
JOIN file_paths fp ON fp.file_id = f.id
LEFT JOIN entry_paths p ON p.file_id = f.id;

-- Files the scanner could not read, with the reason.
CREATE VIEW scan_errors AS
SELECT fp.abs_path, f.scan_error
FROM files f JOIN file_paths fp ON fp.file_id = f.id
WHERE f.scan_error IS NOT NULL;
