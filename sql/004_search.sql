-- musicfs schema, version 4: the search index outbox.

-- Files whose search document must be (re)written or deleted. Filled by triggers in the same
-- transaction as the change itself, so no writer (the scanner, or a user's sqlite3 editing
-- tags) can change a file without the index hearing of it. The scanner drains it after each
-- committed batch: it updates and commits the index, then deletes the rows it applied. A crash
-- between the two replays them (idempotent). The index lives beside the DB
-- (`settings.search_index`); it is derived data and can always be rebuilt from `files`.
CREATE TABLE search_queue (
    file_id INTEGER PRIMARY KEY
) STRICT;

CREATE TRIGGER files_search_insert AFTER INSERT ON files BEGIN
    INSERT OR IGNORE INTO search_queue (file_id) VALUES (new.id);
END;

CREATE TRIGGER files_search_update AFTER UPDATE OF
    folder_id, name, ext, format, title, artist, album, albumartist, genre, year
ON files BEGIN
    INSERT OR IGNORE INTO search_queue (file_id) VALUES (new.id);
END;

CREATE TRIGGER files_search_delete AFTER DELETE ON files BEGIN
    INSERT OR IGNORE INTO search_queue (file_id) VALUES (old.id);
END;

-- Existing files are indexed by the first scan after this migration (a missing index is
-- rebuilt from `files`), not queued here: the queue stays small.
