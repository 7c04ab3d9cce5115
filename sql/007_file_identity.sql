-- musicfs schema, version 7: where a file is on disk, to follow it when it moves.

-- (device, inode) of each file as last listed. A file that appears at a new place in its
-- origin with the same device, inode, size and mtime, while its old place is gone, was moved
-- or renamed: its row follows it (tags are not read again, and entries whose rendered path is
-- unchanged keep their inode). NULL until the scanner lists the file once (rows of older DBs).
ALTER TABLE files ADD COLUMN dev INTEGER;
ALTER TABLE files ADD COLUMN ino INTEGER;
CREATE INDEX files_by_inode ON files(ino) WHERE ino IS NOT NULL;
