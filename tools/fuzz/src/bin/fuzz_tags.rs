//! libFuzzer target: tag reading on arbitrary bytes. Run with tools/fuzz/run.sh tags.
#![no_main]

use libfuzzer_sys::fuzz_target;

thread_local! {
    static SCRATCH: std::path::PathBuf = {
        let dir = std::env::var_os("MUSICFS_FUZZ_SCRATCH")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        dir.join(format!("musicfs-fuzz-{}.bin", std::process::id()))
    };
}

fuzz_target!(
    init: {
        // lofty panics on some inputs and the scanner contains them (catch_unwind): a caught
        // panic is not a finding. libfuzzer-sys's hook would abort on it; keep it quiet instead.
        // A panic that escapes still aborts (libfuzzer-sys catches it at the top).
        std::panic::set_hook(Box::new(|_| {}));
    },
    |data: &[u8]| {
    SCRATCH.with(|p| {
        musicfs_fuzz::tags(data, p);
    });
    }
);
