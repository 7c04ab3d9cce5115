-- musicfs schema, version 10: the content cache.

-- The chunk files live under $XDG_CACHE_HOME/musicfs/chunks/ab/abcdef0123456789 (the xxh3-64
-- of their bytes, in hex). This DB says which file is made of which chunks:
--   chunks        a cached file's content-defined chunks, in order (file_id, seq): the table
--                 reserved since version 1, now filled;
--   cached_files  which version of a file those chunks are of, how much of it is held, and
--                 when it was last read (eviction takes the least recently read first);
--   chunk_refs    each stored chunk once, with how many file chunks use it: the bytes on
--                 disk, and what eviction may delete (refs = 0);
--   cache_totals  one row: bytes and chunks stored, and the mount's hit/miss counters.
-- Triggers keep chunk_refs and cache_totals exact whoever changes `chunks` (the mount, the
-- scanner removing a file, `musicfs cache clear`, or a user with sqlite3).

CREATE TABLE cached_files (
    file_id     INTEGER PRIMARY KEY REFERENCES files(id),
    -- The origin's version of the file the chunks hold: a rescan that finds another size,
    -- mtime or ETag makes the cached bytes a mere basis for fetching the new version in part.
    size        INTEGER NOT NULL,
    mtime_ns    INTEGER NOT NULL,
    etag        TEXT,
    -- Bytes from the start of the file held in `chunks` (= size: the whole file is cached).
    cached      INTEGER NOT NULL,
    last_access INTEGER NOT NULL           -- ns since the Unix epoch
) STRICT;
CREATE INDEX cached_files_by_access ON cached_files(last_access);

CREATE TABLE chunk_refs (
    hash INTEGER PRIMARY KEY,              -- xxh3-64 of the bytes, as chunks.hash
    len  INTEGER NOT NULL,
    refs INTEGER NOT NULL                  -- rows of `chunks` with this hash
) STRICT;
-- Chunks no file uses any more: their files are deleted, then their rows.
CREATE INDEX chunk_refs_unused ON chunk_refs(hash) WHERE refs = 0;

CREATE TABLE cache_totals (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    bytes       INTEGER NOT NULL,          -- sum of chunk_refs.len: the chunk files on disk
    chunks      INTEGER NOT NULL,          -- rows of chunk_refs
    hits        INTEGER NOT NULL,          -- reads answered from the cache
    misses      INTEGER NOT NULL,          -- reads that went to an origin
    repaired    INTEGER NOT NULL,          -- chunks found corrupt or missing, fetched again
    evicted     INTEGER NOT NULL           -- files evicted to keep the cache under its cap
) STRICT;
INSERT INTO cache_totals VALUES (1, 0, 0, 0, 0, 0, 0);

CREATE TRIGGER chunks_ref AFTER INSERT ON chunks BEGIN
    INSERT INTO chunk_refs (hash, len, refs) VALUES (NEW.hash, NEW.len, 1)
        ON CONFLICT (hash) DO UPDATE SET refs = refs + 1;
END;
CREATE TRIGGER chunks_unref AFTER DELETE ON chunks BEGIN
    UPDATE chunk_refs SET refs = refs - 1 WHERE hash = OLD.hash;
END;
CREATE TRIGGER chunk_refs_added AFTER INSERT ON chunk_refs BEGIN
    UPDATE cache_totals SET bytes = bytes + NEW.len, chunks = chunks + 1;
END;
CREATE TRIGGER chunk_refs_removed AFTER DELETE ON chunk_refs BEGIN
    UPDATE cache_totals SET bytes = bytes - OLD.len, chunks = chunks - 1;
END;
-- A file removed from the library leaves the cache with its chunks.
CREATE TRIGGER files_uncache BEFORE DELETE ON files BEGIN
    DELETE FROM chunks WHERE file_id = OLD.id;
    DELETE FROM cached_files WHERE file_id = OLD.id;
END;

-- What is cached, per file, for sqlite3 users: path, bytes held, whole or not.
CREATE VIEW cache_files AS
SELECT p.path, p.origin_root, c.size, c.cached, c.cached = c.size AS complete,
       (c.size = f.size AND c.mtime_ns = f.mtime_ns AND c.etag IS f.etag) AS current,
       c.last_access
FROM cached_files c JOIN files f ON f.id = c.file_id JOIN file_paths p ON p.file_id = c.file_id;
