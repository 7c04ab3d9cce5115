//! Ogg files after a re-tag: the comment header grows or shrinks, so the header pages are
//! rewritten and every audio page after them is renumbered (its sequence number moves by the
//! change in the header page count, and its CRC with it) while its granule position, serial
//! and body stay the same. Byte for byte, almost nothing of the old file is left; renumbered,
//! all of its audio is. [`Renumbering`] finds the change from the new version's head and
//! renumbers the old version's pages, so the delta fetch compares and reuses the renumbered
//! bytes as it does the old bytes of other formats (and checks them the same way).

/// Where the old version's audio pages start and how their sequence numbers moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Renumbering {
    /// Offsets of the old version's pages from the first renumbered one on.
    pages: Vec<u64>,
    /// Added to each of their sequence numbers.
    delta: u32,
}

/// A page header's fields the renumbering needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PageHeader {
    pub granule: i64,
    pub serial: u32,
    pub seq: u32,
    /// Header plus body.
    pub len: usize,
}

const HEADER: usize = 27;

/// Parses the page header at the start of `bytes` (which must hold its segment table).
pub(crate) fn page_header(bytes: &[u8]) -> Option<PageHeader> {
    if bytes.len() < HEADER || &bytes[..4] != b"OggS" || bytes[4] != 0 {
        return None;
    }
    let segments = bytes[26] as usize;
    let table = bytes.get(HEADER..HEADER + segments)?;
    Some(PageHeader {
        granule: i64::from_le_bytes(bytes[6..14].try_into().ok()?),
        serial: u32::from_le_bytes(bytes[14..18].try_into().ok()?),
        seq: u32::from_le_bytes(bytes[18..22].try_into().ok()?),
        len: HEADER + segments + table.iter().map(|&s| s as usize).sum::<usize>(),
    })
}

/// The pages of a file, as (offset, header), read through `read(offset, len)`; None if it is
/// not a well-formed Ogg stream of `size` bytes.
pub(crate) fn pages(
    size: u64,
    read: &mut dyn FnMut(u64, usize) -> Option<Vec<u8>>,
) -> Option<Vec<(u64, PageHeader)>> {
    let mut out = Vec::new();
    let mut at = 0u64;
    while at < size {
        let head = read(at, (HEADER + 255).min((size - at) as usize))?;
        let page = page_header(&head)?;
        out.push((at, page));
        at += page.len as u64;
    }
    (at == size).then_some(out)
}

impl Renumbering {
    /// From the new version's `head` (its first bytes): the first complete audio page there
    /// (granule set) whose granule, serial and body an old page has gives the change in
    /// sequence numbers; the old pages from that one on are renumbered. None if no page of
    /// the head matches, or nothing moved.
    pub(crate) fn find(
        head: &[u8],
        old_pages: &[(u64, PageHeader)],
        read_old: &mut dyn FnMut(u64, usize) -> Option<Vec<u8>>,
    ) -> Option<Renumbering> {
        let mut at = 0usize;
        while let Some(page) = head.get(at..).and_then(page_header) {
            let end = at + page.len;
            if end > head.len() {
                return None;
            }
            if page.granule > 0 {
                let found = old_pages.iter().position(|(_, p)| {
                    p.granule == page.granule && p.serial == page.serial && p.len == page.len
                });
                if let Some(k) = found {
                    let (offset, old) = old_pages[k];
                    // The same page but for its sequence number (bytes 18..22) and CRC (22..26).
                    let new = &head[at..end];
                    let same = read_old(offset, old.len)
                        .is_some_and(|b| b[..18] == new[..18] && b[26..] == new[26..]);
                    let delta = page.seq.wrapping_sub(old.seq);
                    if same && delta != 0 {
                        return Some(Renumbering {
                            pages: old_pages[k..].iter().map(|(o, _)| *o).collect(),
                            delta,
                        });
                    }
                }
            }
            at = end;
        }
        None
    }

    /// Renumbers the old bytes `out`, read at `offset`: every renumbered page it overlaps
    /// gets its new sequence number and CRC. `read_old(offset, len)` reads old bytes (a page
    /// overlapped only in part is read whole, for its CRC).
    pub(crate) fn apply(
        &self,
        offset: u64,
        out: &mut [u8],
        read_old: &mut dyn FnMut(u64, usize) -> Option<Vec<u8>>,
    ) -> Option<()> {
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
            let seq = u32::from_le_bytes(bytes[18..22].try_into().ok()?).wrapping_add(self.delta);
            bytes[18..22].copy_from_slice(&seq.to_le_bytes());
            bytes[22..26].fill(0);
            let crc = crc32(&bytes);
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

/// Ogg's CRC-32: polynomial 0x04c11db7, not reflected, initial value 0, no final xor.
fn crc32(bytes: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut table = [0u32; 256];
        for (i, entry) in table.iter_mut().enumerate() {
            let mut r = (i as u32) << 24;
            for _ in 0..8 {
                r = if r & 0x8000_0000 != 0 {
                    (r << 1) ^ 0x04c1_1db7
                } else {
                    r << 1
                };
            }
            *entry = r;
        }
        table
    });
    bytes.iter().fold(0u32, |crc, &b| {
        (crc << 8) ^ table[((crc >> 24) as u8 ^ b) as usize]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A page: header with `seq` and a correct CRC, then `body`.
    fn page(granule: i64, seq: u32, body: &[u8]) -> Vec<u8> {
        let mut segments = vec![255u8; body.len() / 255];
        segments.push((body.len() % 255) as u8);
        let mut p = b"OggS\0\0".to_vec();
        p.extend_from_slice(&granule.to_le_bytes());
        p.extend_from_slice(&7u32.to_le_bytes());
        p.extend_from_slice(&seq.to_le_bytes());
        p.extend_from_slice(&[0; 4]);
        p.push(segments.len() as u8);
        p.extend_from_slice(&segments);
        p.extend_from_slice(body);
        let crc = crc32(&p);
        p[22..26].copy_from_slice(&crc.to_le_bytes());
        p
    }

    fn body(n: usize, salt: u8) -> Vec<u8> {
        (0..n).map(|i| (i as u8).wrapping_mul(31) ^ salt).collect()
    }

    #[test]
    fn the_crc_is_oggs() {
        // A page whose CRC field holds Ogg's CRC of the page: recomputing it over the page
        // with the field zeroed gives the field back (the known check value of "123456789"
        // under CRC-32/OGG's parameters is 0x89a1897f).
        assert_eq!(crc32(b"123456789"), 0x89a1_897f);
    }

    #[test]
    fn renumbered_old_pages_are_the_new_versions_bytes() {
        // Old: 2 header pages, 5 audio pages. New: 3 header pages (a longer comment), the
        // same audio renumbered by one.
        let audio: Vec<Vec<u8>> = (0..5).map(|k| body(3000 + k * 100, k as u8)).collect();
        let mut old = [page(0, 0, &body(30, 1)), page(0, 1, &body(400, 2))].concat();
        let mut new = [
            page(0, 0, &body(30, 1)),
            page(0, 1, &body(4000, 3)),
            page(0, 2, &body(900, 4)),
        ]
        .concat();
        for (k, a) in audio.iter().enumerate() {
            old.extend(page(1000 * (k as i64 + 1), 2 + k as u32, a));
            new.extend(page(1000 * (k as i64 + 1), 3 + k as u32, a));
        }
        let mut read = |o: u64, n: usize| {
            let o = o as usize;
            old.get(o..(o + n).min(old.len())).map(<[u8]>::to_vec)
        };
        let pages = pages(old.len() as u64, &mut read).unwrap();
        assert_eq!(pages.len(), 7);
        let r = Renumbering::find(&new[..new.len() / 2], &pages, &mut read).unwrap();
        assert_eq!(r.delta, 1);
        // Every range of the old audio, renumbered, is the new file's bytes at the shift.
        let (old_audio, new_audio) = (
            pages[2].0 as usize,
            new.len() - (old.len() - pages[2].0 as usize),
        );
        for (from, len) in [
            (0, old.len() - old_audio),
            (100, 5000),
            (3030, 20),
            (9000, 3),
        ] {
            let mut bytes = old[old_audio + from..old_audio + from + len].to_vec();
            r.apply((old_audio + from) as u64, &mut bytes, &mut read)
                .unwrap();
            assert!(
                bytes == new[new_audio + from..new_audio + from + len],
                "at {from}+{len}"
            );
        }
        // A head with no audio page of the old file: nothing found.
        assert_eq!(Renumbering::find(&new[..4500], &pages, &mut read), None);
    }
}
