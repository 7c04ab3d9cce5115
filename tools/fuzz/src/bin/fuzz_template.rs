//! libFuzzer target: template parsing and rendering. Run with tools/fuzz/run.sh template.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| musicfs_fuzz::template(data));
