//! A remote file open for reading: windows that grow while the reader is sequential, the
//! next one prefetched, reads answered whole.

use std::cell::RefCell;
use std::ops::Range;
use std::sync::{Arc, Mutex, mpsc};

use musicfs_db::cache_index::ChunkRow;

use musicfs_origin::MirrorSet;

use super::fetcher::Fetcher;

pub(crate) const FIRST_WINDOW: usize = 256 << 10;
pub(crate) const MAX_WINDOW: usize = 8 << 20;

struct Window {
    start: u64,
    data: Vec<u8>,
    /// Size of the next fetch if the reader goes on sequentially.
    next: usize,
    /// The window after this one, being fetched in the background while this one is read.
    ahead: Option<Ahead>,
}

struct Ahead {
    start: u64,
    len: usize,
    result: mpsc::Receiver<std::io::Result<Vec<u8>>>,
}

pub(crate) struct RemoteFile {
    fetcher: Arc<Fetcher>,
    window: Mutex<Window>,
    /// The content cache's view of this file, where its origin is cached: reads it holds are
    /// served from it, and fetched bytes that continue its chunks are cut into new ones.
    cache: Option<Mutex<musicfs_cache::FileCache>>,
    /// The mount's cache, which `cache` is a file of: cached ranges are read from its chunk
    /// files without holding `cache`'s lock.
    shared_cache: Option<musicfs_cache::Cache>,
    /// The end of the reads made in order from the start (a play), and what to do once it
    /// passes [`super::prefetch::STARTED`] (prefetch the next track).
    in_order_to: std::sync::atomic::AtomicU64,
    on_started: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

/// Why a remote file could not be opened.
pub(crate) enum OpenFailure {
    /// Every mirror that answered holds another size: (the first such size).
    Changed(u64),
    Origin(musicfs_origin::OriginError),
}

impl RemoteFile {
    /// Opens `rel` of `set`: finds a mirror whose copy has `size` bytes (one stat round trip
    /// on a healthy primary; none where the primary's reads tell the size, as S3's do: the
    /// first read checks it, and a changed file fails that read instead of the open). A file
    /// the cache holds bytes of opens without asking any origin (offline play): its reads
    /// past the cached bytes check the mirror when they fetch.
    pub(crate) fn open(
        set: Arc<MirrorSet>,
        rel: Vec<u8>,
        size: u64,
        etag: Option<String>,
        cache: Option<musicfs_cache::FileCache>,
    ) -> Result<RemoteFile, OpenFailure> {
        let fetcher = Arc::new(Fetcher {
            agrees: Arc::new(Mutex::new(vec![None; set.mirrors.len()])),
            stream: Mutex::new(None),
            set,
            rel: rel.into(),
            size,
            etag: etag.map(Into::into),
        });
        let held = cache.as_ref().is_some_and(|c| c.cached() > 0);
        let opened = match held {
            true => Ok((0, ())),
            false => fetcher.set.call(&|i| fetcher.usable(i), |_, _| Ok(())),
        };
        if let Err(err) = opened {
            let other = fetcher.agrees.lock().unwrap().contains(&Some(false));
            let changed = matches!(err, musicfs_origin::OriginError::Changed { .. });
            return Err(if changed || (other && !err.is_origin_down()) {
                let first = (0..fetcher.set.mirrors.len())
                    .find_map(|i| fetcher.set.stat_on(i, &fetcher.rel).ok())
                    .map_or(0, |m| m.size);
                OpenFailure::Changed(first)
            } else {
                OpenFailure::Origin(err)
            });
        }
        let mut cache = cache;
        if let Some(cached) = cache.as_mut().filter(|c| c.basis_size().is_some()) {
            // Changed on its origin since it was cached: fetch what changed, reuse the rest.
            match cached.sync_from_basis(&|offset, len| fetcher.fetch(offset, len)) {
                Ok(Some(report)) => tracing::info!(
                    "{}: changed on its origin; fetched {} bytes, reused {} from the cache",
                    fetcher.describe(),
                    report.fetched,
                    report.reused
                ),
                Ok(None) => {}
                Err(err) => tracing::warn!("{}: delta fetch failed: {err}", fetcher.describe()),
            }
        }
        Ok(RemoteFile {
            fetcher,
            window: Mutex::new(Window {
                start: 0,
                data: Vec::new(),
                next: FIRST_WINDOW,
                ahead: None,
            }),
            shared_cache: cache.as_ref().map(|c| c.cache().clone()),
            cache: cache.map(Mutex::new),
            in_order_to: std::sync::atomic::AtomicU64::new(0),
            on_started: Mutex::new(None),
        })
    }

    /// Fetches this file into the cache from where its cached bytes end until its chunks
    /// reach `upto`, stopping early once `stop` is set (the file was opened for real: the
    /// reader goes on from what is cached by then). Chunks are kept whole, so past `upto` it
    /// fetches small pieces until a chunk boundary is found: what it fetched after the last
    /// boundary is lost (the play fetches it again), at most one small piece.
    pub(crate) fn fill_cache(
        &self,
        upto: u64,
        stop: &std::sync::atomic::AtomicBool,
    ) -> std::io::Result<()> {
        const PIECE: u64 = 1 << 20;
        const BOUNDARY_PIECE: u64 = 32 << 10;
        let Some(cache) = &self.cache else {
            return Ok(());
        };
        let size = self.fetcher.size;
        let (mut at, upto) = (cache.lock().unwrap().cached(), upto.min(size));
        while at < size && !stop.load(std::sync::atomic::Ordering::Acquire) {
            if cache.lock().unwrap().cut_to().is_none_or(|cut| cut >= upto) {
                break;
            }
            let len = match at < upto {
                true => PIECE.min(upto - at),
                false => BOUNDARY_PIECE.min(size - at),
            };
            let data = self.fetcher.fetch(at, len as usize)?;
            if data.is_empty() {
                break;
            }
            cache.lock().unwrap().offer(at, &data);
            at += data.len() as u64;
        }
        Ok(())
    }

    /// Runs `f` (once) when this file's play has really started.
    pub(crate) fn on_started(&self, f: Box<dyn FnOnce() + Send>) {
        *self.on_started.lock().unwrap() = Some(f);
    }

    /// Follows reads made in order from the start; fires `on_started` past the threshold.
    fn note_read(&self, offset: u64, len: usize) {
        use std::sync::atomic::Ordering;
        let end = offset + len as u64;
        let upto = self.in_order_to.load(Ordering::Relaxed);
        if offset > upto || end <= upto {
            return;
        }
        self.in_order_to.store(end, Ordering::Relaxed);
        if end >= super::prefetch::STARTED
            && let Some(f) = self.on_started.lock().unwrap().take()
        {
            f();
        }
    }

    /// The `wanted` bytes at `offset`, into `buf` at the range returned, if they are in
    /// memory: in the current window, or in chunk files the page cache holds. Never waits
    /// (on a fetch, the cache's lock, or the disk): called on a FUSE thread.
    pub(crate) fn read_cached(
        &self,
        offset: u64,
        wanted: usize,
        buf: &mut Vec<u8>,
    ) -> Option<Range<usize>> {
        let found = match self.window.try_lock() {
            Ok(window) if copy_from(&window, offset, wanted, buf) => Some(0..wanted),
            _ => self.read_chunks(offset, wanted, buf, false),
        };
        if found.is_some() {
            self.note_read(offset, wanted);
        }
        found
    }

    /// The `wanted` bytes at `offset` straight from the cache's chunk files into `buf`, at
    /// the range returned; `None` if the cache does not hold them, one of them is damaged
    /// (the blocking path repairs it), or (`wait` false) reading them would wait.
    fn read_chunks(
        &self,
        offset: u64,
        wanted: usize,
        buf: &mut Vec<u8>,
        wait: bool,
    ) -> Option<Range<usize>> {
        thread_local! {
            static PLAN: RefCell<Vec<ChunkRow>> = const { RefCell::new(Vec::new()) };
        }
        let (cache, shared) = (self.cache.as_ref()?, self.shared_cache.as_ref()?);
        PLAN.with_borrow_mut(|plan| {
            let planned = match wait {
                true => cache.lock().unwrap().plan(offset, wanted, plan),
                false => cache.try_lock().ok()?.plan(offset, wanted, plan),
            };
            match planned {
                true => shared.read_planned(plan, offset, wanted, buf, wait),
                false => None,
            }
        })
    }

    /// `wanted` bytes at `offset`, fewer only at the end of the file: a short FUSE read is
    /// taken for the end of the file, so a read that spans windows is filled from several.
    /// Blocks on the network: call on an I/O thread. Once the reader is sequential, the next
    /// window is always on its way while the current one is read (network and reader overlap).
    pub(crate) fn read(&self, offset: u64, wanted: usize) -> std::io::Result<Vec<u8>> {
        let mut out = self.read_part(offset, wanted)?;
        while out.len() < wanted {
            let more = self.read_part(offset + out.len() as u64, wanted - out.len())?;
            if more.is_empty() {
                break;
            }
            out.extend_from_slice(&more);
        }
        self.note_read(offset, out.len());
        Ok(out)
    }

    /// Up to `wanted` bytes at `offset` from the cache or one window (at least one byte
    /// unless at the end).
    fn read_part(&self, offset: u64, wanted: usize) -> std::io::Result<Vec<u8>> {
        let mut window = self.window.lock().unwrap();
        let mut buf = Vec::new();
        if copy_from(&window, offset, wanted, &mut buf) {
            return Ok(buf);
        }
        // A read that starts in the window and goes past it: its first part from here, the
        // rest from where the window ends (where the stream and the prefetched window are).
        let end = window.start + window.data.len() as u64;
        if offset >= window.start && offset < end {
            return Ok(window.data[(offset - window.start) as usize..].to_vec());
        }
        // From the cache (read without its lock), or its part the cache holds when the read
        // goes past the cached bytes (the rest is fetched from where they end, not with them:
        // the first read after a prefetched start does this); else from the cache with its
        // lock, which repairs a damaged chunk; else fetch, from where the cached chunks end if
        // that is a little before `offset` (so the file keeps filling in), and serve from the
        // window.
        let held = self
            .cache
            .as_ref()
            .map_or(0, |c| c.lock().unwrap().cached());
        let from_cache = wanted.min(held.saturating_sub(offset) as usize);
        if from_cache > 0
            && let Some(range) = self.read_chunks(offset, from_cache, &mut buf, true)
        {
            buf.truncate(range.end);
            buf.drain(..range.start);
            return Ok(buf);
        }
        let (offset, skip) = match self.cache.as_ref().map(|c| {
            c.lock()
                .unwrap()
                .read(offset, if from_cache > 0 { from_cache } else { wanted })
        }) {
            Some(Ok(data)) => return Ok(data),
            Some(Err(miss)) => (miss.fetch_from, (offset - miss.fetch_from) as usize),
            None => (offset, 0),
        };
        let wanted = wanted + skip;
        let size = self.fetcher.size;
        let mut prefetched = None;
        if let Some(ahead) = window.ahead.take()
            && offset >= ahead.start
            && offset < ahead.start + ahead.len as u64
        {
            // A failed prefetch is retried below, in the foreground.
            if let Ok(Ok(data)) = ahead.result.recv() {
                prefetched = Some((ahead.start, data));
            }
        }
        let (start, data, sequential) = match prefetched {
            Some((start, data)) => (start, data, true),
            None => {
                let end = window.start + window.data.len() as u64;
                let sequential = !window.data.is_empty() && offset >= window.start && offset <= end;
                let len = if sequential {
                    let len = window.next;
                    window.next = (window.next * 2).min(MAX_WINDOW);
                    len
                } else {
                    window.next = FIRST_WINDOW * 2;
                    FIRST_WINDOW
                };
                let len = len.max(wanted).min(size.saturating_sub(offset) as usize);
                let data = if sequential {
                    self.fetcher.fetch_sequential(offset, len)?
                } else {
                    self.fetcher.fetch(offset, len)?
                };
                (offset, data, sequential)
            }
        };
        window.start = start;
        window.data = data;
        if let Some(cache) = &self.cache {
            cache.lock().unwrap().offer(window.start, &window.data);
        }
        let next_start = start + window.data.len() as u64;
        if sequential && next_start < size {
            let len = window.next.min((size - next_start) as usize);
            window.next = (window.next * 2).min(MAX_WINDOW);
            let (tx, rx) = mpsc::sync_channel(1);
            let fetcher = self.fetcher.clone();
            let spawned = std::thread::Builder::new()
                .name("musicfs-prefetch".into())
                .spawn(move || {
                    let _ = tx.send(fetcher.fetch_sequential(next_start, len));
                });
            if spawned.is_ok() {
                window.ahead = Some(Ahead {
                    start: next_start,
                    len,
                    result: rx,
                });
            }
        }
        if copy_from(&window, offset + skip as u64, wanted - skip, &mut buf) {
            return Ok(buf);
        }
        // Short: the end of the file (or the file shrank on the origin).
        let from = (offset + skip as u64).saturating_sub(window.start) as usize;
        Ok(window.data.get(from..).unwrap_or_default().to_vec())
    }
}

fn copy_from(window: &Window, offset: u64, wanted: usize, buf: &mut Vec<u8>) -> bool {
    let end = window.start + window.data.len() as u64;
    if offset < window.start || offset + wanted as u64 > end {
        return false;
    }
    let from = (offset - window.start) as usize;
    buf.clear();
    buf.extend_from_slice(&window.data[from..from + wanted]);
    true
}
