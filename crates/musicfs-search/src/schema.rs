//! The index schema: which tags are searchable, and how text is cut into terms.
//!
//! Only `file_id` is stored: a hit is a file id, and everything shown about it (virtual path,
//! tags) is read from the DB, the source of truth. That keeps the index small (terms and
//! postings only) and never stale in what it displays.

use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::tokenizer::{
    AsciiFoldingFilter, LowerCaser, RemoveLongFilter, SimpleTokenizer, TextAnalyzer,
};

/// Bumped whenever fields or tokenization change: an index of another version is rebuilt.
pub const SEARCH_SCHEMA_VERSION: u32 = 2;

/// Name of the analyzer of every text field.
pub const TOKENIZER: &str = "musicfs";

/// Text fields, in the order a free word is matched against them (also the `field:` names).
pub const TEXT_FIELDS: &[&str] = &["title", "artist", "album", "albumartist", "genre", "path"];

#[derive(Debug, Clone, Copy)]
pub struct Fields {
    pub file_id: Field,
    pub title: Field,
    pub artist: Field,
    pub album: Field,
    pub albumartist: Field,
    pub genre: Field,
    /// The real path relative to its origin (folders and file name), not the virtual path:
    /// a layout change then re-indexes nothing, and `path:bootleg` finds real folders.
    pub path: Field,
    /// Every text field above in one (no positions): a free word is one term lookup here
    /// instead of one per field, which is what keeps common words fast at 10M tracks.
    pub any: Field,
    pub year: Field,
    /// Lowercased real extension and container (`flac`; `mp4` for `.m4a`), as single terms.
    pub format: Field,
}

impl Fields {
    pub fn text(&self, name: &str) -> Option<Field> {
        Some(match name {
            "title" => self.title,
            "artist" => self.artist,
            "album" => self.album,
            "albumartist" => self.albumartist,
            "genre" => self.genre,
            "path" => self.path,
            _ => return None,
        })
    }

    pub fn all_text(&self) -> [Field; 6] {
        [
            self.title,
            self.artist,
            self.album,
            self.albumartist,
            self.genre,
            self.path,
        ]
    }
}

pub fn build() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let text = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(TOKENIZER)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions),
    );
    let fields = Fields {
        file_id: b.add_u64_field("file_id", INDEXED | STORED | FAST),
        title: b.add_text_field("title", text.clone()),
        artist: b.add_text_field("artist", text.clone()),
        album: b.add_text_field("album", text.clone()),
        albumartist: b.add_text_field("albumartist", text.clone()),
        genre: b.add_text_field("genre", text.clone()),
        path: b.add_text_field("path", text),
        any: b.add_text_field(
            "any",
            TextOptions::default().set_indexing_options(
                TextFieldIndexing::default()
                    .set_tokenizer(TOKENIZER)
                    .set_index_option(IndexRecordOption::WithFreqs),
            ),
        ),
        year: b.add_i64_field("year", INDEXED | FAST),
        format: b.add_text_field("format", STRING),
    };
    (b.build(), fields)
}

/// Words split on anything not alphanumeric, lowercased, accents folded to ASCII: `bjork`
/// finds `Björk`, `sigur ros` finds `Sigur Rós`. Terms over 40 bytes are dropped.
pub fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .build()
}

/// The terms `text` yields under [`analyzer`].
pub fn terms(text: &str) -> Vec<String> {
    let mut analyzer = analyzer();
    let mut stream = analyzer.token_stream(text);
    let mut out = Vec::new();
    while stream.advance() {
        out.push(stream.token().text.clone());
    }
    out
}
