//! The walk over a remote origin (SFTP, S3): folders listed and files read through the origin
//! layer. A tag read fetches only what the parser touches (a `RangeReader`: the head, the tail
//! when the format keeps tags there), and many files are read at once to hide the round trips.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use musicfs_origin::{Origin, RangeReader};
use musicfs_tags::audio_extension;

use crate::summary::Counters;
use crate::walk::{Listed, Listing, ToRead, Walk, join};
use crate::write::PutFile;

impl Walk<'_> {
    /// The progress line of a remote walk: files listed, files read, bytes fetched.
    fn show_remote_progress(&self, origin: &dyn Origin) {
        if self.progress.is_hidden() {
            return;
        }
        self.progress.set_message(format!(
            "· {} listed · {} read · {:.1} MB fetched",
            self.counters.listed.load(Ordering::Relaxed),
            self.counters.read.load(Ordering::Relaxed),
            origin.bytes_fetched() as f64 / 1e6
        ));
    }

    /// Lists the folder `rel`. An origin that stops answering stops the whole walk (nothing
    /// is removed); a folder that fails alone is kept as it is.
    pub(crate) fn list_remote(&self, origin: &dyn Origin, rel: &[u8]) -> Result<Listing, String> {
        let entries = match origin.list(rel) {
            Ok(entries) => entries,
            Err(err) if err.is_origin_down() => {
                self.lose_origin(&format!("{err}"));
                return Err(err.to_string());
            }
            Err(err) => return Err(err.to_string()),
        };
        let mut listing = Listing {
            identity: None,
            files: Vec::new(),
            subdirs: Vec::new(),
            skipped: Vec::new(),
            complete: true,
        };
        for entry in entries {
            if let Some(reason) = entry.refused {
                // One odd key (macOS's `Icon\r`, `a//b`) is reported alone; the rest of its
                // folder is indexed as usual.
                self.report("skipped", &self.abs(&join(rel, &entry.name)), &reason);
                listing.skipped.push((entry.name, reason));
            } else if entry.is_dir {
                listing.subdirs.push(entry.name);
            } else if audio_extension(&entry.name).is_some() {
                listing.files.push(Listed {
                    name: entry.name,
                    size: entry.meta.size as i64,
                    mtime: entry.meta.mtime_ns,
                    identity: None,
                    etag: entry.meta.etag,
                });
            }
        }
        Counters::bump(&self.counters.listed, listing.files.len() as u64);
        self.show_remote_progress(origin);
        Ok(listing)
    }

    /// Reads one file's tags in ranges. `None` if it vanished since it was listed.
    pub(crate) fn read_remote(
        &self,
        origin: &Arc<dyn Origin>,
        rel: &[u8],
        file: &ToRead,
    ) -> (Option<PutFile>, bool) {
        if self.stop.load(Ordering::Relaxed) {
            return (None, file.changed);
        }
        let path_rel = join(rel, &file.name);
        let path = self.abs(&path_rel);
        // Only the listed version is read: a rewrite since the listing fails the read (and
        // the file is read again next scan) rather than pair new tags with the old ETag.
        let reader = RangeReader::new(
            origin.clone(),
            path_rel,
            file.size as u64,
            Some(Instant::now() + self.tag_timeout),
        )
        .with_etag(file.etag.clone());
        let outcome = musicfs_tags::read_track_from(std::io::BufReader::new(reader), &path);
        Counters::bump(&self.counters.read, 1);
        self.show_remote_progress(origin.as_ref());
        // A read that failed on the network while the origin went away is not the file's
        // fault: leave it out (the next scan reads it) rather than index it by name.
        if let Err(err) = &outcome
            && err.is_transient()
            && (self.stop.load(Ordering::Relaxed) || !matches!(origin.stat_root(), Ok(true)))
        {
            if !self.stop.load(Ordering::Relaxed) {
                self.lose_origin(&format!("stopped answering while reading tags ({err})"));
            }
            return (None, file.changed);
        }
        (self.put(rel, &path, file, outcome), file.changed)
    }
}
