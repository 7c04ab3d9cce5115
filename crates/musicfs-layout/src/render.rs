//! Rendering a parsed template against one file's values.

use musicfs_tags::Track;

use crate::fields;
use crate::functions::{Func, truthy};
use crate::layout::FileName;
use crate::parse::{Alt, Node};

/// Rendered text plus whether any field inside had no value (which drops an enclosing `[...]`).
struct Rendered {
    text: String,
    missing: bool,
}

pub(crate) fn render(nodes: &[Node], track: &Track, file: &FileName) -> String {
    render_seq(nodes, track, file).text
}

fn render_seq(nodes: &[Node], track: &Track, file: &FileName) -> Rendered {
    let mut out = Rendered {
        text: String::new(),
        missing: false,
    };
    for node in nodes {
        let r = render_node(node, track, file);
        out.text.push_str(&r.text);
        out.missing |= r.missing;
    }
    out
}

fn render_node(node: &Node, track: &Track, file: &FileName) -> Rendered {
    match node {
        Node::Text(t) => Rendered {
            text: t.clone(),
            missing: false,
        },
        Node::Field(alts) => {
            let value = alts.iter().find_map(|alt| match alt {
                Alt::Field(name) => fields::value(name, track, file),
                Alt::Literal(text) => Some(text.clone()),
            });
            Rendered {
                missing: value.is_none(),
                text: value.unwrap_or_default(),
            }
        }
        Node::Optional(inner) => {
            let r = render_seq(inner, track, file);
            Rendered {
                text: if r.missing { String::new() } else { r.text },
                missing: false,
            }
        }
        Node::Call(Func::If, args) => {
            let cond = render_seq(&args[0], track, file);
            if truthy(&cond.text) {
                render_seq(&args[1], track, file)
            } else if let Some(otherwise) = args.get(2) {
                render_seq(otherwise, track, file)
            } else {
                Rendered {
                    text: String::new(),
                    missing: false,
                }
            }
        }
        Node::Call(func, args) => {
            let mut missing = false;
            let values: Vec<String> = args
                .iter()
                .map(|arg| {
                    let r = render_seq(arg, track, file);
                    missing |= r.missing;
                    r.text
                })
                .collect();
            Rendered {
                text: func.apply(&values),
                missing,
            }
        }
    }
}
