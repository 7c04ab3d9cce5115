-- musicfs schema, version 5: files the scanner deliberately does not serve, with the reason.

-- A symlink in a music folder whose target lies outside every music folder (origin root) is
-- not indexed: serving it would expose whatever it points at (with --allow-other, to every
-- user). It is listed here instead, so a user sees why a file is missing. The scanner rewrites
-- a folder's rows each time it walks that folder; they go when the folder goes.
CREATE TABLE skipped (
    folder_id INTEGER NOT NULL REFERENCES folders(id),
    name      ANY NOT NULL,                -- file name bytes inside the folder
    reason    TEXT NOT NULL,
    PRIMARY KEY (folder_id, name)
) STRICT, WITHOUT ROWID;

-- scan_errors now also lists skipped files (same two columns).
DROP VIEW scan_errors;
CREATE VIEW scan_errors AS
SELECT fp.abs_path, f.scan_error
FROM files f JOIN file_paths fp ON fp.file_id = f.id
WHERE f.scan_error IS NOT NULL
UNION ALL
SELECT o.root || '/' || CASE WHEN d.path = '' THEN s.name ELSE d.path || '/' || s.name END,
       s.reason
FROM skipped s JOIN folders d ON d.id = s.folder_id JOIN origins o ON o.id = d.origin_id;
