//! The parallel walk: each folder is listed, compared with its own DB rows, and its delta sent
//! to the writer. Subfolders are walked in parallel (rayon).

use std::ffi::OsStr;
use std::fs::{self, Metadata};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;

use indicatif::ProgressBar;
use musicfs_db::queries::{self, StoredFile};
use musicfs_db::{DbError, ReadPool};
use musicfs_layout::{FileName, Layout};
use musicfs_tags::{Track, audio_extension, read_tracks_within};
use rayon::prelude::*;

use crate::albums::{StoredMember, regroup};
use crate::summary::Counters;
use crate::write::{MoveFile, Op, PutFile};

/// Files handed to a tag-reader thread at once (see `musicfs_tags::read_tracks_within`): large
/// enough to amortize the thread handoff, small enough that a folder's reads still spread
/// over all workers.
const READ_CHUNK: usize = 16;

pub(crate) struct Walk<'a> {
    pub pool: &'a ReadPool,
    pub tx: SyncSender<Op>,
    pub layout: &'a Layout,
    pub counters: &'a Counters,
    pub progress: &'a ProgressBar,
    pub origin_id: i64,
    pub source: &'a Source<'a>,
    pub tag_timeout: std::time::Duration,
    /// Set when the writer is gone or the DB failed: walkers stop early.
    pub stop: &'a AtomicBool,
    pub db_error: &'a std::sync::Mutex<Option<DbError>>,
    /// Set (to the root) when the root vanished or changed mid-scan, or a remote origin
    /// stopped answering: walkers stop.
    pub origin_lost: &'a std::sync::Mutex<Option<PathBuf>>,
    /// The album artist of a compilation (an album group of several artists, none leading).
    pub various_artists: &'a str,
}

/// Where the walked origin is, and how to reach it.
pub(crate) enum Source<'a> {
    /// A folder of this machine: walked with the OS, symlinks checked against every music
    /// folder, files followed across renames by (device, inode).
    Local {
        root: &'a Path,
        /// The root's (device, inode) when the scan checked it.
        root_identity: (u64, u64),
        /// Canonical roots of every music folder: a symlink may point anywhere beneath them.
        music_roots: &'a [PathBuf],
        /// Index symlinks that leave every music folder too (`--follow-external-symlinks`).
        follow_external: bool,
    },
    /// An SFTP server or an S3 bucket: listed and read through the origin layer.
    Remote(std::sync::Arc<dyn musicfs_origin::Origin>),
}

/// A new or changed file of a listed folder, to be read.
pub(crate) struct ToRead {
    pub name: Vec<u8>,
    pub size: i64,
    pub mtime: i64,
    /// Stored before (changed), or new.
    pub changed: bool,
    /// (device, inode) as listed (local origins).
    pub identity: Option<(i64, i64)>,
    /// The ETag as listed (S3).
    pub etag: Option<String>,
}

/// An audio file as listed.
pub(crate) struct Listed {
    pub name: Vec<u8>,
    pub size: i64,
    pub mtime: i64,
    pub identity: Option<(i64, i64)>,
    pub etag: Option<String>,
}

impl Listed {
    fn local(name: Vec<u8>, meta: &Metadata) -> Listed {
        Listed {
            name,
            size: meta.len() as i64,
            mtime: mtime_ns(meta),
            identity: Some((meta.dev() as i64, meta.ino() as i64)),
            etag: None,
        }
    }

    /// Unchanged since `stored` was read: same size, and same ETag where the origin has one
    /// (content-derived), else same mtime.
    fn unchanged(&self, stored: &StoredFile) -> bool {
        if stored.size != self.size || stored.retry {
            return false;
        }
        match (&self.etag, &stored.etag) {
            (Some(now), Some(then)) => now == then,
            _ => stored.mtime_ns == self.mtime,
        }
    }
}

/// A folder as listed.
pub(crate) struct Listing {
    /// The folder's (device, inode) just before it was listed (local origins).
    pub identity: Option<(u64, u64)>,
    pub files: Vec<Listed>,
    pub subdirs: Vec<Vec<u8>>,
    /// Audio-named symlinks not indexed: (name, reason).
    pub skipped: Vec<(Vec<u8>, String)>,
    /// False when any entry could not be read: then nothing in this folder is removed.
    pub complete: bool,
}

pub(crate) fn join(rel: &[u8], name: &[u8]) -> Vec<u8> {
    if rel.is_empty() {
        name.to_vec()
    } else {
        [rel, b"/", name].concat()
    }
}

/// Where a file appears under `layout`: rendered from its track and its file name `name`
/// (whose extension is `ext`).
pub(crate) fn placements(
    layout: &Layout,
    track: &Track,
    name: &[u8],
    ext: &str,
) -> Vec<musicfs_layout::Placement> {
    let stem = String::from_utf8_lossy(&name[..name.len().saturating_sub(ext.len() + 1)]);
    layout.render(track, &FileName { stem: &stem, ext })
}

pub(crate) fn mtime_ns(meta: &Metadata) -> i64 {
    meta.mtime()
        .saturating_mul(1_000_000_000)
        .saturating_add(meta.mtime_nsec())
}

impl Walk<'_> {
    /// The folder or file at `rel`, as shown in reports.
    pub(crate) fn abs(&self, rel: &[u8]) -> PathBuf {
        match self.source {
            Source::Local { root, .. } if rel.is_empty() => root.to_path_buf(),
            Source::Local { root, .. } => root.join(OsStr::from_bytes(rel)),
            Source::Remote(origin) => PathBuf::from(origin.url().locate(rel)),
        }
    }

    pub(crate) fn send(&self, op: Op) {
        if self.tx.send(op).is_err() {
            self.stop.store(true, Ordering::Relaxed);
        }
    }

    pub(crate) fn report(&self, what: &str, path: &Path, err: &dyn std::fmt::Display) {
        Counters::bump(&self.counters.errors, 1);
        self.progress
            .suspend(|| tracing::warn!("{}: {what}: {err}", path.display()));
    }

    /// Before removing what a listing no longer shows: the origin root and the listed folder
    /// must still be the ones the scan started with. A root unmounted mid-scan (a USB disk, a
    /// dropped network share) leaves an empty mountpoint behind, which must not read as "every
    /// file deleted". A lost root stops the whole scan; a replaced folder keeps its rows.
    fn still_there(&self, dir: &Path, listed: Option<(u64, u64)>) -> bool {
        let root = match self.source {
            Source::Local {
                root,
                root_identity,
                ..
            } => (crate::scan::identity(root) == Some(*root_identity)).then_some(()),
            Source::Remote(origin) => matches!(origin.stat_root(), Ok(true)).then_some(()),
        };
        if root.is_none() {
            self.lose_origin("origin root vanished, emptied or stopped answering during the scan");
            return false;
        }
        if matches!(self.source, Source::Remote(_)) {
            return true; // no folder identity on remote origins
        }
        if listed.is_none() || crate::scan::identity(dir) != listed {
            self.report(
                "folder vanished or was replaced while listed, keeping its files",
                dir,
                &"nothing removed",
            );
            return false;
        }
        true
    }

    /// Stops the whole walk, removing nothing: the origin as a whole is in doubt.
    pub(crate) fn lose_origin(&self, why: &str) {
        let root = self.abs(b"");
        self.report(&format!("{why}, stopping"), &root, &"nothing removed");
        self.origin_lost.lock().unwrap().get_or_insert(root);
        self.stop.store(true, Ordering::Relaxed);
    }

    fn db_failed(&self, err: DbError) {
        self.stop.store(true, Ordering::Relaxed);
        self.db_error.lock().unwrap().get_or_insert(err);
    }

    /// Walks the folder at `rel` (relative path bytes, empty for the origin root) and below.
    pub(crate) fn folder(&self, rel: Vec<u8>) {
        self.visit(rel, true)
    }

    /// Walks the folder at `rel`, and its subfolders too if `recursive` (a change notification
    /// for one file needs its folder listed, not everything below).
    pub(crate) fn visit(&self, rel: Vec<u8>, recursive: bool) {
        if self.stop.load(Ordering::Relaxed) {
            return;
        }
        let dir = self.abs(&rel);
        let listed = match self.source {
            Source::Local { .. } => self.list(&dir).map_err(|e| e.to_string()),
            Source::Remote(origin) => self.list_remote(origin.as_ref(), &rel),
        };
        let listing = match listed {
            Ok(listing) => listing,
            Err(err) => {
                // Unreadable folder: keep every row below it as it is.
                self.report("cannot list folder, keeping its files", &dir, &err);
                return;
            }
        };
        let subdirs = match self.diff(&rel, &dir, listing) {
            Ok(subdirs) => subdirs,
            Err(err) => return self.db_failed(err),
        };
        if recursive {
            subdirs
                .into_par_iter()
                .for_each(|name| self.folder(join(&rel, &name)));
        }
    }

    fn list(&self, dir: &Path) -> std::io::Result<Listing> {
        let Source::Local {
            music_roots,
            follow_external,
            ..
        } = self.source
        else {
            unreachable!("local listing of a remote origin");
        };
        let mut listing = Listing {
            identity: crate::scan::identity(dir),
            files: Vec::new(),
            subdirs: Vec::new(),
            skipped: Vec::new(),
            complete: true,
        };
        for entry in fs::read_dir(dir)? {
            let entry = match entry {
                Ok(e) => e,
                Err(err) => {
                    self.report("cannot read folder entry", dir, &err);
                    listing.complete = false;
                    continue;
                }
            };
            let name = entry.file_name().as_bytes().to_vec();
            let file_type = match entry.file_type() {
                Ok(t) => t,
                Err(err) => {
                    self.report("cannot stat", &entry.path(), &err);
                    listing.complete = false;
                    continue;
                }
            };
            if file_type.is_dir() {
                listing.subdirs.push(name);
                continue;
            }
            if audio_extension(&name).is_none() {
                continue;
            }
            if file_type.is_symlink() && !follow_external {
                match fs::canonicalize(entry.path()) {
                    Ok(target) if music_roots.iter().any(|r| target.starts_with(r)) => {}
                    Ok(target) => {
                        let reason = format!(
                            "symlink to {}, outside every music folder: not served \
                             (--follow-external-symlinks serves it)",
                            target.display()
                        );
                        self.report("skipped", &entry.path(), &reason);
                        listing.skipped.push((name, reason));
                        continue;
                    }
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue, // dangling
                    Err(err) => {
                        self.report("cannot resolve symlink", &entry.path(), &err);
                        listing.complete = false;
                        continue;
                    }
                }
            }
            // Symlinks to files are followed; symlinks to folders are not (no loops).
            match fs::metadata(entry.path()) {
                Ok(meta) if meta.is_file() => listing.files.push(Listed::local(name, &meta)),
                Ok(_) => {}
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {} // vanished, or dangling link
                Err(err) => {
                    self.report("cannot stat", &entry.path(), &err);
                    listing.complete = false;
                }
            }
        }
        Ok(listing)
    }

    /// Compares one listed folder with its DB rows; sends the delta; returns subfolders to walk.
    fn diff(&self, rel: &[u8], dir: &Path, listing: Listing) -> Result<Vec<Vec<u8>>, DbError> {
        let (folder_id, stored, stored_subfolders, mut stored_skipped) = {
            let conn = self.pool.get()?;
            match queries::folder_id(&conn, self.origin_id, rel)? {
                Some(id) => (
                    Some(id),
                    queries::folder_files(&conn, id)?,
                    queries::child_folders(&conn, id)?,
                    queries::skipped_names(&conn, id)?,
                ),
                None => (None, Vec::new(), Vec::new(), Vec::new()),
            }
        };
        let mut skipped_names: Vec<&[u8]> =
            listing.skipped.iter().map(|(n, _)| n.as_slice()).collect();
        skipped_names.sort_unstable();
        stored_skipped.sort_unstable();
        if skipped_names != stored_skipped {
            self.send(Op::Skipped {
                origin_id: self.origin_id,
                folder: rel.to_vec(),
                skipped: listing.skipped,
            });
        }
        let mut stored: std::collections::HashMap<Vec<u8>, StoredFile> =
            stored.into_iter().map(|f| (f.name.clone(), f)).collect();

        let mut to_read = Vec::new();
        // Unchanged files (id → already grouped), and whether anything in the folder moved:
        // its album groups are resolved again only then.
        let mut unchanged: std::collections::HashMap<i64, bool> = Default::default();
        let mut moved_in = false;
        for listed in listing.files {
            let unchanged_since = |s: &StoredFile| listed.unchanged(s);
            let found = stored.remove(&listed.name);
            let is_unchanged = found.as_ref().is_some_and(unchanged_since);
            let Listed {
                name,
                size,
                mtime,
                identity,
                etag,
            } = listed;
            match found {
                Some(s) if is_unchanged => {
                    if let Some(identity) = identity
                        && s.ino != Some(identity.1)
                    {
                        self.send(Op::SetIdentity {
                            file_id: s.id,
                            dev: identity.0,
                            ino: identity.1,
                        });
                    }
                    unchanged.insert(s.id, s.grouped);
                    Counters::bump(&self.counters.unchanged, 1);
                    self.progress.inc(1);
                }
                Some(_) => to_read.push(ToRead {
                    name,
                    size,
                    mtime,
                    changed: true,
                    identity,
                    etag,
                }),
                None => match identity
                    .map(|identity| self.moved_here(rel, &name, size, mtime, identity))
                    .transpose()?
                    .flatten()
                {
                    Some(mv) => {
                        moved_in = true;
                        self.progress.inc(1);
                        self.send(Op::Move(Box::new(mv)));
                    }
                    None => to_read.push(ToRead {
                        name,
                        size,
                        mtime,
                        changed: false,
                        identity,
                        etag,
                    }),
                },
            }
        }
        let vanished = !stored.is_empty();
        let removing = vanished || !stored_subfolders.is_empty();
        if listing.complete && removing && !self.still_there(dir, listing.identity) {
            return Ok(Vec::new());
        }
        if listing.complete {
            for gone in stored.into_values() {
                self.send(Op::RemoveFile {
                    file_id: gone.id,
                    folder_id: gone.folder_id,
                    name: gone.name,
                });
            }
            for (folder_id, path) in stored_subfolders {
                let name = path.rsplit(|&b| b == b'/').next().unwrap_or(&path);
                if !listing.subdirs.iter().any(|d| d == name) {
                    self.send(Op::RemoveFolder { folder_id });
                }
            }
        }
        // Read in parallel, send in name order: which of two colliding files in one folder
        // gets the plain name must not depend on thread timing.
        to_read.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        let read: Vec<Vec<(Option<PutFile>, bool)>> = match self.source {
            Source::Local { .. } => to_read
                .par_chunks(READ_CHUNK)
                .map(|chunk| self.read_chunk(rel, dir, chunk))
                .collect(),
            // One file per task: remote reads wait on the network, not on a core, so many
            // are in flight at once (the remote pool has many threads).
            Source::Remote(origin) => to_read
                .par_iter()
                .map(|file| vec![self.read_remote(origin, rel, file)])
                .collect(),
        };
        let mut puts = Vec::new();
        for (put, changed) in read.into_iter().flatten() {
            match put {
                Some(put) => puts.push((put, changed)),
                // Vanished between listing and reading: as if never listed (a stored row stays
                // until a scan no longer lists the file).
                None => self.progress.inc(1),
            }
        }
        let ungrouped = unchanged.values().any(|grouped| !grouped);
        if !puts.is_empty() || vanished || moved_in || ungrouped {
            let stored_members = match folder_id {
                Some(id) if !unchanged.is_empty() => {
                    let conn = self.pool.get()?;
                    queries::folder_tracks(&conn, id)?
                        .into_iter()
                        .filter_map(|s| {
                            let grouped = *unchanged.get(&s.id)?;
                            Some(StoredMember {
                                id: s.id,
                                name: s.name,
                                ext: s.ext,
                                track: s.track,
                                grouped,
                            })
                        })
                        .collect()
                }
                _ => Vec::new(),
            };
            let mut files: Vec<PutFile> = puts.iter_mut().map(|(p, _)| std::mem::take(p)).collect();
            for op in regroup(
                self.layout,
                self.various_artists,
                stored_members,
                &mut files,
            ) {
                self.send(op);
            }
            for ((slot, _), put) in puts.iter_mut().zip(files) {
                *slot = put;
            }
        }
        for (put, changed) in puts {
            if self.stop.load(Ordering::Relaxed) {
                break;
            }
            let counter = if changed {
                &self.counters.changed
            } else {
                &self.counters.added
            };
            Counters::bump(counter, 1);
            self.progress.inc(1);
            self.send(Op::Put(Box::new(put)));
        }
        Ok(listing.subdirs)
    }

    /// A stored file of this origin that was moved or renamed to `rel/name`: same device,
    /// inode, size and mtime, and its old place is gone (a hard link's is not). Its row will
    /// follow it, placed from its stored tags: nothing is read.
    fn moved_here(
        &self,
        rel: &[u8],
        name: &[u8],
        size: i64,
        mtime: i64,
        identity: (i64, i64),
    ) -> Result<Option<MoveFile>, DbError> {
        let conn = self.pool.get()?;
        for candidate in queries::files_by_identity(&conn, identity.0, identity.1)? {
            if candidate.size != size || candidate.mtime_ns != mtime {
                continue;
            }
            let Some(old) = queries::backing_path(&conn, candidate.id)? else {
                continue;
            };
            if old.origin_id != self.origin_id {
                continue;
            }
            let old_path = self.abs(&old.rel);
            let still_there =
                fs::metadata(&old_path).is_ok_and(|m| (m.dev() as i64, m.ino() as i64) == identity);
            if still_there {
                continue; // a hard link: both places are files of their own
            }
            let Some(track) = queries::stored_track(&conn, candidate.id)? else {
                continue;
            };
            let ext = audio_extension(name).unwrap_or_default();
            let placements = placements(self.layout, &track, name, &ext);
            return Ok(Some(MoveFile {
                file_id: candidate.id,
                from: (candidate.folder_id, candidate.name),
                origin_id: self.origin_id,
                folder: rel.to_vec(),
                name: name.to_vec(),
                ext,
                placements,
            }));
        }
        Ok(None)
    }

    /// Reads a chunk of one folder's files, in order. Each outcome is `None` for a file that
    /// vanished since it was listed.
    fn read_chunk(&self, rel: &[u8], dir: &Path, chunk: &[ToRead]) -> Vec<(Option<PutFile>, bool)> {
        let paths: Vec<PathBuf> = chunk
            .iter()
            .map(|f| dir.join(OsStr::from_bytes(&f.name)))
            .collect();
        let refs: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
        let outcomes = read_tracks_within(&refs, self.tag_timeout);
        chunk
            .iter()
            .zip(paths.iter().zip(outcomes))
            .map(|(f, (path, outcome))| (self.put(rel, path, f, outcome), f.changed))
            .collect()
    }

    /// The file's row from its read outcome; `None` if it vanished since it was listed.
    pub(crate) fn put(
        &self,
        rel: &[u8],
        path: &Path,
        file: &ToRead,
        outcome: Result<Track, musicfs_tags::TagError>,
    ) -> Option<PutFile> {
        let name = file.name.clone();
        let ext = audio_extension(&name).unwrap_or_default();
        let (track, error, retry) = match outcome {
            Ok(track) => (track, None, false),
            Err(err) if err.is_not_found() => return None,
            Err(err) => {
                let what = if err.is_transient() {
                    "cannot read tags, indexed by file name, will retry next scan"
                } else {
                    "cannot read tags, indexed by file name"
                };
                self.report(what, path, &err.cause());
                (Track::default(), Some(err.cause()), err.is_transient())
            }
        };
        let placements = placements(self.layout, &track, &name, &ext);
        Some(PutFile {
            origin_id: self.origin_id,
            folder: rel.to_vec(),
            name,
            size: file.size,
            mtime_ns: file.mtime,
            ext,
            track,
            error,
            retry,
            placements,
            identity: file.identity,
            etag: file.etag.clone(),
        })
    }
}
