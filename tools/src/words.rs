//! Realistic-looking tag text for synthetic libraries: a fixed vocabulary of made-up words
//! whose use follows a Zipf-like law (a few very common words, a long tail of rare ones), as
//! words in real titles do. Search benchmarks need that: with "Track 1 of Album 000" every
//! query would match everything or nothing.

use crate::Rng;

/// Words in the vocabulary.
pub const VOCABULARY: usize = 20_000;

pub struct Words {
    words: Vec<String>,
}

const ONSETS: &[&str] = &[
    "b", "br", "c", "ch", "d", "dr", "f", "g", "gr", "h", "j", "k", "l", "m", "n", "p", "pr", "r",
    "s", "sh", "st", "t", "tr", "v", "w", "z", "",
];
const VOWELS: &[&str] = &["a", "e", "i", "o", "u", "ai", "ou", "é", "ö", "y"];
const CODAS: &[&str] = &["", "n", "r", "s", "l", "m", "nd", "st", "k", "x"];

impl Words {
    /// The same vocabulary for the same seed.
    pub fn new(seed: u64) -> Words {
        let mut rng = Rng::new(seed);
        let mut seen = std::collections::HashSet::new();
        let mut words = Vec::with_capacity(VOCABULARY);
        while words.len() < VOCABULARY {
            let syllables = 1 + rng.below(3);
            let mut w = String::new();
            for _ in 0..syllables {
                for part in [ONSETS, VOWELS, CODAS] {
                    let piece: &&str = rng.pick(part);
                    w.push_str(piece);
                }
            }
            if w.chars().count() >= 2 && seen.insert(w.clone()) {
                words.push(w);
            }
        }
        Words { words }
    }

    /// The word of rank `r` (0 is the most common).
    pub fn word(&self, r: usize) -> &str {
        &self.words[r % self.words.len()]
    }

    /// A word drawn with probability ∝ 1/rank (log-uniform rank).
    pub fn zipf(&self, rng: &mut Rng) -> &str {
        let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let rank = ((self.words.len() as f64).powf(u) as usize).saturating_sub(1);
        self.word(rank)
    }

    /// `n` Zipf words, the first capitalized, space-separated.
    pub fn phrase(&self, rng: &mut Rng, n: usize) -> String {
        let mut out = String::new();
        for i in 0..n {
            if i > 0 {
                out.push(' ');
            }
            let w = self.zipf(rng);
            let mut chars = w.chars();
            if let Some(first) = chars.next() {
                out.extend(first.to_uppercase());
                out.push_str(chars.as_str());
            }
        }
        out
    }
}
