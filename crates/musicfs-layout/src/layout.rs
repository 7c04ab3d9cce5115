//! A library's layout: one or more views, each a template; rendering a file into placements.

use musicfs_tags::Track;
use xxhash_rust::xxh3::Xxh3;

use crate::parse::{Template, TemplateError};
use crate::render::render;
use crate::sanitize::sanitize_component;

/// `Artist/Album (Year)/[disc-]NN - Title.ext`, with the fallbacks users expect: albumartist
/// falls back to artist, then "Unknown Artist"; album to "Unknown Album"; title to file name.
pub const DEFAULT_TEMPLATE: &str = "${album_artist|\"Unknown Artist\"}/\
${album_name|\"Unknown Album\"}[ ($album_year)]/%if{$multidisc,[$disc-]}[$track - ]${title|filename}";

#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("view `{view}`: {source}")]
    Template {
        view: String,
        #[source]
        source: TemplateError,
    },
    #[error("a layout needs at least one template")]
    NoViews,
    #[error("with several templates each needs a name (NAME=TEMPLATE); `{template}` has none")]
    UnnamedView { template: String },
    #[error("two views are named `{name}`")]
    DuplicateView { name: String },
    #[error("view name `{name}` is not a safe directory name (it would be shown as `{safe}`)")]
    UnsafeViewName { name: String, safe: String },
}

/// One top-level view: a name (the top directory; empty when it is the only view and renders
/// at the root) and its template.
#[derive(Debug, Clone)]
pub struct View {
    pub name: String,
    pub template: Template,
}

/// The real file a track came from, as far as rendering needs it.
#[derive(Debug, Clone, Copy)]
pub struct FileName<'a> {
    /// File name without the extension (lossy UTF-8 for non-UTF-8 names).
    pub stem: &'a str,
    /// Real extension, lowercase ("flac", never a codec name).
    pub ext: &'a str,
}

/// Where one file appears in one view: safe path components, the last being the file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// Hash of (view, components): equal keys mean the same placement across rescans.
    pub key: i64,
    pub components: Vec<String>,
}

/// The library layout: every view, plus whether names collide case-insensitively.
#[derive(Debug, Clone)]
pub struct Layout {
    pub views: Vec<View>,
    pub case_insensitive: bool,
}

impl Layout {
    /// A layout from (name, template) pairs. A single pair renders at the root whatever its
    /// name; several need distinct, non-empty names.
    pub fn new(views: &[(String, String)], case_insensitive: bool) -> Result<Layout, LayoutError> {
        if views.is_empty() {
            return Err(LayoutError::NoViews);
        }
        let mut parsed = Vec::with_capacity(views.len());
        for (name, source) in views {
            let template = Template::parse(source).map_err(|source| LayoutError::Template {
                view: if name.is_empty() {
                    "default".into()
                } else {
                    name.clone()
                },
                source,
            })?;
            let name = if views.len() == 1 {
                String::new()
            } else {
                name.clone()
            };
            if views.len() > 1 {
                if name.is_empty() {
                    return Err(LayoutError::UnnamedView {
                        template: source.clone(),
                    });
                }
                let safe = sanitize_component(&name, "");
                if safe != name {
                    return Err(LayoutError::UnsafeViewName { name, safe });
                }
                if parsed.iter().any(|v: &View| v.name == name) {
                    return Err(LayoutError::DuplicateView { name });
                }
            }
            parsed.push(View { name, template });
        }
        Ok(Layout {
            views: parsed,
            case_insensitive,
        })
    }

    pub fn default_layout() -> Layout {
        Layout::new(&[(String::new(), DEFAULT_TEMPLATE.to_owned())], false)
            .expect("the default template parses")
    }

    /// Where `track` appears: one placement per view.
    pub fn render(&self, track: &Track, file: &FileName) -> Vec<Placement> {
        self.views
            .iter()
            .map(|view| {
                let text = render(&view.template.nodes, track, file);
                let parts: Vec<&str> = text.split('/').collect();
                let last = parts.len() - 1;
                let mut components = Vec::with_capacity(parts.len() + 1);
                if !view.name.is_empty() {
                    components.push(view.name.clone());
                }
                for (i, part) in parts.iter().enumerate() {
                    let ext = if i == last { file.ext } else { "" };
                    components.push(sanitize_component(part, ext));
                }
                Placement {
                    key: placement_key(&view.name, self.case_insensitive, &components),
                    components,
                }
            })
            .collect()
    }

    /// Canonical text of the layout, stored in the DB: when it differs from the stored one the
    /// scanner re-renders the tree from stored tags.
    pub fn fingerprint(&self) -> String {
        let mut out = format!("case_insensitive={}\n", self.case_insensitive);
        for view in &self.views {
            out.push_str(&format!("{}={}\n", view.name, view.template.source()));
        }
        out
    }
}

/// Includes the case mode: switching it re-places every entry (names fold differently).
fn placement_key(view: &str, case_insensitive: bool, components: &[String]) -> i64 {
    let mut h = Xxh3::new();
    h.update(view.as_bytes());
    h.update(&[case_insensitive as u8]);
    for c in components {
        h.update(b"\0");
        h.update(c.as_bytes());
    }
    h.digest() as i64
}
