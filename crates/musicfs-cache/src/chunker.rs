//! Content-defined chunking. Cut points depend on the bytes around them, not on offsets, so
//! bytes inserted or removed near the head (a longer title, a new cover) move the cuts of the
//! region they touch and leave every later chunk as it was.

use std::io::Read;

use crate::error::{CacheError, Result};
use crate::store::ChunkHash;
use fastcdc::v2020::{Error as CdcError, StreamCDC};

/// Chunk sizes: no chunk is smaller than `MIN_CHUNK` (but the last), none larger than
/// `MAX_CHUNK`, and they average `AVG_CHUNK`.
pub const MIN_CHUNK: usize = 16 << 10;
pub const AVG_CHUNK: usize = 64 << 10;
pub const MAX_CHUNK: usize = 256 << 10;

/// One chunk of a stream: where it is, its content's hash, its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub offset: u64,
    pub hash: ChunkHash,
    pub data: Vec<u8>,
}

impl Chunk {
    /// The chunk of `data` found at `offset`, named by its content.
    pub fn new(offset: u64, data: Vec<u8>) -> Chunk {
        Chunk {
            offset,
            hash: ChunkHash::of(&data),
            data,
        }
    }
}

/// The chunks of `reader`'s bytes, in order; memory stays within one `MAX_CHUNK` buffer.
pub fn chunks<R: Read>(reader: R) -> impl Iterator<Item = Result<Chunk>> {
    StreamCDC::new(reader, MIN_CHUNK, AVG_CHUNK, MAX_CHUNK).map(|chunk| match chunk {
        Ok(c) => Ok(Chunk::new(c.offset, c.data)),
        Err(CdcError::IoError(err)) => Err(CacheError::Read(err)),
        Err(other) => Err(CacheError::Read(std::io::Error::other(format!(
            "{other:?}"
        )))),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::test_data::noise;

    fn cut(bytes: &[u8]) -> Vec<Chunk> {
        chunks(bytes).collect::<Result<_>>().unwrap()
    }

    #[test]
    fn chunks_cover_the_bytes_in_order_within_the_size_bounds() {
        let bytes = noise(5 << 20, 1);
        let cut = cut(&bytes);
        let mut at = 0;
        for (i, c) in cut.iter().enumerate() {
            assert_eq!(c.offset, at);
            assert!(c.data.len() <= MAX_CHUNK);
            assert!(c.data.len() >= MIN_CHUNK || i == cut.len() - 1);
            assert_eq!(c.hash, ChunkHash::of(&c.data));
            at += c.data.len() as u64;
        }
        assert_eq!(at, bytes.len() as u64);
        let avg = bytes.len() / cut.len();
        assert!(
            (AVG_CHUNK / 2..AVG_CHUNK * 2).contains(&avg),
            "average {avg}"
        );
    }

    #[test]
    fn an_edit_near_the_head_keeps_the_chunks_after_it() {
        // A 4 MB track whose tag grows by 300 bytes and whose 60 KB cover is replaced.
        let audio = noise(4 << 20, 2);
        let (tag, cover) = (noise(2_000, 3), noise(60_000, 4));
        let before = [&tag[..], &cover[..], &audio[..]].concat();
        let (new_tag, new_cover) = (noise(2_300, 5), noise(61_000, 6));
        let after = [&new_tag[..], &new_cover[..], &audio[..]].concat();
        let known: HashSet<ChunkHash> = cut(&before).iter().map(|c| c.hash).collect();
        let cut_after = cut(&after);
        let reused: usize = cut_after
            .iter()
            .filter(|c| known.contains(&c.hash))
            .map(|c| c.data.len())
            .sum();
        let share = reused as f64 / after.len() as f64;
        assert!(
            share >= 0.9,
            "only {:.1} % of the bytes reused",
            share * 100.0
        );
    }
}
