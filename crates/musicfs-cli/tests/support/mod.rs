//! Helpers shared by the tests of the `musicfs` binary.
#![allow(dead_code)] // each test file uses its own subset

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub fn musicfs() -> Command {
    Command::new(env!("CARGO_BIN_EXE_musicfs"))
}

pub fn is_mounted(mnt: &Path) -> bool {
    let mnt = std::fs::canonicalize(mnt).unwrap();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4) == mnt.to_str())
}

pub fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// The first file found walking down from `dir`, first entry first.
pub fn first_file(dir: &Path) -> PathBuf {
    let mut d = dir.to_owned();
    loop {
        let e = std::fs::read_dir(&d).unwrap().next().unwrap().unwrap();
        if e.file_type().unwrap().is_dir() {
            d = e.path();
        } else {
            return e.path();
        }
    }
}

/// A `musicfs mount` child process that cannot outlive its test: dropped (the test ended,
/// passed or failed), it is killed and its mountpoint lazily unmounted.
pub struct MountChild {
    pub child: std::process::Child,
    mountpoint: PathBuf,
}

impl MountChild {
    pub fn new(child: std::process::Child, mountpoint: &Path) -> MountChild {
        MountChild {
            child,
            mountpoint: mountpoint.to_owned(),
        }
    }
}

impl std::ops::Deref for MountChild {
    type Target = std::process::Child;
    fn deref(&self) -> &std::process::Child {
        &self.child
    }
}

impl std::ops::DerefMut for MountChild {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        &mut self.child
    }
}

impl Drop for MountChild {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if is_mounted(&self.mountpoint) {
            let _ = Command::new("umount")
                .arg("-l")
                .arg(&self.mountpoint)
                .status();
        }
    }
}
