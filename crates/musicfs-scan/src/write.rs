//! The writer thread: applies walker operations in transactions bounded by count and time.

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Instant;

use musicfs_db::{DbError, FileRecord, Writer};
use musicfs_layout::Placement;
use musicfs_tags::Track;

use crate::policy::LayoutPolicy;
use crate::summary::Counters;

/// One change found by a walker.
pub(crate) enum Op {
    Put(Box<PutFile>),
    /// A stored file seen at a new place in its origin (same device, inode, size and mtime;
    /// gone from the old place): its row follows it, tags are not read again.
    Move(Box<MoveFile>),
    /// The file (if still in `folder_id` as `name`: it may have moved meanwhile) is gone.
    RemoveFile {
        file_id: i64,
        folder_id: i64,
        name: Vec<u8>,
    },
    RemoveFolder {
        folder_id: i64,
    },
    /// An unchanged file whose album-group values changed (its folder's majority moved).
    Regroup(Box<Regroup>),
    /// An unchanged file's (device, inode), stored for the first time (DBs made before
    /// schema version 7 lack them).
    SetIdentity {
        file_id: i64,
        dev: i64,
        ino: i64,
    },
    /// Sent once by the scan when every walker is done: apply the removals held back until
    /// now (all of them when `removals`, none when the walk stopped early).
    WalkDone {
        removals: bool,
    },
    /// The folder's skipped files are now exactly these: (name, reason).
    Skipped {
        origin_id: i64,
        folder: Vec<u8>,
        skipped: Vec<(Vec<u8>, String)>,
    },
}

/// A new or changed file, with tags read and placements rendered by the walker.
#[derive(Default)]
pub(crate) struct PutFile {
    pub origin_id: i64,
    pub folder: Vec<u8>,
    pub name: Vec<u8>,
    pub size: i64,
    pub mtime_ns: i64,
    pub ext: String,
    pub track: Track,
    pub error: Option<String>,
    /// The error may pass: read the file again next scan (`files.scan_retry`).
    pub retry: bool,
    pub placements: Vec<Placement>,
    /// (device, inode) of the file as listed (local origins).
    pub identity: Option<(i64, i64)>,
    /// The ETag as listed (S3).
    pub etag: Option<String>,
}

/// New album-group values for a stored file, with its placements rendered from them.
pub(crate) struct Regroup {
    pub file_id: i64,
    pub values: musicfs_tags::AlbumValues,
    pub ext: String,
    pub placements: Vec<Placement>,
}

/// A stored file found at a new place (see [`Op::Move`]).
pub(crate) struct MoveFile {
    pub file_id: i64,
    /// Where the row is now: (folder id, name).
    pub from: (i64, Vec<u8>),
    pub origin_id: i64,
    pub folder: Vec<u8>,
    pub name: Vec<u8>,
    pub ext: String,
    pub placements: Vec<Placement>,
}

pub(crate) struct Batching {
    pub max_ops: usize,
    pub max_time: std::time::Duration,
}

/// Applies every op from `rx` until all senders are gone. Commits when a batch reaches
/// `max_ops` or has been open for `max_time`, and at the end.
pub(crate) fn run(
    writer: &mut Writer,
    rx: &Receiver<Op>,
    batching: &Batching,
    policy: &LayoutPolicy,
    counters: &Counters,
    search: &mut Option<musicfs_search::IndexKeeper>,
) -> Result<(), DbError> {
    // After each committed batch the search index follows (see musicfs_search::IndexKeeper).
    let commit = |writer: &mut Writer, search: &mut Option<musicfs_search::IndexKeeper>| {
        writer.commit()?;
        if let Some(keeper) = search
            && let Err(err) = keeper.apply_queue(writer)
        {
            tracing::warn!("search index not kept for the rest of this run: {err}");
            *search = None;
        }
        Ok::<(), DbError>(())
    };
    let mut ops_in_batch = 0;
    let mut batch_started = Instant::now();
    let mut folder_cache: Option<((i64, Vec<u8>), i64)> = None;
    // Removals wait for the end of the walk: by then every file moved within its origin has
    // been recognized at its new place (its row moved with it), so nothing moved is removed
    // and read again. Memory: one small op per vanished file or folder.
    let mut removals: Vec<Op> = Vec::new();
    let mut apply_removals = false;
    loop {
        let op = if writer.in_transaction() {
            let left = batching.max_time.saturating_sub(batch_started.elapsed());
            match rx.recv_timeout(left) {
                Ok(op) => Some(op),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            }
        } else {
            match rx.recv() {
                Ok(op) => Some(op),
                Err(_) => break,
            }
        };
        match op {
            Some(op @ (Op::RemoveFile { .. } | Op::RemoveFolder { .. })) => removals.push(op),
            Some(Op::WalkDone { removals: apply }) => apply_removals = apply,
            Some(op) => {
                if !writer.in_transaction() {
                    writer.begin()?;
                    batch_started = Instant::now();
                    ops_in_batch = 0;
                }
                apply(writer, op, policy, counters, &mut folder_cache)?;
                ops_in_batch += 1;
            }
            None => {}
        }
        if writer.in_transaction()
            && (ops_in_batch >= batching.max_ops || batch_started.elapsed() >= batching.max_time)
        {
            commit(writer, search)?;
        }
    }
    let removals = if apply_removals { removals } else { Vec::new() };
    for removal in removals {
        if !writer.in_transaction() {
            writer.begin()?;
            batch_started = Instant::now();
            ops_in_batch = 0;
        }
        match removal {
            Op::RemoveFile {
                file_id,
                folder_id,
                name,
            } => {
                if writer.remove_file_at(file_id, folder_id, &name)? {
                    Counters::bump(&counters.removed, 1);
                }
                ops_in_batch += 1;
            }
            // A folder of any size: a bounded page per transaction.
            Op::RemoveFolder { folder_id } => loop {
                if !writer.in_transaction() {
                    writer.begin()?;
                    batch_started = Instant::now();
                    ops_in_batch = 0;
                }
                let room = batching.max_ops.saturating_sub(ops_in_batch).max(1) as u32;
                let (n, done) = writer.remove_folder_page(folder_id, room)?;
                Counters::bump(&counters.removed, n);
                ops_in_batch += n as usize;
                if done {
                    break;
                }
                commit(writer, search)?;
            },
            _ => unreachable!("only removals are held back"),
        }
        if ops_in_batch >= batching.max_ops || batch_started.elapsed() >= batching.max_time {
            commit(writer, search)?;
        }
    }
    if writer.in_transaction() {
        commit(writer, search)?;
    }
    if let Some(keeper) = search
        && let Err(err) = keeper.commit(writer)
    {
        tracing::warn!("search index not committed this run (the next scan replays): {err}");
    }
    Ok(())
}

fn apply(
    writer: &Writer,
    op: Op,
    policy: &LayoutPolicy,
    counters: &Counters,
    folder_cache: &mut Option<((i64, Vec<u8>), i64)>,
) -> Result<(), DbError> {
    match op {
        Op::Put(put) => {
            let key = (put.origin_id, put.folder);
            let folder_id = match folder_cache {
                Some((k, id)) if *k == key => *id,
                _ => {
                    let id = writer.folder(key.0, &key.1)?;
                    *folder_cache = Some((key, id));
                    id
                }
            };
            let file_id = writer.put_file(
                folder_id,
                &FileRecord {
                    name: &put.name,
                    size: put.size,
                    mtime_ns: put.mtime_ns,
                    ext: &put.ext,
                    track: &put.track,
                    scan_error: put.error.as_deref(),
                    scan_retry: put.retry,
                    identity: put.identity,
                    etag: put.etag.as_deref(),
                },
            )?;
            let placements: Vec<(i64, &[String])> = put
                .placements
                .iter()
                .map(|p| (p.key, p.components.as_slice()))
                .collect();
            writer.place(file_id, &placements, &put.ext, policy, true)?;
        }
        Op::Move(mv) => {
            let key = (mv.origin_id, mv.folder);
            let folder_id = match folder_cache {
                Some((k, id)) if *k == key => *id,
                _ => {
                    let id = writer.folder(key.0, &key.1)?;
                    *folder_cache = Some((key, id));
                    id
                }
            };
            if !writer.move_file(mv.file_id, (mv.from.0, &mv.from.1), (folder_id, &mv.name))? {
                return Ok(()); // claimed by another link: the next scan reads this one
            }
            let placements: Vec<(i64, &[String])> = mv
                .placements
                .iter()
                .map(|p| (p.key, p.components.as_slice()))
                .collect();
            writer.place(mv.file_id, &placements, &mv.ext, policy, true)?;
            Counters::bump(&counters.moved, 1);
        }
        Op::SetIdentity { file_id, dev, ino } => writer.set_identity(file_id, (dev, ino))?,
        Op::Regroup(r) => {
            writer.set_group(r.file_id, &r.values)?;
            let placements: Vec<(i64, &[String])> = r
                .placements
                .iter()
                .map(|p| (p.key, p.components.as_slice()))
                .collect();
            writer.place(r.file_id, &placements, &r.ext, policy, false)?;
        }
        Op::Skipped {
            origin_id,
            folder,
            skipped,
        } => {
            let folder_id = writer.folder(origin_id, &folder)?;
            writer.set_skipped(folder_id, &skipped)?;
        }
        Op::RemoveFile { .. } | Op::RemoveFolder { .. } | Op::WalkDone { .. } => {
            unreachable!("handled by run")
        }
    }
    Ok(())
}
