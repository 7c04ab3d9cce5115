//! Shared helpers of the end-to-end tests.

use std::path::{Path, PathBuf};

/// The shared real-world corpus (`../shared/corpus` beside the checkout, or `$MUSICFS_CORPUS`).
/// `None`, with a loud message, when it is absent: tests that need it skip.
pub fn shared_corpus() -> Option<PathBuf> {
    let path = std::env::var_os("MUSICFS_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"));
    if path.is_dir() {
        Some(path)
    } else {
        eprintln!(
            "\n*** SKIPPED: no corpus at {} (set MUSICFS_CORPUS or put shared/ beside the \
             checkout) ***\n",
            path.display()
        );
        None
    }
}

/// Every regular file below `dir` (not following symlinks).
pub fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_file() {
                out.push(e.path());
            }
        }
    }
    out
}
