//! Making any rendered text a safe single path component.

use unicode_normalization::UnicodeNormalization;

/// Linux NAME_MAX: the longest file name in bytes.
pub const MAX_NAME_BYTES: usize = 255;

/// One safe path component from arbitrary text, with `ext` (already lowercase ASCII, may be
/// empty for directories) appended as `.ext`.
///
/// Invariants of the result: valid UTF-8 in NFC; no `/`, NUL or control character; not empty,
/// `.` or `..`; no leading or trailing whitespace; at most [`MAX_NAME_BYTES`] bytes, cut on a
/// char boundary of the stem so the extension is always kept.
pub fn sanitize_component(text: &str, ext: &str) -> String {
    let mut stem: String = text
        .nfc()
        .map(|c| if c == '/' || c.is_control() { '_' } else { c })
        .collect();
    stem = stem.trim().to_owned();
    if stem.is_empty() || stem == "." || stem == ".." {
        stem = "_".repeat(stem.len().max(1));
    }
    with_ext(&stem, ext, "")
}

/// The `n`-th name (n ≥ 2) for a name already taken in a directory: `Song (2).flac`,
/// `Album (2)`. Deterministic in (name, n); keeps the extension and the 255-byte limit.
pub fn disambiguate(name: &str, ext: &str, n: u32) -> String {
    let stem = if ext.is_empty() {
        name
    } else {
        name.strip_suffix(ext)
            .and_then(|s| s.strip_suffix('.'))
            .unwrap_or(name)
    };
    with_ext(stem, ext, &format!(" ({n})"))
}

/// The key under which two names collide in case-insensitive mode.
pub fn fold_case(name: &str) -> String {
    name.to_lowercase().nfc().collect()
}

fn with_ext(stem: &str, ext: &str, suffix: &str) -> String {
    let tail = if ext.is_empty() {
        suffix.to_owned()
    } else {
        format!("{suffix}.{ext}")
    };
    let budget = MAX_NAME_BYTES.saturating_sub(tail.len());
    let mut cut = stem.len().min(budget);
    while !stem.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut out = stem[..cut].trim_end().to_owned();
    if out.is_empty() {
        out.push('_');
    }
    out.push_str(&tail);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_unsafe_characters() {
        assert_eq!(sanitize_component("AC/DC", ""), "AC_DC");
        assert_eq!(sanitize_component("a\0b\x07c\u{9f}", ""), "a_b_c_");
        assert_eq!(sanitize_component("  padded  ", "mp3"), "padded.mp3");
    }

    #[test]
    fn never_empty_or_dots() {
        assert_eq!(sanitize_component("", ""), "_");
        assert_eq!(sanitize_component("   ", ""), "_");
        assert_eq!(sanitize_component(".", ""), "_");
        assert_eq!(sanitize_component("..", ""), "__");
        assert_eq!(sanitize_component("..", "flac"), "__.flac");
        assert_eq!(sanitize_component("...", ""), "...");
    }

    #[test]
    fn normalizes_to_nfc() {
        let decomposed = "Bjo\u{308}rk";
        assert_eq!(sanitize_component(decomposed, ""), "Björk");
    }

    #[test]
    fn cuts_long_names_on_char_boundary_keeping_extension() {
        let long = "é".repeat(300);
        let name = sanitize_component(&long, "flac");
        assert!(name.len() <= MAX_NAME_BYTES, "{}", name.len());
        assert!(name.ends_with("é.flac"));
        let second = disambiguate(&name, "flac", 12);
        assert!(second.len() <= MAX_NAME_BYTES);
        assert!(second.ends_with(" (12).flac"), "{second}");
    }

    #[test]
    fn disambiguates_before_extension() {
        assert_eq!(
            disambiguate("01 - Intro.flac", "flac", 2),
            "01 - Intro (2).flac"
        );
        assert_eq!(disambiguate("Greatest Hits", "", 3), "Greatest Hits (3)");
    }

    #[test]
    fn folds_case() {
        assert_eq!(fold_case("Björk"), fold_case("BJÖRK"));
    }
}
