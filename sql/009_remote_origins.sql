-- musicfs schema, version 9: remote origins.

-- An origin's `root` is now its URL for remote kinds ('sftp://host:port/path',
-- 's3://bucket/prefix', never with a credential in it) and its absolute path for 'local'.
-- `kind` says which. Files of an S3 origin carry their ETag: a content-derived change marker,
-- compared with the size to tell an unchanged object (which is not read again) from a
-- rewritten one. NULL for local and SFTP files (size + mtime tell there).
ALTER TABLE files ADD COLUMN etag TEXT;
