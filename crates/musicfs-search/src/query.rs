//! The query language, close to what beets users type (docs/search.md):
//!
//! ```text
//! radiohead ok comp          every word must match some field; the last one as a prefix
//! artist:bowie album:"low"   a word or quoted phrase in one field
//! "ok computer"              a phrase, words in order, in one field
//! year:1997  year:1970..1979  year:1990..  year:..1969
//! format:flac                the real extension or the container (mp4 for .m4a)
//! -live  -genre:christmas    exclude
//! ```

use std::ops::Bound;

use tantivy::Term;
use tantivy::query::{
    AllQuery, BooleanQuery, BoostQuery, Occur, PhraseQuery, Query, RangeQuery, TermQuery,
};
use tantivy::schema::{Field, IndexRecordOption};

use crate::SearchError;
use crate::schema::{Fields, TEXT_FIELDS, terms};

/// One clause as typed.
#[derive(Debug, Clone, PartialEq)]
enum Clause {
    /// Words in any text field (`field` None) or one field; `phrase` keeps their order.
    Text {
        field: Option<String>,
        text: String,
        phrase: bool,
    },
    Year(Bound<i64>, Bound<i64>),
    Format(String),
}

/// Completions of a prefix in a field: the most frequent indexed terms that start with it.
pub type Complete<'a> = &'a dyn Fn(Field, &str) -> Vec<String>;

/// Parses `input` into a tantivy query over `fields`; `complete` expands the word being typed.
pub fn parse(
    input: &str,
    fields: &Fields,
    complete: Complete<'_>,
) -> Result<Box<dyn Query>, SearchError> {
    let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
    let lexed = lex(input)?;
    // Type-ahead: the word being typed is the last one, so only it matches as a prefix.
    // (Prefixes on every word would expand each into many terms: slower, and noisier.)
    let typing = lexed
        .iter()
        .rposition(|(negated, c)| !negated && matches!(c, Clause::Text { phrase: false, .. }));
    for (i, (negated, clause)) in lexed.into_iter().enumerate() {
        let Some(query) = to_query(&clause, fields, (typing == Some(i)).then_some(complete)) else {
            continue; // nothing searchable in it (punctuation only)
        };
        clauses.push((if negated { Occur::MustNot } else { Occur::Must }, query));
    }
    if clauses.iter().all(|(o, _)| *o == Occur::MustNot) {
        if clauses.is_empty() {
            return Err(SearchError::Syntax {
                query: input.to_owned(),
                column: 0,
                reason: "empty query".into(),
            });
        }
        clauses.push((Occur::Must, Box::new(AllQuery)));
    }
    // A lone clause goes unwrapped: tantivy prunes a plain term or disjunction of terms with
    // block-max WAND when collecting the top hits, which a boolean wrapper would defeat.
    if clauses.len() == 1 {
        return Ok(clauses.pop().expect("one clause").1);
    }
    Ok(Box::new(BooleanQuery::new(clauses)))
}

fn syntax(input: &str, column: usize, reason: impl Into<String>) -> SearchError {
    SearchError::Syntax {
        query: input.to_owned(),
        column,
        reason: reason.into(),
    }
}

/// Splits the input into (negated, clause), with errors that point at a column.
fn lex(input: &str) -> Result<Vec<(bool, Clause)>, SearchError> {
    let chars: Vec<(usize, char)> = input.char_indices().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].1.is_whitespace() {
            i += 1;
            continue;
        }
        let negated = chars[i].1 == '-' && chars.get(i + 1).is_some_and(|c| !c.1.is_whitespace());
        if negated {
            i += 1;
        }
        // An optional `field:` prefix.
        let mut field = None;
        let mut j = i;
        while j < chars.len() && (chars[j].1.is_ascii_alphabetic()) {
            j += 1;
        }
        if j > i && chars.get(j).is_some_and(|c| c.1 == ':') {
            let name: String = chars[i..j]
                .iter()
                .map(|c| c.1)
                .collect::<String>()
                .to_lowercase();
            field = Some((name, chars[i].0));
            i = j + 1;
        }
        // The value: quoted, or up to the next whitespace.
        let (value, phrase) = if chars.get(i).is_some_and(|c| c.1 == '"') {
            let open = chars[i].0;
            let close = chars[i + 1..].iter().position(|c| c.1 == '"');
            let Some(close) = close else {
                return Err(syntax(input, open, "unterminated quote"));
            };
            let value: String = chars[i + 1..i + 1 + close].iter().map(|c| c.1).collect();
            i += close + 2;
            (value, true)
        } else {
            let mut k = i;
            while k < chars.len() && !chars[k].1.is_whitespace() {
                k += 1;
            }
            let value: String = chars[i..k].iter().map(|c| c.1).collect();
            i = k;
            (value, false)
        };
        let clause = match field {
            None => Clause::Text {
                field: None,
                text: value,
                phrase,
            },
            Some((name, at)) => match name.as_str() {
                "year" => year_range(input, at, &value)?,
                "format" | "ext" => Clause::Format(value.to_lowercase()),
                f if TEXT_FIELDS.contains(&f) => Clause::Text {
                    field: Some(name),
                    text: value,
                    phrase,
                },
                _ => {
                    return Err(syntax(
                        input,
                        at,
                        format!(
                            "unknown field {name:?} (fields: {}, year, format); to search \
                             for text with a colon, quote it: \"ac:dc\"",
                            TEXT_FIELDS.join(", ")
                        ),
                    ));
                }
            },
        };
        out.push((negated, clause));
    }
    Ok(out)
}

fn year_range(input: &str, at: usize, value: &str) -> Result<Clause, SearchError> {
    let year = |s: &str| -> Result<Bound<i64>, SearchError> {
        if s.is_empty() {
            return Ok(Bound::Unbounded);
        }
        s.parse::<i64>().map(Bound::Included).map_err(|_| {
            syntax(
                input,
                at,
                format!("year must be a number or a range like 1990..1999, not {value:?}"),
            )
        })
    };
    Ok(match value.split_once("..") {
        Some((lo, hi)) => {
            if lo.is_empty() && hi.is_empty() {
                return Err(syntax(input, at, "year range needs a bound"));
            }
            Clause::Year(year(lo)?, year(hi)?)
        }
        None if value.is_empty() => return Err(syntax(input, at, "year needs a value")),
        None => {
            let y = year(value)?;
            Clause::Year(y, y)
        }
    })
}

fn to_query(
    clause: &Clause,
    fields: &Fields,
    complete_last: Option<Complete<'_>>,
) -> Option<Box<dyn Query>> {
    match clause {
        Clause::Year(lo, hi) => {
            let term = |y: &i64| Term::from_field_i64(fields.year, *y);
            Some(Box::new(RangeQuery::new(
                map_bound(lo, term),
                map_bound(hi, term),
            )))
        }
        Clause::Format(f) => Some(Box::new(TermQuery::new(
            Term::from_field_text(fields.format, f),
            IndexRecordOption::Basic,
        ))),
        Clause::Text {
            field,
            text,
            phrase,
        } => {
            let words = terms(text);
            if words.is_empty() {
                return None;
            }
            if *phrase && words.len() > 1 {
                // The phrase in any one of the target fields (positions are per field).
                let targets: Vec<Field> = match field {
                    Some(name) => vec![fields.text(name).expect("checked by the lexer")],
                    None => fields.all_text().to_vec(),
                };
                let per_field = targets
                    .iter()
                    .map(|&f| {
                        let terms = words.iter().map(|w| Term::from_field_text(f, w)).collect();
                        (
                            Occur::Should,
                            Box::new(PhraseQuery::new(terms)) as Box<dyn Query>,
                        )
                    })
                    .collect();
                return Some(Box::new(BooleanQuery::new(per_field)));
            }
            // Free words go to the catch-all field: one term lookup, not one per field.
            let target = match field {
                Some(name) => fields.text(name).expect("checked by the lexer"),
                None => fields.any,
            };
            let last = words.len() - 1;
            let mut per_word: Vec<(Occur, Box<dyn Query>)> = words
                .iter()
                .enumerate()
                .map(|(i, w)| {
                    let term = Term::from_field_text(target, w);
                    let exact: Box<dyn Query> =
                        Box::new(TermQuery::new(term, IndexRecordOption::WithFreqs));
                    let query: Box<dyn Query> = match complete_last {
                        Some(complete) if i == last && w.chars().count() >= 2 => {
                            // The word being typed: itself (ranked first) or one of its most
                            // frequent completions. A few term queries, not an automaton over
                            // every completion: WAND can prune them.
                            let mut any: Vec<(Occur, Box<dyn Query>)> =
                                vec![(Occur::Should, Box::new(BoostQuery::new(exact, 2.0)))];
                            for c in complete(target, w).into_iter().filter(|c| c != w) {
                                any.push((
                                    Occur::Should,
                                    Box::new(TermQuery::new(
                                        Term::from_field_text(target, &c),
                                        IndexRecordOption::WithFreqs,
                                    )),
                                ));
                            }
                            Box::new(BooleanQuery::new(any))
                        }
                        _ => exact,
                    };
                    (Occur::Must, query)
                })
                .collect();
            if per_word.len() == 1 {
                return per_word.pop().map(|(_, q)| q);
            }
            Some(Box::new(BooleanQuery::new(per_word)))
        }
    }
}

fn map_bound(b: &Bound<i64>, f: impl Fn(&i64) -> Term) -> Bound<Term> {
    match b {
        Bound::Included(v) => Bound::Included(f(v)),
        Bound::Excluded(v) => Bound::Excluded(f(v)),
        Bound::Unbounded => Bound::Unbounded,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clauses(q: &str) -> Vec<(bool, Clause)> {
        lex(q).unwrap()
    }

    #[test]
    fn words_fields_phrases_ranges() {
        assert_eq!(
            clauses(r#"radiohead album:"ok computer" -live year:1990..1999 format:FLAC"#),
            vec![
                (
                    false,
                    Clause::Text {
                        field: None,
                        text: "radiohead".into(),
                        phrase: false
                    }
                ),
                (
                    false,
                    Clause::Text {
                        field: Some("album".into()),
                        text: "ok computer".into(),
                        phrase: true
                    }
                ),
                (
                    true,
                    Clause::Text {
                        field: None,
                        text: "live".into(),
                        phrase: false
                    }
                ),
                (
                    false,
                    Clause::Year(Bound::Included(1990), Bound::Included(1999))
                ),
                (false, Clause::Format("flac".into())),
            ]
        );
        assert_eq!(
            clauses("year:..1969")[0].1,
            Clause::Year(Bound::Unbounded, Bound::Included(1969))
        );
    }

    #[test]
    fn errors_point_at_the_problem() {
        for (q, column, what) in [
            ("abc \"open", 4, "unterminated"),
            ("x year:19x", 2, "year"),
            ("x colour:red", 2, "unknown field"),
            ("year:..", 0, "bound"),
        ] {
            match lex(q) {
                Err(SearchError::Syntax {
                    column: c, reason, ..
                }) => {
                    assert_eq!(c, column, "{q}");
                    assert!(reason.contains(what), "{q}: {reason}");
                }
                other => panic!("{q}: {other:?}"),
            }
        }
    }
}
