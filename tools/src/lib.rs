//! Real audio files for tests and benchmarks, written from scratch: minimal but spec-valid
//! containers (no encoder needed) tagged through lofty, so the scanner reads them exactly as it
//! reads a user's files.

pub mod audio;
pub mod library;
pub mod proxy;
pub mod retag;
mod rng;
pub mod servers;
pub mod synthetic;
pub mod words;

pub use audio::{Format, pad_audio, write_hostile_opus, write_track};
pub use library::{GeneratedFile, generate_library, generate_library_with};
pub use rng::Rng;

/// A test's prerequisite is missing. On a developer's machine: a loud skip. In CI (`CI` set, as
/// `.ci/run` runs): a failure, since `.ci/run` provides every prerequisite and a skip there
/// would hide a test that no longer runs.
pub fn missing_prerequisite(what: &str) {
    if std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false") {
        panic!("prerequisite missing in CI: {what}");
    }
    eprintln!("\n*** SKIPPED: {what} ***\n");
}
