//! Album groups of one folder, resolved when the folder is walked with any change (see
//! `musicfs_tags::album`): new and changed files get their group's values before they are
//! written; unchanged files whose values moved with the majority are re-placed.

use musicfs_layout::Layout;
use musicfs_tags::Track;
use musicfs_tags::album::{Member, resolve_folder};

use crate::walk::placements;
use crate::write::{Op, PutFile, Regroup};

/// A stored, unchanged file of the folder: (id, name, ext, stored track, already grouped).
pub(crate) struct StoredMember {
    pub id: i64,
    pub name: Vec<u8>,
    pub ext: String,
    pub track: Track,
    pub grouped: bool,
}

fn member(t: &Track) -> Member<'_> {
    Member {
        album: t.album.as_deref(),
        albumartist: t.albumartist.as_deref(),
        artist: t.artist.as_deref(),
        year: t.year(),
        compilation: t.compilation,
    }
}

/// Resolves the folder's groups over `stored` and `puts`; sets each put's group values and
/// placements; returns a [`Regroup`] op for each stored file whose values changed.
pub(crate) fn regroup(
    layout: &Layout,
    various: &str,
    stored: Vec<StoredMember>,
    puts: &mut [PutFile],
) -> Vec<Op> {
    let values = {
        let members: Vec<Member<'_>> = stored
            .iter()
            .map(|s| member(&s.track))
            .chain(puts.iter().map(|p| member(&p.track)))
            .collect();
        resolve_folder(&members, various)
    };
    let (for_stored, for_puts) = values.split_at(stored.len());
    for (put, v) in puts.iter_mut().zip(for_puts) {
        if put.track.album_group != *v {
            put.track.album_group = v.clone();
            put.placements = placements(layout, &put.track, &put.name, &put.ext);
        }
    }
    stored
        .into_iter()
        .zip(for_stored)
        .filter(|(s, v)| !s.grouped || s.track.album_group != **v)
        .map(|(mut s, v)| {
            s.track.album_group = v.clone();
            let placements = placements(layout, &s.track, &s.name, &s.ext);
            Op::Regroup(Box::new(Regroup {
                file_id: s.id,
                values: v.clone(),
                ext: s.ext,
                placements,
            }))
        })
        .collect()
}
