//! A stream read continuously by a thread of its own into a bounded queue. A sequential
//! reader takes a window from the stream only when it nears the end of the previous one; read
//! that way, a GET's body stops whenever the reader is busy elsewhere, the server stalls on a
//! full socket and the transfer runs at a fraction of the link. Drained, the body flows until
//! [`AHEAD`] bytes wait unread.

use std::io::Read;
use std::sync::mpsc;

/// Bytes handed to the queue at a time (less at the end).
const PIECE: usize = 256 << 10;
/// Bytes read ahead of the reader at most: the queue's bound.
pub(crate) const AHEAD: usize = 8 << 20;

pub(crate) struct Drained {
    pieces: mpsc::Receiver<std::io::Result<Vec<u8>>>,
    current: Vec<u8>,
    at: usize,
}

impl Drained {
    /// Starts reading `inner` on its own thread. Dropping the `Drained` stops the thread at
    /// its next piece (the inner stream's own stall timeout bounds the wait).
    pub(crate) fn new(mut inner: Box<dyn Read + Send>) -> std::io::Result<Drained> {
        let (tx, pieces) = mpsc::sync_channel(AHEAD / PIECE);
        std::thread::Builder::new()
            .name("musicfs-stream".into())
            .spawn(move || {
                loop {
                    let mut piece = vec![0u8; PIECE];
                    let mut filled = 0;
                    let outcome = loop {
                        match inner.read(&mut piece[filled..]) {
                            Ok(0) => break Ok(()),
                            Ok(n) => {
                                filled += n;
                                if filled == PIECE {
                                    break Ok(());
                                }
                            }
                            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                            Err(e) => break Err(e),
                        }
                    };
                    piece.truncate(filled);
                    let end = filled < PIECE;
                    if filled > 0 && tx.send(Ok(piece)).is_err() {
                        return; // the reader is gone
                    }
                    if let Err(err) = outcome {
                        let _ = tx.send(Err(err));
                        return;
                    }
                    if end {
                        return; // the end of the stream: the reader sees the queue close
                    }
                }
            })?;
        Ok(Drained {
            pieces,
            current: Vec::new(),
            at: 0,
        })
    }
}

impl Read for Drained {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        while self.at == self.current.len() {
            match self.pieces.recv() {
                Ok(Ok(piece)) => {
                    self.current = piece;
                    self.at = 0;
                }
                Ok(Err(err)) => return Err(err),
                Err(mpsc::RecvError) => return Ok(0),
            }
        }
        let n = out.len().min(self.current.len() - self.at);
        out[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A reader that counts what was taken from it, in small reads like an HTTP body.
    struct Counted(Cursor<Vec<u8>>, Arc<AtomicUsize>);

    impl Read for Counted {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            let len = out.len().min(16 << 10);
            let n = self.0.read(&mut out[..len])?;
            self.1.fetch_add(n, Ordering::Relaxed);
            Ok(n)
        }
    }

    #[test]
    fn the_stream_flows_ahead_of_the_reader_up_to_the_bound_and_reads_back_whole() {
        let bytes: Vec<u8> = (0..(40u32 << 20)).map(|i| (i % 253) as u8).collect();
        let taken = Arc::new(AtomicUsize::new(0));
        let mut drained =
            Drained::new(Box::new(Counted(Cursor::new(bytes.clone()), taken.clone()))).unwrap();
        let mut first = vec![0u8; 4096];
        drained.read_exact(&mut first).unwrap();
        // Without the reader asking, the stream is read ahead, to the bound and no further.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while taken.load(Ordering::Relaxed) < AHEAD && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        let ahead = taken.load(Ordering::Relaxed);
        assert!(ahead >= AHEAD, "only {ahead} bytes read ahead");
        assert!(
            ahead <= AHEAD + 3 * PIECE,
            "{ahead} bytes read ahead, past the bound"
        );
        let mut rest = Vec::new();
        drained.read_to_end(&mut rest).unwrap();
        assert_eq!([&first[..], &rest[..]].concat(), bytes);
    }

    #[test]
    fn an_error_of_the_stream_reaches_the_reader_after_the_bytes_before_it() {
        struct Failing(usize);
        impl Read for Failing {
            fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
                if self.0 == 0 {
                    return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "stalled"));
                }
                let n = out.len().min(self.0).min(1000);
                out[..n].fill(1);
                self.0 -= n;
                Ok(n)
            }
        }
        let mut drained = Drained::new(Box::new(Failing(300_000))).unwrap();
        let mut got = Vec::new();
        let err = drained.read_to_end(&mut got).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        assert_eq!(got.len(), 300_000);
    }
}
