//! Template functions: `%name{arg,...}`.

/// A template function. Arguments are rendered first; a function never fails at render time
/// (a bad number argument counts as 0), so one odd tag cannot stop a scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Func {
    Lower,
    Upper,
    Title,
    Left,
    Right,
    Pad,
    Initial,
    The,
    If,
}

impl Func {
    pub(crate) const NAMES: &'static [&'static str] = &[
        "lower", "upper", "title", "left", "right", "pad", "initial", "the", "if",
    ];

    pub(crate) fn by_name(name: &str) -> Option<Func> {
        Some(match name {
            "lower" => Func::Lower,
            "upper" => Func::Upper,
            "title" => Func::Title,
            "left" => Func::Left,
            "right" => Func::Right,
            "pad" => Func::Pad,
            "initial" => Func::Initial,
            "the" => Func::The,
            "if" => Func::If,
            _ => return None,
        })
    }

    /// Minimum and maximum argument counts.
    pub(crate) fn arity(self) -> (usize, usize) {
        match self {
            Func::Lower | Func::Upper | Func::Title | Func::Initial | Func::The => (1, 1),
            Func::Left | Func::Right => (2, 2),
            Func::Pad => (2, 3),
            Func::If => (2, 3),
        }
    }

    /// Applies the function to rendered arguments (`If` is handled by the renderer, which must
    /// not render the branch it does not take).
    pub(crate) fn apply(self, args: &[String]) -> String {
        let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
        let count = |i: usize| arg(i).trim().parse::<usize>().unwrap_or(0);
        match self {
            Func::Lower => arg(0).to_lowercase(),
            Func::Upper => arg(0).to_uppercase(),
            Func::Title => title_case(arg(0)),
            Func::Left => arg(0).chars().take(count(1)).collect(),
            Func::Right => {
                let chars: Vec<char> = arg(0).chars().collect();
                chars[chars.len().saturating_sub(count(1))..]
                    .iter()
                    .collect()
            }
            Func::Pad => {
                let fill = arg(2).chars().next().unwrap_or('0');
                let len = arg(0).chars().count();
                // The width may come from a tag (`%pad{$track,$title}`): a name never exceeds
                // MAX_NAME_BYTES, so wider padding is pointless and a huge one would abort on
                // allocation (found by tools/fuzz, crashers/template/pad-huge-width).
                let width = count(1).min(crate::MAX_NAME_BYTES);
                let mut out: String =
                    std::iter::repeat_n(fill, width.saturating_sub(len)).collect();
                out.push_str(arg(0));
                out
            }
            Func::Initial => initial(arg(0)),
            Func::The => the_suffix(arg(0)),
            Func::If => String::new(),
        }
    }
}

/// A value is true when it is non-empty and not "0" or "false".
pub(crate) fn truthy(value: &str) -> bool {
    let v = value.trim();
    !(v.is_empty() || v == "0" || v.eq_ignore_ascii_case("false"))
}

fn title_case(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut at_word_start = true;
    for c in s.chars() {
        if at_word_start {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        at_word_start = c.is_whitespace() || c == '-' || c == '(';
    }
    out
}

/// The index letter of a name: its first letter uppercased, `0-9` for a digit, `#` otherwise.
fn initial(s: &str) -> String {
    match s.trim_start().chars().next() {
        Some(c) if c.is_alphabetic() => c.to_uppercase().collect(),
        Some(c) if c.is_numeric() => "0-9".to_owned(),
        _ => "#".to_owned(),
    }
}

/// "The Beatles" → "Beatles, The" (case-insensitive on "The", which is kept as written).
fn the_suffix(s: &str) -> String {
    let trimmed = s.trim();
    match trimmed.get(..4) {
        Some(prefix) if prefix.eq_ignore_ascii_case("the ") && trimmed.len() > 4 => {
            format!("{}, {}", trimmed[4..].trim_start(), &trimmed[..3])
        }
        _ => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn functions() {
        assert_eq!(Func::The.apply(&s(&["The Beatles"])), "Beatles, The");
        assert_eq!(Func::The.apply(&s(&["the the"])), "the, the");
        assert_eq!(Func::The.apply(&s(&["Theatre"])), "Theatre");
        assert_eq!(Func::The.apply(&s(&["The"])), "The");
        assert_eq!(Func::Initial.apply(&s(&["björk"])), "B");
        assert_eq!(Func::Initial.apply(&s(&["élan"])), "É");
        assert_eq!(Func::Initial.apply(&s(&["2Pac"])), "0-9");
        assert_eq!(Func::Initial.apply(&s(&["!!!"])), "#");
        assert_eq!(Func::Pad.apply(&s(&["7", "3"])), "007");
        assert_eq!(Func::Pad.apply(&s(&["7", "3", " "])), "  7");
        assert_eq!(Func::Pad.apply(&s(&["1234", "2"])), "1234");
        assert_eq!(Func::Left.apply(&s(&["Ωmega", "2"])), "Ωm");
        assert_eq!(Func::Right.apply(&s(&["abc", "5"])), "abc");
        assert_eq!(Func::Upper.apply(&s(&["straße"])), "STRASSE");
        assert_eq!(Func::Title.apply(&s(&["ok computer"])), "Ok Computer");
        assert!(truthy("1") && !truthy("0") && !truthy("") && !truthy("false"));
    }
}
