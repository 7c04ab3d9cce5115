-- musicfs schema, version 4: the search index outbox.

-- Files whose search document must be (re)written or deleted, as a log. Filled by triggers in
-- the same transaction as the change itself, so no writer (the scanner, or a user's sqlite3
-- editing tags) can change a file without the index hearing of it. The scanner applies new
-- rows after each committed batch, commits the index every few seconds, and then deletes the
-- rows that commit holds. A crash in between replays them (rewriting a document is
-- idempotent). A log, not a set: a file changed again while its earlier change waits is logged
-- again, never lost. The index lives beside the DB (`settings.search_index`); it is derived
-- data and can always be rebuilt from `files`.
CREATE TABLE search_queue (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    file_id INTEGER NOT NULL
) STRICT;

CREATE TRIGGER files_search_insert AFTER INSERT ON files BEGIN
    INSERT INTO search_queue (file_id) VALUES (new.id);
END;

CREATE TRIGGER files_search_update AFTER UPDATE OF
    folder_id, name, ext, format, title, artist, album, albumartist, genre, year
ON files BEGIN
    INSERT INTO search_queue (file_id) VALUES (new.id);
END;

CREATE TRIGGER files_search_delete AFTER DELETE ON files BEGIN
    INSERT INTO search_queue (file_id) VALUES (old.id);
END;

-- Existing files are indexed by the first scan after this migration (a missing index is
-- rebuilt from `files`), not queued here: the queue stays small.
