//! Real audio files for tests and benchmarks, written from scratch: minimal but spec-valid
//! containers (no encoder needed) tagged through lofty, so the scanner reads them exactly as it
//! reads a user's files.

pub mod audio;
pub mod library;
pub mod proxy;
mod rng;
pub mod servers;
pub mod synthetic;
pub mod words;

pub use audio::{Format, pad_audio, write_hostile_opus, write_track};
pub use library::{GeneratedFile, generate_library, generate_library_with};
pub use rng::Rng;
