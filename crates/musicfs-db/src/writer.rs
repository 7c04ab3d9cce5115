//! The single writer: every change to the library goes through here, in transactions that
//! leave files, entries and dirs consistent at every commit (a scanner killed at any instant
//! loses at most the open batch).

use std::collections::HashSet;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use musicfs_tags::Track;
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::error::QueryContext;
use crate::{PathBytes, ROOT_ID, Result, schema};

/// One audio file as the scanner saw it.
#[derive(Debug, Clone)]
pub struct FileRecord<'a> {
    pub name: &'a [u8],
    pub size: i64,
    pub mtime_ns: i64,
    pub ext: &'a str,
    pub track: &'a Track,
    pub scan_error: Option<&'a str>,
    /// The read failed for a transient reason (`files.scan_retry`).
    pub scan_retry: bool,
    /// (device, inode) as listed (`files.dev`, `files.ino`).
    pub identity: Option<(i64, i64)>,
    /// The S3 ETag as listed (`files.etag`).
    pub etag: Option<&'a str>,
}

/// Naming rules of the virtual tree, supplied by the layout: the DB crate stores names, the
/// layout decides them.
pub trait NamePolicy {
    /// The `n`-th (n ≥ 2) alternative for a taken name; `ext` is "" for directories.
    fn disambiguate(&self, name: &str, ext: &str, n: u32) -> String;
    /// The collision key in case-insensitive mode; `None` in case-sensitive mode.
    fn fold(&self, name: &str) -> Option<String>;
}

/// A stored file with its tags, for re-rendering the tree without reading audio.
#[derive(Debug, Clone)]
pub struct StoredTrack {
    pub id: i64,
    pub name: Vec<u8>,
    pub ext: String,
    pub track: Track,
}

/// Rows of `changes` kept: enough for a mount polling every 200 ms to never fall behind,
/// small enough to stay a few tens of MB.
pub const CHANGES_KEPT: i64 = 1_000_000;

pub struct Writer {
    conn: Connection,
    in_tx: bool,
    now_ns: i64,
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// A statement over a folder's subtree: `sub` holds folder ?1 and every folder below it.
macro_rules! subtree {
    ($tail:literal) => {
        concat!(
            "WITH RECURSIVE sub(id) AS (SELECT ?1 UNION ALL \
             SELECT f.id FROM folders f JOIN sub ON f.parent_id = sub.id) ",
            $tail
        )
    };
}

pub(crate) const TRACK_COLUMNS: &str = "format, duration_ms, bitrate_kbps, sample_rate, bit_depth, channels, \
     title, artist, album, albumartist, genre, date, year, track, tracktotal, disc, disctotal, \
     compilation, group_album, group_artist, group_year";

pub(crate) fn track_from_row(r: &Row<'_>, at: usize) -> rusqlite::Result<Track> {
    Ok(Track {
        format: r.get(at)?,
        duration_ms: r.get::<_, Option<i64>>(at + 1)?.map(|d| d.max(0) as u64),
        bitrate_kbps: r.get(at + 2)?,
        sample_rate: r.get(at + 3)?,
        bit_depth: r.get(at + 4)?,
        channels: r.get(at + 5)?,
        title: r.get(at + 6)?,
        artist: r.get(at + 7)?,
        album: r.get(at + 8)?,
        albumartist: r.get(at + 9)?,
        genre: r.get(at + 10)?,
        date: r.get(at + 11)?,
        // at + 12 is `year`, derived from date
        track: r.get(at + 13)?,
        tracktotal: r.get(at + 14)?,
        disc: r.get(at + 15)?,
        disctotal: r.get(at + 16)?,
        compilation: r.get::<_, Option<i64>>(at + 17)? == Some(1),
        album_group: musicfs_tags::AlbumValues {
            album: r.get(at + 18)?,
            artist: r.get(at + 19)?,
            year: r.get(at + 20)?,
        },
    })
}

impl Writer {
    pub fn open(path: &Path) -> Result<Writer> {
        Ok(Writer {
            conn: schema::open_writer(path)?,
            in_tx: false,
            now_ns: now_ns(),
        })
    }

    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Starts a write transaction (IMMEDIATE: takes the write lock now, not at first write).
    pub fn begin(&mut self) -> Result<()> {
        self.conn.execute_batch("BEGIN IMMEDIATE").ctx("begin")?;
        self.in_tx = true;
        self.now_ns = now_ns();
        Ok(())
    }

    pub fn commit(&mut self) -> Result<()> {
        self.conn
            .prepare_cached("DELETE FROM changes WHERE seq <= (SELECT max(seq) FROM changes) - ?1")
            .ctx("prune_changes")?
            .execute(params![CHANGES_KEPT])
            .ctx("prune_changes")?;
        self.conn.execute_batch("COMMIT").ctx("commit")?;
        self.in_tx = false;
        Ok(())
    }

    /// Moves WAL frames into the DB file when no reader needs them (PASSIVE: never blocks a
    /// mount), keeping the WAL small for readers. Best effort.
    pub fn checkpoint(&self) {
        let _ = self.conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE)");
    }

    pub fn in_transaction(&self) -> bool {
        self.in_tx
    }

    pub fn setting(&self, key: &str) -> Result<Option<String>> {
        self.conn
            .prepare_cached("SELECT value FROM settings WHERE key = ?1")
            .ctx("setting")?
            .query_row(params![key], |r| r.get(0))
            .optional()
            .ctx("setting")
    }

    pub fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        self.conn
            .prepare_cached("INSERT OR REPLACE INTO settings (key, value) VALUES (?1, ?2)")
            .ctx("set_setting")?
            .execute(params![key, value])
            .ctx("set_setting")?;
        Ok(())
    }

    /// Replaces the stored views (layout templates).
    pub fn replace_views(&self, views: &[(String, String)]) -> Result<()> {
        self.conn
            .execute("DELETE FROM views", [])
            .ctx("replace_views")?;
        for (name, template) in views {
            self.conn
                .execute(
                    "INSERT INTO views (name, template) VALUES (?1, ?2)",
                    params![name, template],
                )
                .ctx("replace_views")?;
        }
        Ok(())
    }

    /// The id of the origin rooted at `root`, created if new.
    pub fn origin(&self, root: &[u8]) -> Result<i64> {
        self.origin_of_kind(root, "local")
    }

    /// The id of the origin `root` of `kind` (`local`: an absolute path; `sftp`, `s3`: a URL),
    /// created if new.
    pub fn origin_of_kind(&self, root: &[u8], kind: &str) -> Result<i64> {
        let root = PathBytes::borrowed(root);
        self.conn
            .prepare_cached(
                "INSERT INTO origins (root, kind) VALUES (?1, ?2) ON CONFLICT (root) DO NOTHING",
            )
            .ctx("origin")?
            .execute(params![root, kind])
            .ctx("origin")?;
        self.conn
            .prepare_cached("SELECT id FROM origins WHERE root = ?1")
            .ctx("origin")?
            .query_row(params![root], |r| r.get(0))
            .ctx("origin")
    }

    /// The id of folder `path` of an origin, created with its missing parents.
    pub fn folder(&self, origin_id: i64, path: &[u8]) -> Result<i64> {
        if let Some(id) = crate::queries::folder_id(&self.conn, origin_id, path)? {
            return Ok(id);
        }
        let parent = if path.is_empty() {
            None
        } else {
            let parent_path = match path.iter().rposition(|&b| b == b'/') {
                Some(i) => &path[..i],
                None => &b""[..],
            };
            Some(self.folder(origin_id, parent_path)?)
        };
        self.conn
            .prepare_cached(
                "INSERT INTO folders (origin_id, parent_id, path) VALUES (?1, ?2, ?3) RETURNING id",
            )
            .ctx("folder")?
            .query_row(params![origin_id, parent, PathBytes::borrowed(path)], |r| {
                r.get(0)
            })
            .ctx("folder")
    }

    /// Inserts or updates a file row; returns its id (unchanged for an existing file).
    pub fn put_file(&self, folder_id: i64, rec: &FileRecord) -> Result<i64> {
        let t = rec.track;
        let old_size: Option<i64> = self
            .conn
            .prepare_cached("SELECT size FROM files WHERE folder_id = ?1 AND name = ?2")
            .ctx("put_file")?
            .query_row(params![folder_id, PathBytes::borrowed(rec.name)], |r| {
                r.get(0)
            })
            .optional()
            .ctx("put_file")?;
        match old_size {
            Some(old) => self.add_totals(0, rec.size - old)?,
            None => self.add_totals(1, rec.size)?,
        }
        let sql = format!(
            "INSERT INTO files (folder_id, name, size, mtime_ns, ext, scan_error, scanned_ns, \
             {TRACK_COLUMNS}, scan_retry, dev, ino, etag, grouped) VALUES (?1, ?2, ?3, ?4, ?5, ?6, \
             ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, \
             ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32, 1) \
             ON CONFLICT (folder_id, name) DO UPDATE SET size = excluded.size, \
             mtime_ns = excluded.mtime_ns, ext = excluded.ext, scan_error = excluded.scan_error, \
             scanned_ns = excluded.scanned_ns, format = excluded.format, \
             duration_ms = excluded.duration_ms, bitrate_kbps = excluded.bitrate_kbps, \
             sample_rate = excluded.sample_rate, bit_depth = excluded.bit_depth, \
             channels = excluded.channels, title = excluded.title, artist = excluded.artist, \
             album = excluded.album, albumartist = excluded.albumartist, genre = excluded.genre, \
             date = excluded.date, year = excluded.year, track = excluded.track, \
             tracktotal = excluded.tracktotal, disc = excluded.disc, disctotal = excluded.disctotal, \
             compilation = excluded.compilation, scan_retry = excluded.scan_retry, \
             dev = excluded.dev, ino = excluded.ino, group_album = excluded.group_album, \
             group_artist = excluded.group_artist, group_year = excluded.group_year, \
             etag = excluded.etag, grouped = 1 RETURNING id"
        );
        self.conn
            .prepare_cached(&sql)
            .ctx("put_file")?
            .query_row(
                params![
                    folder_id,
                    PathBytes::borrowed(rec.name),
                    rec.size,
                    rec.mtime_ns,
                    rec.ext,
                    rec.scan_error,
                    self.now_ns,
                    t.format,
                    t.duration_ms.map(|d| d as i64),
                    t.bitrate_kbps,
                    t.sample_rate,
                    t.bit_depth,
                    t.channels,
                    t.title,
                    t.artist,
                    t.album,
                    t.albumartist,
                    t.genre,
                    t.date,
                    t.year(),
                    t.track,
                    t.tracktotal,
                    t.disc,
                    t.disctotal,
                    t.compilation.then_some(1),
                    t.album_group.album,
                    t.album_group.artist,
                    t.album_group.year,
                    rec.scan_retry,
                    rec.identity.map(|i| i.0),
                    rec.identity.map(|i| i.1),
                    rec.etag,
                ],
                |r| r.get(0),
            )
            .ctx("put_file")
    }

    /// Makes the file's entries match `placements` ((key, components) per view). Entries whose
    /// key is unchanged are kept, with their inode; the others are removed and new ones added.
    /// Returns how many entries were added or removed. `file_changed`: the file's attributes
    /// changed, so kept entries are logged for the mount to refresh.
    pub fn place(
        &self,
        file_id: i64,
        placements: &[(i64, &[String])],
        ext: &str,
        policy: &dyn NamePolicy,
        file_changed: bool,
    ) -> Result<usize> {
        let existing: Vec<(i64, i64, i64, String)> = self
            .conn
            .prepare_cached(
                "SELECT id, parent_id, render_key, name FROM entries WHERE file_id = ?1",
            )
            .ctx("place")?
            .query_map(params![file_id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .ctx("place")?
            .collect::<rusqlite::Result<_>>()
            .ctx("place")?;
        let wanted: HashSet<i64> = placements.iter().map(|(k, _)| *k).collect();
        let have: HashSet<i64> = existing.iter().map(|e| e.2).collect();
        let mut changes = 0;
        for (id, parent, key, name) in &existing {
            if !wanted.contains(key) {
                self.remove_entry(*id, *parent)?;
                changes += 1;
            } else if file_changed {
                self.log_change(*parent, name, *id)?;
            }
        }
        for (key, components) in placements {
            if have.contains(key) || components.is_empty() {
                continue;
            }
            let (dirs, file) = components.split_at(components.len() - 1);
            let mut parent = ROOT_ID;
            for dir in dirs {
                parent = self.ensure_dir(parent, dir, policy)?;
            }
            let name = self.free_name(parent, &file[0], ext, policy)?;
            self.insert_entry(parent, &name, Some((file_id, *key)), policy)?;
            changes += 1;
        }
        Ok(changes)
    }

    /// Removes a file with its entries (pruning directories left empty) and chunks.
    pub fn remove_file(&self, file_id: i64) -> Result<()> {
        let entries: Vec<(i64, i64)> = self
            .conn
            .prepare_cached("SELECT id, parent_id FROM entries WHERE file_id = ?1")
            .ctx("remove_file")?
            .query_map(params![file_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .ctx("remove_file")?
            .collect::<rusqlite::Result<_>>()
            .ctx("remove_file")?;
        for (id, parent) in entries {
            self.remove_entry(id, parent)?;
        }
        self.conn
            .prepare_cached("DELETE FROM chunks WHERE file_id = ?1")
            .ctx("remove_file")?
            .execute(params![file_id])
            .ctx("remove_file")?;
        let size: Option<i64> = self
            .conn
            .prepare_cached("DELETE FROM files WHERE id = ?1 RETURNING size")
            .ctx("remove_file")?
            .query_row(params![file_id], |r| r.get(0))
            .optional()
            .ctx("remove_file")?;
        if let Some(size) = size {
            self.add_totals(-1, -size)?;
        }
        Ok(())
    }

    /// Moves a file's row from `from` (folder id, name) to `to` (a file moved on disk),
    /// keeping its id and tags; the caller re-places its entries. Returns false, changing
    /// nothing, if the row is no longer at `from` (another link claimed it first).
    pub fn move_file(&self, file_id: i64, from: (i64, &[u8]), to: (i64, &[u8])) -> Result<bool> {
        let n = self
            .conn
            .prepare_cached(
                "UPDATE files SET folder_id = ?4, name = ?5 \
                 WHERE id = ?1 AND folder_id = ?2 AND name = ?3",
            )
            .ctx("move_file")?
            .execute(params![
                file_id,
                from.0,
                PathBytes::borrowed(from.1),
                to.0,
                PathBytes::borrowed(to.1)
            ])
            .ctx("move_file")?;
        Ok(n == 1)
    }

    /// Stores a file's album-group values (see `musicfs_tags::album`).
    pub fn set_group(&self, file_id: i64, group: &musicfs_tags::AlbumValues) -> Result<()> {
        self.conn
            .prepare_cached(
                "UPDATE files SET group_album = ?2, group_artist = ?3, group_year = ?4, \
                 grouped = 1 WHERE id = ?1",
            )
            .ctx("set_group")?
            .execute(params![file_id, group.album, group.artist, group.year])
            .ctx("set_group")?;
        Ok(())
    }

    /// Records a file's (device, inode).
    pub fn set_identity(&self, file_id: i64, identity: (i64, i64)) -> Result<()> {
        self.conn
            .prepare_cached("UPDATE files SET dev = ?2, ino = ?3 WHERE id = ?1")
            .ctx("set_identity")?
            .execute(params![file_id, identity.0, identity.1])
            .ctx("set_identity")?;
        Ok(())
    }

    /// Removes the file if it is still `name` in folder `folder_id` (it may have been moved
    /// since it was found missing there). Returns whether it was removed.
    pub fn remove_file_at(&self, file_id: i64, folder_id: i64, name: &[u8]) -> Result<bool> {
        let there: bool = self
            .conn
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM files WHERE id = ?1 AND folder_id = ?2 AND name = ?3)",
            )
            .ctx("remove_file_at")?
            .query_row(params![file_id, folder_id, PathBytes::borrowed(name)], |r| {
                r.get(0)
            })
            .ctx("remove_file_at")?;
        if there {
            self.remove_file(file_id)?;
        }
        Ok(there)
    }

    /// Removes up to `limit` files of a folder's subtree (the folder, its subfolders, theirs);
    /// once none is left, the folders themselves. Returns (files removed, done). Call again in
    /// later transactions until done: a folder of a million files is removed in bounded
    /// transactions, each leaving a consistent DB (a folder row without files is harmless).
    pub fn remove_folder_page(&self, folder_id: i64, limit: u32) -> Result<(u64, bool)> {
        let ids: Vec<i64> = self
            .conn
            .prepare_cached(subtree!(
                "SELECT id FROM files WHERE folder_id IN sub LIMIT ?2"
            ))
            .ctx("remove_folder")?
            .query_map(params![folder_id, limit], |r| r.get(0))
            .ctx("remove_folder")?
            .collect::<rusqlite::Result<_>>()
            .ctx("remove_folder")?;
        for id in &ids {
            self.remove_file(*id)?;
        }
        if ids.len() as u32 >= limit.max(1) {
            return Ok((ids.len() as u64, false));
        }
        // No file left below: the folder rows go, in one statement (children with parents).
        self.conn
            .prepare_cached(subtree!("DELETE FROM skipped WHERE folder_id IN sub"))
            .ctx("remove_folder")?
            .execute(params![folder_id])
            .ctx("remove_folder")?;
        self.conn
            .prepare_cached(subtree!("DELETE FROM folders WHERE id IN sub"))
            .ctx("remove_folder")?
            .execute(params![folder_id])
            .ctx("remove_folder")?;
        Ok((ids.len() as u64, true))
    }

    /// Removes a folder, its subfolders and all their files in this transaction. Returns the
    /// files removed. (The scanner uses [`Writer::remove_folder_page`] to stay bounded.)
    pub fn remove_folder(&self, folder_id: i64) -> Result<u64> {
        let mut removed = 0;
        loop {
            let (n, done) = self.remove_folder_page(folder_id, u32::MAX)?;
            removed += n;
            if done {
                return Ok(removed);
            }
        }
    }

    /// Replaces the folder's skipped files (`skipped`): (name bytes, reason).
    pub fn set_skipped(&self, folder_id: i64, skipped: &[(Vec<u8>, String)]) -> Result<()> {
        self.conn
            .prepare_cached("DELETE FROM skipped WHERE folder_id = ?1")
            .ctx("set_skipped")?
            .execute(params![folder_id])
            .ctx("set_skipped")?;
        let mut insert = self
            .conn
            .prepare_cached("INSERT INTO skipped (folder_id, name, reason) VALUES (?1, ?2, ?3)")
            .ctx("set_skipped")?;
        for (name, reason) in skipped {
            insert
                .execute(params![folder_id, PathBytes::borrowed(name), reason])
                .ctx("set_skipped")?;
        }
        Ok(())
    }

    /// Up to `limit` stored files with id > `after`, with their tags, in id order.
    pub fn stored_tracks(&self, after: i64, limit: u32) -> Result<Vec<StoredTrack>> {
        let sql = format!(
            "SELECT id, name, ext, {TRACK_COLUMNS} FROM files WHERE id > ?1 ORDER BY id LIMIT ?2"
        );
        let mut stmt = self.conn.prepare_cached(&sql).ctx("stored_tracks")?;
        let rows = stmt
            .query_map(params![after, limit], |r| {
                Ok(StoredTrack {
                    id: r.get(0)?,
                    name: r.get::<_, PathBytes>(1)?.into_vec(),
                    ext: r.get(2)?,
                    track: track_from_row(r, 3)?,
                })
            })
            .ctx("stored_tracks")?;
        rows.collect::<rusqlite::Result<_>>().ctx("stored_tracks")
    }

    /// Finds (id, file_id) of the entry that `name` collides with in `parent`.
    fn find(
        &self,
        parent: i64,
        name: &str,
        policy: &dyn NamePolicy,
    ) -> Result<Option<(i64, Option<i64>)>> {
        let row = |r: &Row<'_>| Ok((r.get(0)?, r.get(1)?));
        match policy.fold(name) {
            Some(folded) => self
                .conn
                .prepare_cached(
                    "SELECT id, file_id FROM entries WHERE parent_id = ?1 AND name_fold = ?2",
                )
                .ctx("find")?
                .query_row(params![parent, folded], row)
                .optional()
                .ctx("find"),
            None => self
                .conn
                .prepare_cached(
                    "SELECT id, file_id FROM entries WHERE parent_id = ?1 AND name = ?2",
                )
                .ctx("find")?
                .query_row(params![parent, name], row)
                .optional()
                .ctx("find"),
        }
    }

    /// The directory `name` in `parent`, created if missing. A file already holding the name
    /// pushes the directory to `name (2)`, `name (3)`, ...
    fn ensure_dir(&self, parent: i64, name: &str, policy: &dyn NamePolicy) -> Result<i64> {
        let mut n = 1;
        loop {
            let candidate = if n == 1 {
                name.to_owned()
            } else {
                policy.disambiguate(name, "", n)
            };
            match self.find(parent, &candidate, policy)? {
                Some((id, None)) => return Ok(id),
                Some((_, Some(_))) => n += 1,
                None => return self.insert_entry(parent, &candidate, None, policy),
            }
        }
    }

    /// A free name for a new entry in `parent`: `name` itself, else the next of `name (2)`,
    /// `name (3)`, ... after the last one handed out there (`name_counters`), so the k-th
    /// collision costs O(1) queries, not k. An existing entry is never renamed, so names are
    /// stable; numbers are not reused while the directory exists.
    fn free_name(
        &self,
        parent: i64,
        name: &str,
        ext: &str,
        policy: &dyn NamePolicy,
    ) -> Result<String> {
        if self.find(parent, name, policy)?.is_none() {
            return Ok(name.to_owned());
        }
        let base = policy.fold(name).unwrap_or_else(|| name.to_owned());
        let mut n: u32 = self
            .conn
            .prepare_cached("SELECT next FROM name_counters WHERE parent_id = ?1 AND base = ?2")
            .ctx("free_name")?
            .query_row(params![parent, base], |r| r.get(0))
            .optional()
            .ctx("free_name")?
            .unwrap_or(2);
        // More than one probe only when a name like `x (3).flac` also comes from the tags.
        loop {
            let candidate = policy.disambiguate(name, ext, n);
            n = n.saturating_add(1);
            if self.find(parent, &candidate, policy)?.is_none() {
                self.conn
                    .prepare_cached(
                        "INSERT INTO name_counters (parent_id, base, next) VALUES (?1, ?2, ?3) \
                         ON CONFLICT (parent_id, base) DO UPDATE SET next = excluded.next",
                    )
                    .ctx("free_name")?
                    .execute(params![parent, base, n])
                    .ctx("free_name")?;
                return Ok(candidate);
            }
        }
    }

    fn insert_entry(
        &self,
        parent: i64,
        name: &str,
        file: Option<(i64, i64)>,
        policy: &dyn NamePolicy,
    ) -> Result<i64> {
        let id: i64 = self
            .conn
            .prepare_cached(
                "INSERT INTO entries (parent_id, name, file_id, render_key, name_fold) \
                 VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
            )
            .ctx("insert_entry")?
            .query_row(
                params![
                    parent,
                    name,
                    file.map(|f| f.0),
                    file.map(|f| f.1),
                    policy.fold(name)
                ],
                |r| r.get(0),
            )
            .ctx("insert_entry")?;
        self.log_change(parent, name, id)?;
        if file.is_none() {
            self.conn
                .prepare_cached("INSERT INTO dirs (id, nentries, mtime_ns) VALUES (?1, 0, ?2)")
                .ctx("insert_entry")?
                .execute(params![id, self.now_ns])
                .ctx("insert_entry")?;
        }
        self.touch_dir(parent, 1)?;
        Ok(id)
    }

    /// Removes one entry and then every directory above it that it left empty (not the root).
    fn remove_entry(&self, id: i64, parent: i64) -> Result<()> {
        let (mut id, mut parent) = (id, parent);
        loop {
            self.conn
                .prepare_cached("DELETE FROM dirs WHERE id = ?1")
                .ctx("remove_entry")?
                .execute(params![id])
                .ctx("remove_entry")?;
            self.conn
                .prepare_cached("DELETE FROM name_counters WHERE parent_id = ?1")
                .ctx("remove_entry")?
                .execute(params![id])
                .ctx("remove_entry")?;
            let name: String = self
                .conn
                .prepare_cached("DELETE FROM entries WHERE id = ?1 RETURNING name")
                .ctx("remove_entry")?
                .query_row(params![id], |r| r.get(0))
                .ctx("remove_entry")?;
            self.log_change(parent, &name, id)?;
            let left = self.touch_dir(parent, -1)?;
            if left > 0 || parent == ROOT_ID {
                return Ok(());
            }
            let grandparent: i64 = self
                .conn
                .prepare_cached("SELECT parent_id FROM entries WHERE id = ?1")
                .ctx("remove_entry")?
                .query_row(params![parent], |r| r.get(0))
                .ctx("remove_entry")?;
            (id, parent) = (parent, grandparent);
        }
    }

    fn log_change(&self, parent: i64, name: &str, entry: i64) -> Result<()> {
        self.conn
            .prepare_cached("INSERT INTO changes (parent_id, name, entry_id) VALUES (?1, ?2, ?3)")
            .ctx("log_change")?
            .execute(params![parent, name, entry])
            .ctx("log_change")?;
        Ok(())
    }

    fn add_totals(&self, files: i64, bytes: i64) -> Result<()> {
        self.conn
            .prepare_cached("UPDATE totals SET files = files + ?1, bytes = bytes + ?2 WHERE id = 1")
            .ctx("add_totals")?
            .execute(params![files, bytes])
            .ctx("add_totals")?;
        Ok(())
    }

    /// Adds `delta` to a directory's child count, stamps its mtime; returns the new count.
    fn touch_dir(&self, dir: i64, delta: i64) -> Result<i64> {
        self.conn
            .prepare_cached(
                "UPDATE dirs SET nentries = nentries + ?2, mtime_ns = ?3 WHERE id = ?1 \
                 RETURNING nentries",
            )
            .ctx("touch_dir")?
            .query_row(params![dir, delta, self.now_ns], |r| r.get(0))
            .ctx("touch_dir")
    }
}
