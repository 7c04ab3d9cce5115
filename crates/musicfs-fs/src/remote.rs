//! Files of remote origins (SFTP, S3), read through the origin layer.
//!
//! Reads go to the origin in windows that grow while the reader stays sequential (a player,
//! `cp`): the first read fetches [`FIRST_WINDOW`], each sequential miss doubles it up to
//! [`MAX_WINDOW`], a seek starts over small. So a seek costs one small round trip, and a long
//! read costs few. A read the current window answers is served on the FUSE thread without a
//! hop ([`RemoteFile::read_cached`] never waits: it gives up if a fetch holds the window).
//! Fetches run on the mount's I/O threads with its deadline, never on a FUSE worker.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use musicfs_origin::{Origin, OriginUrl};

pub(crate) const FIRST_WINDOW: usize = 256 << 10;
pub(crate) const MAX_WINDOW: usize = 8 << 20;

/// The mount's remote origins, opened on first use from their URL in the DB (credentials from
/// the environment, never from the DB).
#[derive(Default)]
pub(crate) struct RemoteOrigins {
    open: Mutex<HashMap<i64, Arc<dyn Origin>>>,
}

impl RemoteOrigins {
    pub(crate) fn get(
        &self,
        origin_id: i64,
        url: &[u8],
    ) -> musicfs_origin::Result<Arc<dyn Origin>> {
        if let Some(origin) = self.open.lock().unwrap().get(&origin_id) {
            return Ok(origin.clone());
        }
        let url = OriginUrl::parse(&String::from_utf8_lossy(url))?;
        let origin = musicfs_origin::open(&url)?;
        Ok(self
            .open
            .lock()
            .unwrap()
            .entry(origin_id)
            .or_insert(origin)
            .clone())
    }
}

struct Window {
    start: u64,
    data: Vec<u8>,
    /// Size of the next fetch if the reader goes on sequentially.
    next: usize,
}

pub(crate) struct RemoteFile {
    origin: Arc<dyn Origin>,
    rel: Vec<u8>,
    window: Mutex<Window>,
}

impl RemoteFile {
    pub(crate) fn new(origin: Arc<dyn Origin>, rel: Vec<u8>) -> RemoteFile {
        RemoteFile {
            origin,
            rel,
            window: Mutex::new(Window {
                start: 0,
                data: Vec::new(),
                next: FIRST_WINDOW,
            }),
        }
    }

    /// Copies `wanted` bytes at `offset` from the current window; `false` if it does not hold
    /// them all or a fetch is under way.
    pub(crate) fn read_cached(&self, offset: u64, wanted: usize, buf: &mut Vec<u8>) -> bool {
        let Ok(window) = self.window.try_lock() else {
            return false;
        };
        copy_from(&window, offset, wanted, buf)
    }

    /// `wanted` bytes at `offset` (fewer at the end), fetching a window if needed. Blocks on
    /// the network: call on an I/O thread.
    pub(crate) fn read(&self, offset: u64, wanted: usize) -> std::io::Result<Vec<u8>> {
        let mut window = self.window.lock().unwrap();
        let mut buf = Vec::new();
        if copy_from(&window, offset, wanted, &mut buf) {
            return Ok(buf);
        }
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
        let data = self
            .origin
            .read_at(&self.rel, offset, len.max(wanted))
            .map_err(musicfs_origin::OriginError::into_io)?;
        window.start = offset;
        window.data = data;
        let n = wanted.min(window.data.len());
        Ok(window.data[..n].to_vec())
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
