-- musicfs schema, version 8: album-level values, resolved per album group.

-- One real album must show as one folder even when its tracks' tags disagree (a track
-- without its year or album artist). The scanner resolves, per album group (the tracks of
-- one real folder sharing an album tag, plus untagged ones in a folder whose tagged tracks
-- agree), the album name, album artist and year by majority, and stores them on each track
-- (docs/templates.md: $album_name, $album_artist, $album_year). NULL: no group value, the
-- track's own tags are used. `grouped` = 1 once resolved (rows of older DBs are resolved the
-- next time their folder is walked).
ALTER TABLE files ADD COLUMN group_album TEXT;
ALTER TABLE files ADD COLUMN group_artist TEXT;
ALTER TABLE files ADD COLUMN group_year INTEGER;
ALTER TABLE files ADD COLUMN grouped INTEGER NOT NULL DEFAULT 0 CHECK (grouped IN (0, 1));
