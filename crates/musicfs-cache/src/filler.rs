//! Cutting a file into chunks from the pieces a remote read fetches, in order, as they come
//! (the windows of a played file), into exactly the chunks [`crate::chunks`] cuts from the
//! whole file. A cut is final once it is content-defined inside the bytes held (or at the
//! maximum size); bytes after the last final cut wait for the next piece, or the end.

use fastcdc::v2020::FastCDC;

use crate::chunker::{AVG_CHUNK, Chunk, MAX_CHUNK, MIN_CHUNK};

pub struct Filler {
    /// File offset of `pending[0]`: always a chunk boundary.
    start: u64,
    pending: Vec<u8>,
}

impl Filler {
    /// A filler continuing from `at`, which must be a chunk boundary of the file (0, or the
    /// end of a chunk it already has).
    pub fn new(at: u64) -> Filler {
        Filler {
            start: at,
            pending: Vec::new(),
        }
    }

    /// The end of the chunks cut so far (the bytes fed after it are held until a boundary).
    pub fn cut_to(&self) -> u64 {
        self.start
    }

    /// The offset of the next byte to feed.
    pub fn next_offset(&self) -> u64 {
        self.start + self.pending.len() as u64
    }

    /// Takes the next bytes of the file; returns the chunks now final. Memory: at most
    /// `MAX_CHUNK` plus one piece.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Chunk> {
        self.pending.extend_from_slice(bytes);
        self.cut(false)
    }

    /// The end of the file: every byte held becomes chunks.
    pub fn finish(mut self) -> Vec<Chunk> {
        self.cut(true)
    }

    fn cut(&mut self, at_end: bool) -> Vec<Chunk> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < self.pending.len() {
            let rest = &self.pending[pos..];
            let Some(c) = FastCDC::new(rest, MIN_CHUNK, AVG_CHUNK, MAX_CHUNK).next() else {
                break;
            };
            // A cut at the end of what is held may only be where the bytes stop.
            let is_final = at_end || c.length < rest.len() || c.length == MAX_CHUNK;
            if !is_final {
                break;
            }
            out.push(Chunk::new(
                self.start + pos as u64,
                rest[..c.length].to_vec(),
            ));
            pos += c.length;
        }
        self.pending.drain(..pos);
        self.start += pos as u64;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunks;
    use crate::test_data::noise;

    #[test]
    fn pieces_of_any_size_give_the_chunks_of_the_whole() {
        let bytes = noise(3 << 20, 11);
        let whole: Vec<Chunk> = chunks(&bytes[..]).collect::<crate::Result<_>>().unwrap();
        // Windows like a played file's, tiny pieces, one byte more than a chunk, and all.
        let plans: [&[usize]; 4] = [
            &[256 << 10, 512 << 10, 1 << 20, 8 << 20],
            &[4096],
            &[MAX_CHUNK + 1],
            &[usize::MAX],
        ];
        for plan in plans {
            let mut filler = Filler::new(0);
            let mut got = Vec::new();
            let (mut at, mut i) = (0usize, 0usize);
            while at < bytes.len() {
                let n = plan[i.min(plan.len() - 1)].min(bytes.len() - at);
                got.extend(filler.feed(&bytes[at..at + n]));
                at += n;
                i += 1;
                assert_eq!(filler.next_offset(), at as u64);
                assert!(filler.pending.len() <= MAX_CHUNK + n, "held too much");
            }
            got.extend(filler.finish());
            assert_eq!(got, whole, "pieces of {plan:?}");
        }
    }

    #[test]
    fn a_filler_resumes_at_a_chunk_boundary() {
        let bytes = noise(1 << 20, 12);
        let whole: Vec<Chunk> = chunks(&bytes[..]).collect::<crate::Result<_>>().unwrap();
        let resume = &whole[3];
        let mut filler = Filler::new(resume.offset);
        let mut got = filler.feed(&bytes[resume.offset as usize..]);
        got.extend(filler.finish());
        assert_eq!(got, whole[3..]);
    }
}
