//! Template grammar (documented for users in docs/templates.md):
//!
//! ```text
//! template := item*
//! item     := text | '$' ident | '${' alt ('|' alt)* '}' | '[' item* ']' | '%' ident '{' args '}'
//!           | '$$' | '$%' | '$[' | '$]' | '$,' | '$}'            (escapes: the second char, literally)
//! alt      := ident | '"' any-but-quote* '"'
//! args     := item* (',' item*)*
//! ```

use crate::fields::FIELDS;
use crate::functions::Func;

/// A parse error, with the 1-based column (in characters) where it was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template error at column {column}: {message}\n  {template}\n  {caret:>width$}", caret = "^", width = *column)]
pub struct TemplateError {
    pub column: usize,
    pub message: String,
    pub template: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Alt {
    Field(&'static str),
    Literal(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Node {
    Text(String),
    /// A fallback chain: the first alternative that has a value. One alternative for `$field`.
    Field(Vec<Alt>),
    /// `[...]`: dropped when any field inside has no value.
    Optional(Vec<Node>),
    Call(Func, Vec<Vec<Node>>),
}

/// A parsed template. Parse once at configuration time; render per file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub(crate) source: String,
    pub(crate) nodes: Vec<Node>,
}

impl Template {
    pub fn parse(source: &str) -> Result<Template, TemplateError> {
        let mut parser = Parser {
            chars: source.chars().collect(),
            pos: 0,
            source,
        };
        let nodes = parser.sequence(Context::Top)?;
        Ok(Template {
            source: source.to_owned(),
            nodes,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    Top,
    Optional,
    Argument,
}

struct Parser<'a> {
    chars: Vec<char>,
    pos: usize,
    source: &'a str,
}

impl Parser<'_> {
    fn error(&self, pos: usize, message: impl Into<String>) -> TemplateError {
        TemplateError {
            column: pos + 1,
            message: message.into(),
            template: self.source.to_owned(),
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    /// Items until the end of the context: end of input (top), `]` (optional), `,`/`}` (argument).
    /// The terminator is left for the caller.
    fn sequence(&mut self, ctx: Context) -> Result<Vec<Node>, TemplateError> {
        let mut nodes = Vec::new();
        let mut text = String::new();
        while let Some(c) = self.peek() {
            match (c, ctx) {
                (']', Context::Optional) | (',' | '}', Context::Argument) => break,
                (']', _) => return Err(self.error(self.pos, "`]` without a matching `[`")),
                _ => {}
            }
            let start = self.pos;
            let node = match c {
                '$' => self.dollar()?,
                '[' => {
                    self.pos += 1;
                    let inner = self.sequence(Context::Optional)?;
                    if self.peek() != Some(']') {
                        return Err(self.error(start, "`[` is never closed by `]`"));
                    }
                    self.pos += 1;
                    Some(Node::Optional(inner))
                }
                '%' => self.call()?,
                _ => None,
            };
            match node {
                Some(Node::Text(t)) => text.push_str(&t),
                Some(node) => {
                    if !text.is_empty() {
                        nodes.push(Node::Text(std::mem::take(&mut text)));
                    }
                    nodes.push(node);
                }
                None => {
                    text.push(c);
                    self.pos += 1;
                }
            }
        }
        if !text.is_empty() {
            nodes.push(Node::Text(text));
        }
        Ok(nodes)
    }

    fn ident(&mut self) -> String {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            self.pos += 1;
        }
        self.chars[start..self.pos].iter().collect()
    }

    fn field(&self, name: &str, at: usize) -> Result<&'static str, TemplateError> {
        FIELDS
            .iter()
            .find(|f| f.eq_ignore_ascii_case(name))
            .copied()
            .ok_or_else(|| {
                self.error(
                    at,
                    format!("unknown field `{name}` (known: {})", FIELDS.join(", ")),
                )
            })
    }

    fn dollar(&mut self) -> Result<Option<Node>, TemplateError> {
        let start = self.pos;
        self.pos += 1;
        match self.peek() {
            Some(c @ ('$' | '%' | '[' | ']' | ',' | '}')) => {
                self.pos += 1;
                Ok(Some(Node::Text(c.to_string())))
            }
            Some('{') => {
                self.pos += 1;
                let mut alts = Vec::new();
                loop {
                    self.skip_spaces();
                    let at = self.pos;
                    match self.peek() {
                        Some('"') => {
                            self.pos += 1;
                            let lit_start = self.pos;
                            while self.peek().is_some_and(|c| c != '"') {
                                self.pos += 1;
                            }
                            if self.peek().is_none() {
                                return Err(self.error(at, "string literal is never closed"));
                            }
                            alts.push(Alt::Literal(
                                self.chars[lit_start..self.pos].iter().collect(),
                            ));
                            self.pos += 1;
                        }
                        _ => {
                            let name = self.ident();
                            if name.is_empty() {
                                return Err(self.error(at, "expected a field name or \"text\""));
                            }
                            alts.push(Alt::Field(self.field(&name, at)?));
                        }
                    }
                    self.skip_spaces();
                    match self.peek() {
                        Some('|') => self.pos += 1,
                        Some('}') => {
                            self.pos += 1;
                            return Ok(Some(Node::Field(alts)));
                        }
                        _ => return Err(self.error(self.pos, "expected `|` or `}` in `${...}`")),
                    }
                }
            }
            _ => {
                let name = self.ident();
                if name.is_empty() {
                    return Err(self.error(
                        start,
                        "`$` must be followed by a field name, `{`, or be escaped as `$$`",
                    ));
                }
                Ok(Some(Node::Field(vec![Alt::Field(
                    self.field(&name, start + 1)?,
                )])))
            }
        }
    }

    fn skip_spaces(&mut self) {
        while self.peek() == Some(' ') {
            self.pos += 1;
        }
    }

    /// `%name{a,b}`; a `%` not followed by `name{` is literal text.
    fn call(&mut self) -> Result<Option<Node>, TemplateError> {
        let start = self.pos;
        self.pos += 1;
        let name = self.ident();
        if name.is_empty() || self.peek() != Some('{') {
            self.pos = start;
            return Ok(None);
        }
        let func = Func::by_name(&name).ok_or_else(|| {
            self.error(
                start,
                format!(
                    "unknown function `%{name}` (known: {})",
                    Func::NAMES.join(", ")
                ),
            )
        })?;
        self.pos += 1;
        let mut args = vec![self.sequence(Context::Argument)?];
        loop {
            match self.peek() {
                Some(',') => {
                    self.pos += 1;
                    args.push(self.sequence(Context::Argument)?);
                }
                Some('}') => {
                    self.pos += 1;
                    break;
                }
                _ => return Err(self.error(start, format!("`%{name}{{` is never closed by `}}`"))),
            }
        }
        let (min, max) = func.arity();
        if args.len() < min || args.len() > max {
            return Err(self.error(
                start,
                format!(
                    "`%{name}` takes {} argument(s), got {}",
                    if min == max {
                        min.to_string()
                    } else {
                        format!("{min} to {max}")
                    },
                    args.len()
                ),
            ));
        }
        Ok(Some(Node::Call(func, args)))
    }
}
