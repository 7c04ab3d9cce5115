//! Layout templates: how a file's tags become its path in the virtual tree.
//!
//! A template such as `$albumartist/$album[ ($year)]/$track - $title` is parsed once
//! ([`Template::parse`], errors carry the column), rendered per file ([`Layout::render`]) into
//! path components that are always safe names ([`sanitize`]): no `/`, NUL or control
//! characters, never empty, `.` or `..`, at most 255 bytes, Unicode NFC. Collisions inside one
//! directory are resolved by the DB writer with [`disambiguate`].

mod fields;
mod functions;
mod layout;
mod parse;
mod render;
mod sanitize;

pub use fields::FIELDS;
pub use layout::{DEFAULT_TEMPLATE, FileName, Layout, LayoutError, Placement, View};
pub use parse::{Template, TemplateError};
pub use sanitize::{MAX_NAME_BYTES, disambiguate, fold_case, sanitize_component};
