//! A hard per-file time limit on tag reading.
//!
//! A read can hang where no deadline check reaches it: a `read(2)` stuck on a dead network disk,
//! a parser looping without I/O. A thread cannot be cancelled, so each calling thread hands its
//! reads to a helper thread of its own and waits. A helper stuck on one file past the limit is
//! abandoned (it exits by itself if its read ever returns) and a fresh one takes the rest, so
//! the scan goes on. Abandoned helpers are capped: past [`MAX_STUCK`], reads are refused at
//! once instead of stacking up threads, and reported as timed out (the scanner retries them).
//!
//! Reads go in batches: handing work to another thread costs a wakeup each way (10 to 100 µs on
//! a busy VM, more than a tag read), so a batch costs two wakeups, however many files it holds.
//! The waiter sleeps until the batch is done, or until the file in progress overruns.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::read::{TIMED_OUT, read_track_until};
use crate::{TagError, Track};

/// Helpers abandoned and still stuck, across the process.
static STUCK: AtomicUsize = AtomicUsize::new(0);

/// At most this many stuck helpers; then reads are refused until some come back.
pub const MAX_STUCK: usize = 16;

type Outcome = Result<Track, TagError>;

/// One batch, shared by the helper (which fills it) and the waiter.
#[derive(Default)]
struct Progress {
    outcomes: Vec<Outcome>,
    /// When the helper started the file at `outcomes.len()`.
    started: Option<Instant>,
    done: bool,
    /// Set by the waiter when it gives up. Checked and set under the lock, so exactly one side
    /// accounts for the helper: the waiter counts it stuck, the helper uncounts itself.
    abandoned: bool,
}

struct Batch {
    paths: Vec<PathBuf>,
    limit: Duration,
    progress: Arc<(Mutex<Progress>, Condvar)>,
}

fn lock(m: &Mutex<Progress>) -> MutexGuard<'_, Progress> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct Helper {
    batches: Sender<Batch>,
}

impl Helper {
    fn spawn() -> std::io::Result<Helper> {
        let (batches, rx) = mpsc::channel::<Batch>();
        std::thread::Builder::new()
            .name("musicfs-tag-reader".into())
            .spawn(move || {
                for batch in rx {
                    let (state, done) = &*batch.progress;
                    for path in &batch.paths {
                        let start = Instant::now();
                        lock(state).started = Some(start);
                        let outcome = read_track_until(path, Some(start + batch.limit));
                        let mut p = lock(state);
                        if p.abandoned {
                            STUCK.fetch_sub(1, Ordering::Relaxed);
                            return;
                        }
                        p.outcomes.push(outcome);
                        p.started = None;
                    }
                    lock(state).done = true;
                    done.notify_one();
                }
            })?;
        Ok(Helper { batches })
    }
}

thread_local! {
    static HELPER: RefCell<Option<Helper>> = const { RefCell::new(None) };
}

/// [`crate::read_track`] of each path with a hard time limit per file: a file whose read runs
/// past `limit` gets [`TagError::TimedOut`] about `limit` after it started, whatever the file or
/// the disk does. Outcomes are in the order of `paths`.
pub fn read_tracks_within(paths: &[&Path], limit: Duration) -> Vec<Outcome> {
    let mut outcomes = Vec::with_capacity(paths.len());
    while outcomes.len() < paths.len() {
        let rest = &paths[outcomes.len()..];
        let stuck = STUCK.load(Ordering::Relaxed);
        if stuck >= MAX_STUCK {
            outcomes.extend(rest.iter().map(|p| {
                Err(TagError::TimedOut {
                    path: p.to_path_buf(),
                    reason: format!("not read: {stuck} earlier tag reads are stuck (a hung disk?)"),
                })
            }));
            break;
        }
        outcomes.extend(run_batch(rest, limit));
    }
    outcomes
}

/// Runs `paths` on this thread's helper. Returns every outcome, or those before a file that
/// overran (its own outcome, a timeout, included): the caller goes on with a fresh helper.
fn run_batch(paths: &[&Path], limit: Duration) -> Vec<Outcome> {
    HELPER.with(|cell| {
        let mut slot = cell.borrow_mut();
        let helper = match slot.take().map_or_else(Helper::spawn, Ok) {
            Ok(h) => h,
            Err(source) => {
                // No thread to spare: say so for each file (transient, retried next scan).
                return paths
                    .iter()
                    .map(|p| {
                        Err(TagError::TimedOut {
                            path: p.to_path_buf(),
                            reason: format!("not read: cannot start a tag reader thread: {source}"),
                        })
                    })
                    .collect();
            }
        };
        let progress = Arc::new((Mutex::new(Progress::default()), Condvar::new()));
        let batch = Batch {
            paths: paths.iter().map(|p| p.to_path_buf()).collect(),
            limit,
            progress: progress.clone(),
        };
        if helper.batches.send(batch).is_err() {
            // Its thread is gone (cannot happen: it exits only when abandoned, and an
            // abandoned helper is never reused). Report instead of panicking.
            return paths
                .iter()
                .map(|p| {
                    Err(TagError::TimedOut {
                        path: p.to_path_buf(),
                        reason: "not read: tag reader thread is gone".into(),
                    })
                })
                .collect();
        }
        let (state, done) = &*progress;
        // The helper's own deadline usually ends a slow read first; the margin lets it.
        let hard = limit + limit / 4 + Duration::from_millis(50);
        let mut p = lock(state);
        loop {
            if p.done {
                *slot = Some(helper);
                return std::mem::take(&mut p.outcomes);
            }
            let overrun = p.started.map(|s| s.elapsed()).filter(|&e| e >= hard);
            if let Some(elapsed) = overrun {
                p.abandoned = true;
                STUCK.fetch_add(1, Ordering::Relaxed);
                let mut outcomes = std::mem::take(&mut p.outcomes);
                outcomes.push(Err(TagError::TimedOut {
                    path: paths[outcomes.len()].to_path_buf(),
                    reason: format!(
                        "{TIMED_OUT} ({:.1} s), read abandoned",
                        elapsed.as_secs_f64()
                    ),
                }));
                return outcomes; // the helper is dropped; the next batch spawns a fresh one
            }
            let wait = p.started.map_or(hard, |s| hard.saturating_sub(s.elapsed()));
            p = done
                .wait_timeout(p, wait.max(Duration::from_millis(1)))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    })
}

/// [`read_tracks_within`] for one file.
pub fn read_track_within(path: &Path, limit: Duration) -> Outcome {
    read_tracks_within(&[path], limit)
        .pop()
        .expect("one outcome per path")
}

/// Tag reads abandoned past their limit and still running.
pub fn stuck_reads() -> usize {
    STUCK.load(Ordering::Relaxed)
}
