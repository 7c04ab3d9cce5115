//! The plan against a reference: thousands of random re-tags of every layout, each assembled
//! from the old version and what the plan fetched, compared byte for byte with the new file.

use std::cell::Cell;

use musicfs_container::synth::{self, LAYOUTS, Layout, Tags};

use super::{OldSource, Plan, plan};

impl OldSource for &[u8] {
    fn raw(&mut self, offset: u64, len: usize) -> Option<Vec<u8>> {
        let start = (offset as usize).min(self.len());
        Some(self[start..(start + len).min(self.len())].to_vec())
    }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
    fn tags(&mut self) -> Tags {
        let title_len = 1 + self.below(300) as usize;
        Tags {
            title: self.bytes(title_len),
            cover: match self.below(3) {
                0 => 0,
                1 => self.below(4096) as usize,
                _ => self.below(200_000) as usize,
            },
            padding: match self.below(3) {
                0 => 0,
                _ => self.below(8192) as usize,
            },
        }
    }
}

/// Plans `new` from `old` and assembles it; the plan and the bytes fetched.
fn assemble(old: &[u8], new: &[u8]) -> (Option<Vec<u8>>, u64) {
    let fetched = Cell::new(0u64);
    let fetch = |offset: u64, len: usize| {
        let start = (offset as usize).min(new.len());
        let got = new[start..(start + len).min(new.len())].to_vec();
        fetched.set(fetched.get() + got.len() as u64);
        Ok(got)
    };
    let mut source = old;
    let planned: Option<Plan> =
        plan(&mut source, old.len() as u64, &fetch, new.len() as u64).unwrap();
    let Some(planned) = planned else {
        return (None, fetched.get());
    };
    assert_eq!(
        planned.fetched,
        fetched.get(),
        "the plan counts what it fetched"
    );
    let mut out = Vec::new();
    assert!(planned.for_each_byte_run(&mut source, |b| out.extend_from_slice(b)));
    (Some(out), fetched.get())
}

#[test]
fn random_retags_of_every_layout_assemble_to_the_new_file() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut planned = [0u32; LAYOUTS.len()];
    for case in 0..3000 {
        let layout = LAYOUTS[case % LAYOUTS.len()];
        let audio_len = match rng.below(10) {
            0 => 2 + rng.below(2048),
            9 => 1_000_000 + rng.below(2_000_000),
            _ => 4096 + rng.below(300_000),
        } as usize;
        let audio = rng.bytes(audio_len);
        let before = rng.tags();
        let mut after = rng.tags();
        if rng.below(4) == 0 {
            // The tagger fits the change into the padding: the file keeps its size.
            let grown = after.title.len() + after.cover;
            let had = before.title.len() + before.cover + before.padding;
            after.padding = had.saturating_sub(grown);
        }
        let (old, _) = synth::file(layout, &audio, &before);
        let (new, payload) = synth::file(layout, &audio, &after);
        let (got, fetched) = assemble(&old, &new);
        let outside = new.len() as u64 - (payload.end - payload.start);
        let case =
            format!("case {case}: {layout:?}, {audio_len} B of audio, {before:?} -> {after:?}");
        if let Some(got) = got {
            assert!(got == new, "{case}: wrong bytes");
            planned[case_index(layout)] += 1;
            // Outside the payload, the head's overshoot, the parser's reads elsewhere (at
            // most 4 KiB each) and the probes.
            assert!(
                fetched <= outside + (32 << 10) + 4 * 4096 + 10 * 4096,
                "{case}: fetched {fetched} for {outside} outside the payload"
            );
        } else {
            // Only payloads too small to hold a frame sync may be refused.
            assert!(audio_len < 4096, "{case}: no plan");
        }
    }
    for (k, n) in planned.iter().enumerate() {
        assert!(*n > 250, "{:?}: only {n} of its cases planned", LAYOUTS[k]);
    }
}

fn case_index(layout: Layout) -> usize {
    LAYOUTS.iter().position(|&l| l == layout).unwrap()
}

#[test]
fn other_audio_of_the_same_length_is_never_reused() {
    // A re-rip or a re-encode: the payload has the length of the old one, other bytes.
    let mut rng = Rng(77);
    for case in 0..400 {
        let layout = LAYOUTS[case % LAYOUTS.len()];
        let len = 20_000 + rng.below(500_000) as usize;
        let tags = rng.tags();
        let (old, _) = synth::file(layout, &rng.bytes(len), &tags);
        let (new, _) = synth::file(layout, &rng.bytes(len), &rng.tags());
        for f in [&old, &new] {
            let parsed = musicfs_container::payload(f.len() as u64, &mut &f[..]);
            assert!(parsed.is_some(), "case {case}: {layout:?} does not parse");
        }
        assert_eq!(assemble(&old, &new).0, None, "case {case}: {layout:?}");
    }
}

#[test]
fn a_change_at_either_end_of_the_payload_is_seen() {
    // The payload's first and last bytes are always compared: one byte changed there (an
    // encoder's header frame rewritten in place) gives no plan.
    let mut rng = Rng(5);
    for case in 0..400 {
        let layout = LAYOUTS[case % LAYOUTS.len()];
        let len = 50_000 + rng.below(400_000) as usize;
        let audio = rng.bytes(len);
        let tags = rng.tags();
        let (old, _) = synth::file(layout, &audio, &tags);
        let (mut new, payload) = synth::file(layout, &audio, &rng.tags());
        let span = (payload.end - payload.start).min(4096);
        let at = if case % 2 == 0 {
            payload.start + 2 + rng.below(span - 2)
        } else {
            payload.end - 1 - rng.below(span - 1)
        } as usize;
        new[at] ^= 0x5a;
        assert_eq!(
            assemble(&old, &new).0,
            None,
            "case {case}: {layout:?} at {at}"
        );
    }
}

#[test]
fn a_payload_that_grew_or_shrank_is_fetched_whole() {
    let mut rng = Rng(11);
    for layout in LAYOUTS {
        let audio = rng.bytes(100_000);
        let tags = rng.tags();
        let (old, _) = synth::file(layout, &audio, &tags);
        let (new, _) = synth::file(layout, &audio[..99_000], &tags);
        assert_eq!(assemble(&old, &new).0, None, "{layout:?}");
    }
}

#[test]
fn ogg_pages_numbered_with_a_gap_are_not_renumbered() {
    // A lost page in the old file (a radio rip): a tagger numbers the new pages one by one,
    // so no single shift makes the old pages the new ones.
    let mut rng = Rng(3);
    let audio = rng.bytes(60_000);
    let tags = rng.tags();
    let (mut old, payload) = synth::file(Layout::OggOpus, &audio, &tags);
    let (new, _) = synth::file(Layout::OggOpus, &audio, &rng.tags());
    // Bump the sequence number of every audio page after the third (CRCs are not checked
    // on the old side: the cache verified its bytes).
    let mut at = payload.start as usize;
    let mut k = 0;
    while at < old.len() {
        let page = musicfs_container::page_header(&old[at..]).unwrap();
        if k >= 3 {
            let seq = page.seq + 1;
            old[at + 18..at + 22].copy_from_slice(&seq.to_le_bytes());
        }
        at += page.len;
        k += 1;
    }
    assert_eq!(assemble(&old, &new).0, None);
}
