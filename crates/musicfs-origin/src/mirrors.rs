//! Mirrors: several origins holding the same library at the same relative paths (a NAS first,
//! S3 as backup). Reads go to the healthiest preferred mirror; a failed or timed-out attempt
//! fails over to the next at once, and when every mirror failed the round is retried after
//! 100 ms, 500 ms, then 2 s. Each mirror's health (healthy, degraded, unhealthy) follows its
//! recent calls and a periodic check; when all are unhealthy the least bad is still tried.
//! A file is read only from mirrors whose copy has the size the DB knows: a mirror holding
//! another version of it is skipped for that file.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use crate::error::{OriginError, Result};
use crate::{Meta, Origin};

/// Waits between rounds of attempts over every mirror.
pub const RETRY_BACKOFF: [Duration; 3] = [
    Duration::from_millis(100),
    Duration::from_millis(500),
    Duration::from_secs(2),
];

/// Calls slower than this make a mirror degraded.
const SLOW: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Health {
    Healthy,
    Degraded,
    Unhealthy,
}

impl std::fmt::Display for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Health::Healthy => "healthy",
            Health::Degraded => "degraded",
            Health::Unhealthy => "unhealthy",
        })
    }
}

pub struct Mirror {
    pub origin: Arc<dyn Origin>,
    /// Lower is preferred.
    pub priority: u32,
    failures: AtomicU32,
    /// Latest call latency (moving average), microseconds.
    latency_us: AtomicU64,
    /// Set while a health check of this mirror runs. A check stuck on a dead NAS blocks its
    /// thread in the kernel (D state, unkillable): without this, every interval would
    /// abandon one more thread beside it.
    checking: Arc<AtomicBool>,
}

/// Clears a mirror's `checking` when its check ends, however late (or if it never started).
struct CheckInFlight(Arc<AtomicBool>);

impl Drop for CheckInFlight {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl Mirror {
    pub fn new(origin: Arc<dyn Origin>, priority: u32) -> Mirror {
        Mirror {
            origin,
            priority,
            failures: AtomicU32::new(0),
            latency_us: AtomicU64::new(0),
            checking: Arc::new(AtomicBool::new(false)),
        }
    }

    pub fn health(&self) -> Health {
        match self.failures.load(Ordering::Relaxed) {
            0 if self.latency() < SLOW => Health::Healthy,
            0..=2 => Health::Degraded,
            _ => Health::Unhealthy,
        }
    }

    pub fn latency(&self) -> Duration {
        Duration::from_micros(self.latency_us.load(Ordering::Relaxed))
    }

    fn succeeded(&self, took: Duration) {
        self.failures.store(0, Ordering::Relaxed);
        let old = self.latency_us.load(Ordering::Relaxed);
        let new = took.as_micros() as u64;
        let avg = if old == 0 { new } else { (old * 3 + new) / 4 };
        self.latency_us.store(avg, Ordering::Relaxed);
    }

    fn failed(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
    }
}

/// One library's mirrors, the primary among them.
pub struct MirrorSet {
    pub mirrors: Vec<Mirror>,
    /// A single attempt on one mirror may take this long before the next is tried.
    pub attempt_timeout: Duration,
}

impl MirrorSet {
    pub fn new(mirrors: Vec<Mirror>, attempt_timeout: Duration) -> MirrorSet {
        MirrorSet {
            mirrors,
            attempt_timeout,
        }
    }

    /// Mirror indexes in the order to try: healthiest first, then by priority.
    pub fn order(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.mirrors.len()).collect();
        order.sort_by_key(|&i| (self.mirrors[i].health(), self.mirrors[i].priority, i));
        order
    }

    /// Checks every mirror once (the periodic health check). At most one check per mirror is
    /// in flight: while the last one still hangs, none is started and the mirror counts as
    /// failing again.
    pub fn check_all(&self) {
        for mirror in &self.mirrors {
            if mirror.checking.swap(true, Ordering::AcqRel) {
                tracing::warn!(
                    "{}: health check: the previous one has not returned yet",
                    mirror.origin.url()
                );
                mirror.failed();
                continue;
            }
            let in_flight = CheckInFlight(mirror.checking.clone());
            let started = Instant::now();
            match bounded(self.attempt_timeout, mirror.origin.clone(), move |o| {
                let _in_flight = in_flight;
                o.check()
            }) {
                Ok(_) => mirror.succeeded(started.elapsed()),
                Err(err) => {
                    tracing::warn!("{}: health check failed: {err}", mirror.origin.url());
                    mirror.failed();
                }
            }
        }
    }

    /// Runs `call(i, mirror)` on mirrors in order until one succeeds, retrying rounds with
    /// [`RETRY_BACKOFF`]. `usable` says whether a mirror may serve (its copy agrees with the
    /// DB); it may call the mirror itself. A call may find out itself that the mirror's copy
    /// is another version (`OriginError::Changed`): that mirror is passed over, not counted
    /// as failing. Returns the mirror used and the result, or the last error.
    pub fn call<T: Send + 'static>(
        &self,
        usable: &dyn Fn(usize) -> Result<bool>,
        call: impl Fn(usize, &dyn Origin) -> Result<T> + Send + Sync + Clone + 'static,
    ) -> Result<(usize, T)> {
        let mut last = None;
        for round in 0..=RETRY_BACKOFF.len() {
            if round > 0 {
                std::thread::sleep(RETRY_BACKOFF[round - 1]);
            }
            let mut tried = false;
            for i in self.order() {
                let mirror = &self.mirrors[i];
                match usable(i) {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(err) => {
                        mirror.failed();
                        last = Some(err);
                        tried = true;
                        continue;
                    }
                }
                let started = Instant::now();
                let call = call.clone();
                match bounded(self.attempt_timeout, mirror.origin.clone(), move |o| {
                    call(i, o)
                }) {
                    Ok(value) => {
                        mirror.succeeded(started.elapsed());
                        return Ok((i, value));
                    }
                    Err(OriginError::Changed { .. }) => mirror.succeeded(started.elapsed()),
                    Err(err) if err.is_not_found() => {
                        tried = true;
                        last = Some(err);
                    }
                    Err(err) => {
                        tracing::warn!("{err}; trying another mirror");
                        mirror.failed();
                        tried = true;
                        last = Some(err);
                    }
                }
            }
            if !tried {
                // Every mirror answered, with another version: retrying will not help.
                return Err(OriginError::Changed {
                    origin: "every mirror".into(),
                    path: String::new(),
                    cause: "no mirror holds a copy of the size the database knows".into(),
                });
            }
            if last.as_ref().is_some_and(|e| e.is_not_found()) {
                break; // no mirror has it: retrying will not help
            }
        }
        Err(last.unwrap_or_else(|| OriginError::Unreachable {
            origin: "every mirror".into(),
            cause: "no attempt could be made".into(),
        }))
    }

    /// `stat` of `rel` on mirror `i`, bounded by the attempt timeout.
    pub fn stat_on(&self, i: usize, rel: &[u8]) -> Result<Meta> {
        let rel = rel.to_vec();
        bounded(
            self.attempt_timeout,
            self.mirrors[i].origin.clone(),
            move |o| o.stat(&rel),
        )
    }
}

/// Runs `call` on its own thread and waits at most `limit`: a local mirror on a dead NAS
/// blocks in the kernel, and the next mirror must be tried meanwhile. A call that overruns is
/// abandoned (its thread ends when the call does).
fn bounded<T: Send + 'static>(
    limit: Duration,
    origin: Arc<dyn Origin>,
    call: impl FnOnce(&dyn Origin) -> Result<T> + Send + 'static,
) -> Result<T> {
    let (tx, rx) = mpsc::sync_channel(1);
    let url = origin.url().to_string();
    let spawned = std::thread::Builder::new()
        .name("musicfs-mirror".into())
        .spawn(move || {
            let _ = tx.send(call(origin.as_ref()));
        });
    if let Err(err) = spawned {
        return Err(OriginError::Unreachable {
            origin: url,
            cause: format!("cannot start a thread: {err}"),
        });
    }
    match rx.recv_timeout(limit) {
        Ok(result) => result,
        Err(_) => Err(OriginError::Unreachable {
            origin: url,
            cause: format!("no answer in {limit:?}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Entry, OriginUrl};
    use std::sync::{Condvar, Mutex};

    /// An origin whose health check blocks until released, as a stat on a dead NAS does.
    struct StuckOrigin {
        url: OriginUrl,
        checks: AtomicU32,
        released: Mutex<bool>,
        release: Condvar,
    }

    impl StuckOrigin {
        fn release(&self) {
            *self.released.lock().unwrap() = true;
            self.release.notify_all();
        }
    }

    impl Origin for StuckOrigin {
        fn url(&self) -> &OriginUrl {
            &self.url
        }
        fn list(&self, _: &[u8]) -> Result<Vec<Entry>> {
            Ok(Vec::new())
        }
        fn stat(&self, _: &[u8]) -> Result<Meta> {
            Ok(Meta::default())
        }
        fn read_at(&self, _: &[u8], _: u64, _: usize) -> Result<Vec<u8>> {
            Ok(Vec::new())
        }
        fn stat_root(&self) -> Result<bool> {
            self.checks.fetch_add(1, Ordering::SeqCst);
            let mut released = self.released.lock().unwrap();
            while !*released {
                released = self.release.wait(released).unwrap();
            }
            Ok(true)
        }
        fn bytes_fetched(&self) -> u64 {
            0
        }
    }

    /// A check that hangs across several intervals occupies one thread, not one per
    /// interval; the mirror stays unhealthy meanwhile and is checked again once it returns.
    #[test]
    fn a_hung_health_check_is_not_started_again_until_it_returns() {
        let origin = Arc::new(StuckOrigin {
            url: OriginUrl::Local("/mnt/dead-nas".into()),
            checks: AtomicU32::new(0),
            released: Mutex::new(false),
            release: Condvar::new(),
        });
        let set = MirrorSet::new(
            vec![Mirror::new(origin.clone(), 1)],
            Duration::from_millis(20),
        );
        for _ in 0..6 {
            set.check_all();
        }
        assert_eq!(origin.checks.load(Ordering::SeqCst), 1, "checks started");
        assert_eq!(set.mirrors[0].health(), Health::Unhealthy);

        origin.release();
        let started = Instant::now();
        while set.mirrors[0].checking.load(Ordering::Acquire) {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "check never ended"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        set.check_all();
        assert_eq!(origin.checks.load(Ordering::SeqCst), 2);
        assert_eq!(set.mirrors[0].health(), Health::Healthy);
    }
}
