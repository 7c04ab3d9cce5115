use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// What a scan did. Printed as one line, or as JSON with `--json`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Summary {
    pub added: u64,
    pub changed: u64,
    pub removed: u64,
    pub unchanged: u64,
    /// Files whose tags could not be read (still indexed, with `scan_error`) plus folders
    /// and files that could not be listed or stat'ed (kept as they were).
    pub errors: u64,
    /// Files re-rendered from stored tags after a layout change.
    pub relayout: u64,
    /// Files found moved or renamed within their origin: followed, not read again.
    pub moved: u64,
    /// Bytes of file content fetched from remote origins (tag reads).
    pub bytes_fetched: u64,
    pub seconds: f64,
}

impl Summary {
    pub fn files_per_second(&self) -> f64 {
        let files = self.added + self.changed + self.unchanged;
        if self.seconds > 0.0 {
            files as f64 / self.seconds
        } else {
            0.0
        }
    }
}

/// Counters shared by walker threads.
#[derive(Default)]
pub(crate) struct Counters {
    pub added: AtomicU64,
    pub changed: AtomicU64,
    pub removed: AtomicU64,
    pub unchanged: AtomicU64,
    pub errors: AtomicU64,
    pub relayout: AtomicU64,
    pub moved: AtomicU64,
    /// Audio files seen in remote listings, and read from them (for the progress line).
    pub listed: AtomicU64,
    pub read: AtomicU64,
    pub bytes_fetched: AtomicU64,
}

impl Counters {
    pub(crate) fn bump(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    pub(crate) fn summary(&self, seconds: f64) -> Summary {
        Summary {
            added: self.added.load(Relaxed),
            changed: self.changed.load(Relaxed),
            removed: self.removed.load(Relaxed),
            unchanged: self.unchanged.load(Relaxed),
            errors: self.errors.load(Relaxed),
            relayout: self.relayout.load(Relaxed),
            moved: self.moved.load(Relaxed),
            bytes_fetched: self.bytes_fetched.load(Relaxed),
            seconds,
        }
    }
}
