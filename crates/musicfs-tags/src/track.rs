/// What musicfs knows of one audio file's contents. Every field is optional: real files miss
/// tags, and a file lofty cannot read at all is a `Track::default()` plus a scan error.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Track {
    /// Container as read by lofty: "flac", "mpeg", "opus", "vorbis", "mp4", ...
    pub format: Option<String>,
    pub duration_ms: Option<u64>,
    pub bitrate_kbps: Option<u32>,
    pub sample_rate: Option<u32>,
    pub bit_depth: Option<u8>,
    pub channels: Option<u8>,

    pub title: Option<String>,
    pub artist: Option<String>,
    pub album: Option<String>,
    pub albumartist: Option<String>,
    pub genre: Option<String>,
    /// The date as tagged ("1997", "1997-05-21").
    pub date: Option<String>,
    pub track: Option<u32>,
    pub tracktotal: Option<u32>,
    pub disc: Option<u32>,
    pub disctotal: Option<u32>,
    pub compilation: bool,

    /// Not a tag: the values of the track's album group, resolved by the scanner over its
    /// real folder (see [`crate::album`]). `None` fields fall back to the track's own tags.
    pub album_group: crate::AlbumValues,
}

impl Track {
    /// Year parsed from `date`, when it starts with four digits.
    pub fn year(&self) -> Option<i32> {
        self.date.as_deref().and_then(parse_year)
    }
}

/// The year of a tagged date: its first run of four digits ("1997-05-21", "c. 1997", "1997/98").
pub fn parse_year(date: &str) -> Option<i32> {
    let bytes = date.as_bytes();
    bytes.windows(4).enumerate().find_map(|(i, w)| {
        let digits = w.iter().all(u8::is_ascii_digit);
        let before_ok = i == 0 || !bytes[i - 1].is_ascii_digit();
        let after_ok = bytes.get(i + 4).is_none_or(|b| !b.is_ascii_digit());
        (digits && before_ok && after_ok).then(|| std::str::from_utf8(w).ok()?.parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn years() {
        assert_eq!(parse_year("1997"), Some(1997));
        assert_eq!(parse_year("1997-05-21"), Some(1997));
        assert_eq!(parse_year("c. 1970"), Some(1970));
        assert_eq!(parse_year("19xx"), None);
        assert_eq!(parse_year("123456"), None);
        assert_eq!(parse_year(""), None);
    }
}
