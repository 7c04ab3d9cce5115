//! Which files are audio files.

/// Extensions (lowercase) of every container lofty 0.25 reads.
pub const AUDIO_EXTENSIONS: &[&str] = &[
    "aac", "aif", "aifc", "aiff", "ape", "flac", "m4a", "m4b", "m4p", "mp1", "mp2", "mp3", "mp4",
    "mpc", "mp+", "mpp", "oga", "ogg", "opus", "spx", "wav", "wave", "wv",
];

/// The lowercased extension of `file_name` when it names an audio file, matched
/// case-insensitively (`Song.FLAC` is `flac`). Works on raw bytes: non-UTF-8 stems are fine.
pub fn audio_extension(file_name: &[u8]) -> Option<String> {
    let dot = file_name.iter().rposition(|&b| b == b'.')?;
    if dot == 0 {
        return None; // ".flac" is a hidden file with no stem, not an audio file
    }
    let ext = std::str::from_utf8(&file_name[dot + 1..])
        .ok()?
        .to_ascii_lowercase();
    AUDIO_EXTENSIONS.contains(&ext.as_str()).then_some(ext)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_case_insensitively() {
        assert_eq!(audio_extension(b"a.FLAC").as_deref(), Some("flac"));
        assert_eq!(audio_extension(b"a.Mp3").as_deref(), Some("mp3"));
        assert_eq!(audio_extension(b"\xff\xfe.ogg").as_deref(), Some("ogg"));
    }

    #[test]
    fn rejects_non_audio() {
        assert_eq!(audio_extension(b"cover.jpg"), None);
        assert_eq!(audio_extension(b"flac"), None);
        assert_eq!(audio_extension(b".flac"), None);
        assert_eq!(audio_extension(b"a.fl\xffac"), None);
    }
}
