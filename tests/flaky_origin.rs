//! A music folder on a misbehaving disk, for real: a small FUSE filesystem whose files can hang
//! on read (a dead network disk), fail with EIO (a bad sector), or vanish between listing and
//! opening. The scanner sees it through the kernel exactly as it would see sshfs or NFS.

use std::ffi::OsStr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use fuser::{
    Config, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    LockOwner, MountOption, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyEntry, ReplyOpen,
    Request,
};

/// How one file of the flaky folder behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behavior {
    /// Serves its bytes.
    Normal,
    /// Every read blocks until [`FlakyOrigin::heal`].
    Hang,
    /// Every read fails with EIO until healed.
    Eio,
    /// Listed and stat-able, but open fails with ENOENT (deleted meanwhile).
    Vanish,
    /// Every open blocks until healed (an NFS server gone: even `open` waits for it).
    HangOpen,
}

struct State {
    files: Vec<(String, Vec<u8>, Behavior)>,
}

struct FlakyFs {
    state: Arc<Mutex<State>>,
    healed: Arc<AtomicBool>,
}

const TTL: Duration = Duration::ZERO;

fn attr(ino: u64, kind: FileType, size: u64) -> FileAttr {
    FileAttr {
        ino: INodeNo(ino),
        size,
        blocks: size.div_ceil(512),
        atime: UNIX_EPOCH,
        mtime: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        ctime: UNIX_EPOCH,
        crtime: UNIX_EPOCH,
        kind,
        perm: if kind == FileType::Directory {
            0o555
        } else {
            0o444
        },
        nlink: 1,
        uid: 0,
        gid: 0,
        rdev: 0,
        flags: 0,
        blksize: 4096,
    }
}

impl FlakyFs {
    /// (bytes, behavior) of the file with inode `ino` (files are 2, 3, ...).
    fn file(&self, ino: INodeNo) -> Option<(Vec<u8>, Behavior)> {
        let state = self.state.lock().unwrap();
        let (_, bytes, behavior) = state.files.get((ino.0 as usize).checked_sub(2)?)?;
        let behavior = if self.healed.load(Ordering::SeqCst) {
            Behavior::Normal
        } else {
            *behavior
        };
        Some((bytes.clone(), behavior))
    }
}

impl Filesystem for FlakyFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let state = self.state.lock().unwrap();
        let found = state.files.iter().position(|(n, ..)| OsStr::new(n) == name);
        match (parent.0, found) {
            (1, Some(i)) => reply.entry(
                &TTL,
                &attr(
                    i as u64 + 2,
                    FileType::RegularFile,
                    state.files[i].1.len() as u64,
                ),
                Generation(0),
            ),
            _ => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        if ino.0 == 1 {
            return reply.attr(&TTL, &attr(1, FileType::Directory, 0));
        }
        match self.file(ino) {
            Some((bytes, _)) => reply.attr(
                &TTL,
                &attr(ino.0, FileType::RegularFile, bytes.len() as u64),
            ),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        if ino.0 != 1 {
            return reply.error(Errno::ENOTDIR);
        }
        let state = self.state.lock().unwrap();
        let mut entries = vec![
            (1, FileType::Directory, ".".to_owned()),
            (1, FileType::Directory, "..".to_owned()),
        ];
        for (i, (name, ..)) in state.files.iter().enumerate() {
            entries.push((i as u64 + 2, FileType::RegularFile, name.clone()));
        }
        for (i, (ino, kind, name)) in entries.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(ino), i as u64 + 1, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        if let Some((_, Behavior::HangOpen)) = self.file(ino) {
            while !self.healed.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        match self.file(ino) {
            Some((_, Behavior::Vanish)) | None => reply.error(Errno::ENOENT),
            // Direct I/O: every read reaches us, none is answered from the page cache.
            Some(_) => reply.opened(FileHandle(0), FopenFlags::FOPEN_DIRECT_IO),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let Some((bytes, behavior)) = self.file(ino) else {
            return reply.error(Errno::ENOENT);
        };
        match behavior {
            Behavior::Eio => return reply.error(Errno::EIO),
            Behavior::Hang => {
                while !self.healed.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            _ => {}
        }
        let start = (offset as usize).min(bytes.len());
        let end = (start + size as usize).min(bytes.len());
        reply.data(&bytes[start..end]);
    }
}

/// A mounted flaky folder; unmounted (after healing, so no request stays blocked) on drop.
pub struct FlakyOrigin {
    state: Arc<Mutex<State>>,
    healed: Arc<AtomicBool>,
    session: Option<fuser::BackgroundSession>,
    mountpoint: std::path::PathBuf,
}

impl FlakyOrigin {
    /// Mounts `files` (name, bytes, behavior) as the only folder at `mountpoint`.
    pub fn mount(mountpoint: &Path, files: Vec<(String, Vec<u8>, Behavior)>) -> FlakyOrigin {
        let healed = Arc::new(AtomicBool::new(false));
        let state = Arc::new(Mutex::new(State { files }));
        let fs = FlakyFs {
            state: state.clone(),
            healed: healed.clone(),
        };
        let mut config = Config::default();
        config.mount_options = vec![MountOption::FSName("flaky".into()), MountOption::RO];
        // Enough workers that hung requests never starve the ones a test checks.
        config.n_threads = Some(40);
        let session = fuser::Session::new(fs, mountpoint, &config)
            .unwrap()
            .spawn()
            .unwrap();
        FlakyOrigin {
            state,
            healed,
            session: Some(session),
            mountpoint: mountpoint.to_owned(),
        }
    }

    /// From now on, file `name` behaves like this (until healed).
    pub fn set_behavior(&self, name: &str, behavior: Behavior) {
        let mut state = self.state.lock().unwrap();
        let file = state.files.iter_mut().find(|f| f.0 == name).unwrap();
        file.2 = behavior;
    }

    /// From now on every file behaves normally, and blocked reads complete.
    pub fn heal(&self) {
        self.healed.store(true, Ordering::SeqCst);
    }
}

impl Drop for FlakyOrigin {
    /// The server lives in the test process: if it stopped while the mount stayed, any later
    /// access (even removing the temp dir) would wait forever on it. So: heal (blocked reads
    /// finish), let open files close, unmount, and detach lazily if that failed.
    fn drop(&mut self) {
        self.heal();
        std::thread::sleep(Duration::from_millis(100));
        if let Some(s) = self.session.take() {
            let _ = s.umount_and_join();
        }
        let still = std::fs::read_to_string("/proc/self/mounts").is_ok_and(|m| {
            m.lines()
                .any(|l| l.split(' ').nth(1) == self.mountpoint.to_str())
        });
        if still {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.mountpoint)
                .status();
        }
    }
}
