//! S3 listings in fewer requests. A delimited listing costs a request per folder; a flat
//! `ListObjectsV2` walk of a top-level folder (an artist, typically) returns its whole subtree,
//! every album in it, in one or a few pages. The folders of that subtree are then held here
//! until the scanner's walk asks for each one, and handed out once.
//!
//! Memory is bounded: a subtree is walked flat only while it has at most [`FLAT_MAX_KEYS`]
//! keys (a bigger one falls back to delimited listings, folder by folder), and no flat walk
//! starts while [`HELD_MAX`] entries are waiting.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::{Entry, Meta};

/// Keys of one subtree walked flat; more and the subtree is listed folder by folder.
pub(crate) const FLAT_MAX_KEYS: usize = 5_000;
/// Entries held for the walk at most, all subtrees together.
const HELD_MAX: usize = 200_000;

#[derive(Default)]
pub(crate) struct ListedAhead {
    state: Mutex<Held>,
}

#[derive(Default)]
struct Held {
    folders: HashMap<Vec<u8>, Vec<Entry>>,
    entries: usize,
}

impl ListedAhead {
    /// The held listing of the folder `rel`, removed (each is handed out once).
    pub(crate) fn take(&self, rel: &[u8]) -> Option<Vec<Entry>> {
        let mut held = self.state.lock().unwrap();
        let entries = held.folders.remove(rel)?;
        held.entries -= entries.len();
        Some(entries)
    }

    /// Whether a flat walk of a folder below the root may start.
    pub(crate) fn has_room(&self) -> bool {
        self.state.lock().unwrap().entries < HELD_MAX
    }

    fn hold(&self, folders: HashMap<Vec<u8>, Vec<Entry>>) {
        let mut held = self.state.lock().unwrap();
        for (rel, entries) in folders {
            held.entries += entries.len();
            held.folders.insert(rel, entries);
        }
    }

    /// Splits a flat listing of the folder `rel` (object keys relative to it, with their
    /// metadata) into the listing of every folder of the subtree: `rel`'s own is returned,
    /// the others are held for the walk.
    pub(crate) fn split(&self, rel: &[u8], objects: Vec<(String, Meta)>) -> Vec<Entry> {
        let mut folders: HashMap<Vec<u8>, Vec<Entry>> = HashMap::new();
        folders.insert(rel.to_vec(), Vec::new());
        for (key, meta) in objects {
            // A "folder marker" object (`dir/`) or a key with empty segments names no file;
            // a `.` or `..` segment would name a path outside its folder (the HTTP layer
            // takes such keys out already: this holds whatever lists them).
            if key.is_empty()
                || key
                    .split('/')
                    .any(|s| s.is_empty() || s == "." || s == "..")
            {
                continue;
            }
            let mut parent = rel.to_vec();
            let mut parts = key.split('/').peekable();
            while let Some(part) = parts.next() {
                let is_dir = parts.peek().is_some();
                let child = crate::join(&parent, part.as_bytes());
                if is_dir {
                    if !folders.contains_key(&child) {
                        folders.insert(child.clone(), Vec::new());
                        folders.entry(parent).or_default().push(Entry {
                            name: part.as_bytes().to_vec(),
                            is_dir: true,
                            meta: Meta::default(),
                            refused: None,
                        });
                    }
                } else {
                    folders.entry(parent).or_default().push(Entry {
                        name: part.as_bytes().to_vec(),
                        is_dir: false,
                        meta: meta.clone(),
                        refused: None,
                    });
                }
                parent = child;
            }
        }
        let own = folders.remove(rel).unwrap_or_default();
        self.hold(folders);
        own
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(entries: &[Entry]) -> Vec<(String, bool)> {
        let mut out: Vec<_> = entries
            .iter()
            .map(|e| (String::from_utf8(e.name.clone()).unwrap(), e.is_dir))
            .collect();
        out.sort();
        out
    }

    #[test]
    fn a_flat_listing_becomes_one_listing_per_folder_handed_out_once() {
        let ahead = ListedAhead::default();
        let meta = |size| Meta {
            size,
            ..Meta::default()
        };
        let own = ahead.split(
            b"Artist",
            vec![
                ("A (2001)/01.flac".into(), meta(1)),
                ("A (2001)/CD 2/01.flac".into(), meta(2)),
                ("A (2001)/z.mp3".into(), meta(3)),
                ("B/".into(), meta(0)),
                ("B/01.mp3".into(), meta(4)),
                ("loose.mp3".into(), meta(5)),
            ],
        );
        assert_eq!(
            names(&own),
            [
                ("A (2001)".into(), true),
                ("B".into(), true),
                ("loose.mp3".into(), false)
            ]
        );
        let album = ahead.take(b"Artist/A (2001)").unwrap();
        assert_eq!(
            names(&album),
            [
                ("01.flac".into(), false),
                ("CD 2".into(), true),
                ("z.mp3".into(), false)
            ]
        );
        assert_eq!(
            album.iter().find(|e| e.name == b"z.mp3").unwrap().meta.size,
            3
        );
        assert_eq!(
            names(&ahead.take(b"Artist/A (2001)/CD 2").unwrap()),
            [("01.flac".into(), false)]
        );
        assert_eq!(
            names(&ahead.take(b"Artist/B").unwrap()),
            [("01.mp3".into(), false)]
        );
        assert!(ahead.take(b"Artist/B").is_none(), "handed out once");
        assert_eq!(ahead.state.lock().unwrap().entries, 0);
    }
}
