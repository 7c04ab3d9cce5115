//! Re-rendering the whole tree from stored tags after a layout change (no audio is read).

use musicfs_db::Writer;
use musicfs_layout::{FileName, Layout};

use crate::ScanError;
use crate::policy::LayoutPolicy;
use crate::summary::Counters;

const PAGE: u32 = 2_000;

/// Re-places every stored file under `layout`, a page of files per transaction. Entries whose
/// rendered path is unchanged keep their inode. Killed midway, the stored fingerprint is still
/// the old one, so the next scan runs this again and converges.
pub(crate) fn relayout(
    writer: &mut Writer,
    layout: &Layout,
    policy: &LayoutPolicy,
    counters: &Counters,
) -> Result<(), ScanError> {
    let mut after = 0;
    loop {
        writer.begin()?;
        let page = writer.stored_tracks(after, PAGE)?;
        let Some(last) = page.last() else {
            writer.commit()?;
            return Ok(());
        };
        after = last.id;
        for stored in &page {
            let cut = stored.name.len().saturating_sub(stored.ext.len() + 1);
            let stem = String::from_utf8_lossy(&stored.name[..cut]);
            let placements = layout.render(
                &stored.track,
                &FileName {
                    stem: &stem,
                    ext: &stored.ext,
                },
            );
            let refs: Vec<(i64, &[String])> = placements
                .iter()
                .map(|p| (p.key, p.components.as_slice()))
                .collect();
            if writer.place(stored.id, &refs, &stored.ext, policy, false)? > 0 {
                Counters::bump(&counters.relayout, 1);
            }
        }
        writer.commit()?;
    }
}
