//! The content cache's storage: remote files cut into content-defined chunks (FastCDC 2020,
//! 16/64/256 KiB) and kept once per content, named by the xxh3-64 of their bytes. A tag edit
//! or a replaced cover changes a few chunks near the head; the audio chunks after it keep
//! their content, hence their names, so a changed file is fetched again in part, and the same
//! bytes at two paths or on two origins are stored once.
//!
//! - [`ChunkStore`]: the chunk files, verified on every read (a chunk whose bytes no longer
//!   hash to its name is removed and reported missing, never served).
//! - [`Cache`]: a store with its index writer thread (rows in the library DB, through
//!   `musicfs_db::cache_index`), eviction under a cap, open files pinned, counters.
//! - [`FileCache`]: one open file: reads served from its chunks, fetched bytes cut into new
//!   ones.

mod admin;
mod cache;
mod chunker;
mod delta;
mod delta_plan;
mod direct;
mod error;
mod evict;
mod file;
mod filler;
mod ogg;
mod store;
mod writer;

pub use admin::{CacheStats, clear, stats};
pub use cache::{Cache, CacheConfig, QUEUE_BYTES};
pub use chunker::{AVG_CHUNK, Chunk, MAX_CHUNK, MIN_CHUNK, chunks};
pub use delta::DeltaReport;
pub use error::{CacheError, Result};
pub use file::{FileCache, Miss};
pub use filler::Filler;
pub use store::{ChunkHash, ChunkRead, ChunkStore, Staged};

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
