//! Ogg files after a re-tag: the header pages are rewritten and every audio page after them
//! is renumbered (its sequence number moves by the change in the header page count, and its
//! CRC with it) while its granule position, serial and body stay the same. [`Renumbering`]
//! turns the old version's audio pages into the new version's: the delta fetch reuses the
//! renumbered bytes as it reuses the old bytes of other formats (and checks them the same
//! way).

use musicfs_container::{OggAudio, ogg_crc32, page_header};

const HEADER: usize = 27;

/// The old version's audio pages and how their sequence numbers moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Renumbering {
    /// Offsets of the old version's audio pages, in order.
    pages: Vec<u64>,
    /// Added to each of their sequence numbers.
    delta: u32,
}

impl Renumbering {
    /// The renumbering of the old audio pages from `old_start` (where `old` says they begin)
    /// to the end of a file of `old_size` bytes, for a new version whose audio is `new`.
    /// None unless every one of them is a page of the same single stream (one serial, no
    /// second stream starting, no end of stream before the last page), numbered without a
    /// gap (a tagger renumbers pages one by one: one shift holds for all only then), ending
    /// exactly at the end of the file.
    pub(crate) fn new(
        old_start: u64,
        old_size: u64,
        old: OggAudio,
        new: OggAudio,
        read: &mut dyn FnMut(u64, usize) -> Option<Vec<u8>>,
    ) -> Option<Renumbering> {
        if old.serial != new.serial {
            return None;
        }
        let mut pages = Vec::new();
        let mut at = old_start;
        while at < old_size {
            let head = read(at, (HEADER + 255).min((old_size - at) as usize))?;
            let page = page_header(&head)?;
            if page.serial != old.serial || page.flags & 0x02 != 0 {
                return None;
            }
            if page.seq != old.first_seq.wrapping_add(pages.len() as u32) {
                return None;
            }
            pages.push(at);
            at += page.len as u64;
            if page.flags & 0x04 != 0 && at != old_size {
                return None;
            }
        }
        (at == old_size).then_some(Renumbering {
            pages,
            delta: new.first_seq.wrapping_sub(old.first_seq),
        })
    }

    /// Renumbers the old bytes `out`, read at `offset`: every page it overlaps gets its new
    /// sequence number and CRC. `read_old(offset, len)` reads old bytes (a page overlapped
    /// only in part is read whole, for its CRC). Nothing to do when the numbers did not move.
    pub(crate) fn apply(
        &self,
        offset: u64,
        out: &mut [u8],
        read_old: &mut dyn FnMut(u64, usize) -> Option<Vec<u8>>,
    ) -> Option<()> {
        if self.delta == 0 {
            return Some(());
        }
        let end = offset + out.len() as u64;
        let first = self
            .pages
            .partition_point(|&p| p <= offset)
            .saturating_sub(1);
        for &page in self.pages[first..].iter().take_while(|&&p| p < end) {
            let head = read_old(page, HEADER + 255)?;
            let len = page_header(&head)?.len;
            if page + len as u64 <= offset {
                continue;
            }
            let mut bytes = read_old(page, len)?;
            if bytes.len() != len {
                return None;
            }
            let seq = u32::from_le_bytes(bytes[18..22].try_into().ok()?).wrapping_add(self.delta);
            bytes[18..22].copy_from_slice(&seq.to_le_bytes());
            bytes[22..26].fill(0);
            let crc = ogg_crc32(&bytes);
            bytes[22..26].copy_from_slice(&crc.to_le_bytes());
            // The part of the page inside `out`.
            let from = offset.max(page);
            let to = end.min(page + len as u64);
            out[(from - offset) as usize..(to - offset) as usize]
                .copy_from_slice(&bytes[(from - page) as usize..(to - page) as usize]);
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_crc_is_oggs() {
        // The known check value of "123456789" under CRC-32/OGG's parameters.
        assert_eq!(musicfs_container::ogg_crc32(b"123456789"), 0x89a1_897f);
    }
}
