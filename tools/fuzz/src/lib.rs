//! What the fuzz targets check, shared with the replay of saved crashers (`tests/replay.rs`)
//! so a crasher found by the fuzzer fails the normal test suite until it is fixed.
//!
//! The promises checked are the product's, not the libraries': lofty may reject or even panic
//! on any input (the scanner contains that), but reading tags must return, within memory,
//! without killing the process; any template either fails to parse with an error or renders
//! names that are safe path components.

use std::path::Path;

use musicfs_layout::{FileName, Layout, MAX_NAME_BYTES};
use musicfs_tags::Track;

/// Reads tags of `data` stored at `scratch` (a file the caller owns) through the scanner's own
/// entry point. Returns whether lofty read it; panics only if a promise breaks.
pub fn tags(data: &[u8], scratch: &Path) -> bool {
    std::fs::write(scratch, data).expect("write scratch file");
    musicfs_tags::read_track(scratch).is_ok()
}

/// Splits `data` into a template and tag values, parses and renders; panics if a rendered
/// name is unsafe. Layout: template text, then NUL-separated values for the tag fields.
pub fn template(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\0');
    let source = parts.next().unwrap_or_default();
    let mut value = || parts.next().map(str::to_owned);
    let track = Track {
        title: value(),
        artist: value(),
        album: value(),
        albumartist: value(),
        genre: value(),
        date: value(),
        track: value().and_then(|v| v.parse().ok()),
        disc: value().and_then(|v| v.parse().ok()),
        ..Track::default()
    };
    let stem = value().unwrap_or_else(|| "file".to_owned());
    let Ok(layout) = Layout::new(&[(String::new(), source.to_owned())], false) else {
        return; // a parse error is a fine answer
    };
    for placement in layout.render(
        &track,
        &FileName {
            stem: &stem,
            ext: "flac",
        },
    ) {
        assert!(!placement.components.is_empty(), "no path for {source:?}");
        for c in &placement.components {
            assert!(!c.is_empty(), "empty component from {source:?}");
            assert!(c != "." && c != "..", "{c:?} from {source:?}");
            assert!(
                !c.contains('/') && !c.contains('\0'),
                "{c:?} from {source:?}"
            );
            assert!(!c.chars().any(char::is_control), "{c:?} from {source:?}");
            assert!(
                c.len() <= MAX_NAME_BYTES,
                "{} bytes from {source:?}",
                c.len()
            );
        }
    }
}
