//! Ranged reads of an open file, and a file kept open on a session of its own.

use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use ssh2::ErrorCode;

use super::session::{Conn, Sessions};
use super::{error, is_network};
use crate::OpenFile;
use crate::error::Result;

/// Reads up to `len` bytes at `offset` of an open file. libssh2 pipelines a read as requests
/// for four times the buffer it is given (read-ahead that would cross the wire and be thrown
/// away at close); a buffer a quarter of what is still wanted makes it ask for just that.
pub(super) fn read_range(
    file: &mut ssh2::File,
    offset: u64,
    len: usize,
) -> std::result::Result<Vec<u8>, ssh2::Error> {
    file.seek(SeekFrom::Start(offset)).map_err(read_failed)?;
    let mut buf = vec![0; len];
    let mut filled = 0;
    while filled < len {
        let ask = ((len - filled) / 4).max(1);
        match file.read(&mut buf[filled..filled + ask]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(read_failed(e)),
        }
    }
    buf.truncate(filled);
    Ok(buf)
}

/// A file open on a session of its own, which returns to the pool when the file is dropped.
pub(super) struct SftpFile {
    pub(super) sessions: Arc<Sessions>,
    pub(super) display: String,
    pub(super) rel: Vec<u8>,
    /// Closed (or its close sent) before the session is given back.
    pub(super) file: Option<ssh2::File>,
    pub(super) conn: Option<Conn>,
    pub(super) broken: bool,
}

impl OpenFile for SftpFile {
    fn read_at(&mut self, offset: u64, len: usize) -> Result<Vec<u8>> {
        let file = self.file.as_mut().expect("open until dropped");
        match read_range(file, offset, len) {
            Ok(data) => {
                self.sessions
                    .fetched
                    .fetch_add(data.len() as u64, Ordering::Relaxed);
                Ok(data)
            }
            Err(err) => {
                self.broken |= is_network(&err);
                Err(error(&self.display, &self.rel, err))
            }
        }
    }
}

impl Drop for SftpFile {
    fn drop(&mut self) {
        let (Some(file), Some(mut conn)) = (self.file.take(), self.conn.take()) else {
            return;
        };
        if self.broken {
            // No close request on a session that stopped answering: cut it first (give_back
            // then abandons it), so the handle's close fails at once.
            let _ = conn.socket.shutdown(std::net::Shutdown::Both);
            drop(file);
        } else if conn.close_later(file).is_err() {
            self.broken = true;
        }
        self.sessions.give_back(conn, self.broken);
    }
}

/// A read of an open file failed: the session is suspect (libssh2 turns its errors into
/// `io::Error` there), so it is treated as a network failure.
pub(super) fn read_failed(err: std::io::Error) -> ssh2::Error {
    tracing::debug!("sftp read failed: {err}");
    ssh2::Error::new(ErrorCode::Session(-43), "reading from the server failed")
}
