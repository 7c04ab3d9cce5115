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
use musicfs_tags::{Track, audio_extension, read_track};
use rayon::prelude::*;

use crate::summary::Counters;
use crate::write::{Op, PutFile};

pub(crate) struct Walk<'a> {
    pub pool: &'a ReadPool,
    pub tx: SyncSender<Op>,
    pub layout: &'a Layout,
    pub counters: &'a Counters,
    pub progress: &'a ProgressBar,
    pub origin_id: i64,
    pub root: &'a Path,
    /// Set when the writer is gone or the DB failed: walkers stop early.
    pub stop: &'a AtomicBool,
    pub db_error: &'a std::sync::Mutex<Option<DbError>>,
}

/// A folder as listed on disk.
struct Listing {
    files: Vec<(Vec<u8>, Metadata)>,
    subdirs: Vec<Vec<u8>>,
    /// False when any entry could not be read: then nothing in this folder is removed.
    complete: bool,
}

fn join(rel: &[u8], name: &[u8]) -> Vec<u8> {
    if rel.is_empty() {
        name.to_vec()
    } else {
        [rel, b"/", name].concat()
    }
}

pub(crate) fn mtime_ns(meta: &Metadata) -> i64 {
    meta.mtime()
        .saturating_mul(1_000_000_000)
        .saturating_add(meta.mtime_nsec())
}

impl Walk<'_> {
    fn abs(&self, rel: &[u8]) -> PathBuf {
        if rel.is_empty() {
            self.root.to_owned()
        } else {
            self.root.join(OsStr::from_bytes(rel))
        }
    }

    fn send(&self, op: Op) {
        if self.tx.send(op).is_err() {
            self.stop.store(true, Ordering::Relaxed);
        }
    }

    fn report(&self, what: &str, path: &Path, err: &dyn std::fmt::Display) {
        Counters::bump(&self.counters.errors, 1);
        self.progress
            .suspend(|| tracing::warn!("{}: {what}: {err}", path.display()));
    }

    fn db_failed(&self, err: DbError) {
        self.stop.store(true, Ordering::Relaxed);
        self.db_error.lock().unwrap().get_or_insert(err);
    }

    /// Walks the folder at `rel` (relative path bytes, empty for the origin root) and below.
    pub(crate) fn folder(&self, rel: Vec<u8>) {
        if self.stop.load(Ordering::Relaxed) {
            return;
        }
        let dir = self.abs(&rel);
        let listing = match self.list(&dir) {
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
        subdirs
            .into_par_iter()
            .for_each(|name| self.folder(join(&rel, &name)));
    }

    fn list(&self, dir: &Path) -> std::io::Result<Listing> {
        let mut listing = Listing {
            files: Vec::new(),
            subdirs: Vec::new(),
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
            // Symlinks to files are followed; symlinks to folders are not (no loops).
            match fs::metadata(entry.path()) {
                Ok(meta) if meta.is_file() => listing.files.push((name, meta)),
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
        let (stored, stored_subfolders) = {
            let conn = self.pool.get()?;
            match queries::folder_id(&conn, self.origin_id, rel)? {
                Some(id) => (
                    queries::folder_files(&conn, id)?,
                    queries::child_folders(&conn, id)?,
                ),
                None => (Vec::new(), Vec::new()),
            }
        };
        let mut stored: std::collections::HashMap<Vec<u8>, StoredFile> =
            stored.into_iter().map(|f| (f.name.clone(), f)).collect();

        let mut to_read = Vec::new();
        for (name, meta) in listing.files {
            let (size, mtime) = (meta.len() as i64, mtime_ns(&meta));
            match stored.remove(&name) {
                Some(s) if s.size == size && s.mtime_ns == mtime => {
                    Counters::bump(&self.counters.unchanged, 1);
                    self.progress.inc(1);
                }
                Some(_) => to_read.push((name, size, mtime, true)),
                None => to_read.push((name, size, mtime, false)),
            }
        }
        if listing.complete {
            for gone in stored.into_values() {
                self.send(Op::RemoveFile { file_id: gone.id });
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
        to_read.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let puts: Vec<(PutFile, bool)> = to_read
            .into_par_iter()
            .map(|(name, size, mtime, changed)| (self.read(rel, dir, name, size, mtime), changed))
            .collect();
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

    fn read(&self, rel: &[u8], dir: &Path, name: Vec<u8>, size: i64, mtime: i64) -> PutFile {
        let path = dir.join(OsStr::from_bytes(&name));
        let ext = audio_extension(&name).unwrap_or_default();
        let (track, error) = match read_track(&path) {
            Ok(track) => (track, None),
            Err(err) => {
                self.report(
                    "cannot read tags, indexed by file name",
                    &path,
                    &err.cause(),
                );
                (Track::default(), Some(err.cause()))
            }
        };
        let stem = String::from_utf8_lossy(&name[..name.len() - ext.len() - 1]).into_owned();
        let placements = self.layout.render(
            &track,
            &FileName {
                stem: &stem,
                ext: &ext,
            },
        );
        PutFile {
            origin_id: self.origin_id,
            folder: rel.to_vec(),
            name,
            size,
            mtime_ns: mtime,
            ext,
            track,
            error,
            placements,
        }
    }
}
