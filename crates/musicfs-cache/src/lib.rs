//! The content cache's storage: remote files cut into content-defined chunks (FastCDC 2020,
//! 16/64/256 KiB) and kept once per content, named by the xxh3-64 of their bytes. A tag edit
//! or a replaced cover changes a few chunks near the head; the audio chunks after it keep
//! their content, hence their names, so a changed file is fetched again in part, and the same
//! bytes at two paths or on two origins are stored once.
//!
//! This crate owns the chunk files only: cutting, storing, and verifying on every read (a
//! chunk whose bytes no longer hash to its name is removed and reported as missing, never
//! served). Which file is made of which chunks is the DB's business (the `chunks` table).

mod chunker;
mod error;
mod filler;
mod store;

pub use chunker::{AVG_CHUNK, Chunk, MAX_CHUNK, MIN_CHUNK, chunks};
pub use error::{CacheError, Result};
pub use filler::Filler;
pub use store::{ChunkHash, ChunkStore};

#[cfg(test)]
mod test_data {
    /// Bytes that look like compressed audio to a chunker: no repeats (xorshift).
    pub(crate) fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }
}
