//! Tags and audio properties of one audio file, as plain data.
//!
//! `Track` is what every other crate sees of an audio file's contents: the scanner fills it from
//! lofty ([`read_track`]), the DB stores and loads it, the layout renders paths from it.

pub mod album;
mod formats;
#[cfg(feature = "read")]
mod read;
#[cfg(feature = "read")]
mod timed;
mod track;

pub use album::AlbumValues;
pub use formats::{AUDIO_EXTENSIONS, audio_extension};
#[cfg(feature = "read")]
pub use read::{TagError, read_track, read_track_from};
#[cfg(feature = "read")]
pub use timed::{MAX_STUCK, read_track_within, read_tracks_within, stuck_reads};
pub use track::{Track, parse_year};
