-- musicfs schema, version 3: files whose last read failed for a reason that may pass.

-- 1 when the scanner could not read this file for a transient reason (the per-file time limit
-- ran out, or the file could not be opened): the next scan reads it again even though its size
-- and mtime are unchanged. 0 otherwise, including files whose contents are broken (those are
-- only re-read when they change). `scan_error` says why.
ALTER TABLE files ADD COLUMN scan_retry INTEGER NOT NULL DEFAULT 0 CHECK (scan_retry IN (0, 1));
