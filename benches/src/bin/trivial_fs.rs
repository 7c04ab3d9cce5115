//! The floor: a trivial fuser filesystem answering from a fixed in-memory table, with the same
//! tree shape, thread count and TTL handling as `musicfs mount` on a synthetic DB. Whatever
//! musicfs costs above this is the price of SQLite, caches and our code.
//!
//! Tree: `Artist NNNNNNN/Album 000 (YEAR)/NN - Track N of Album 000.flac`, `--artists` at the
//! root, 10 tracks each; every file reads `--file-size` bytes of memory.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use clap::Parser;
use fuser::{
    Config, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    LockOwner, MountOption, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyEntry, ReplyOpen,
    Request,
};

#[derive(Parser)]
struct Args {
    mountpoint: PathBuf,
    #[arg(long, default_value_t = 10_000)]
    artists: u64,
    #[arg(long, default_value_t = 4_000_000)]
    file_size: u64,
    /// Kernel entry/attr TTL in seconds.
    #[arg(long, default_value_t = 0.0)]
    ttl: f64,
    #[arg(long, default_value_t = 4)]
    threads: usize,
}

struct Node {
    parent: u64,
    name: String,
    attr: FileAttr,
    children: Vec<u64>,
}

struct TrivialFs {
    nodes: Vec<Node>, // index = inode - 1
    by_name: HashMap<(u64, String), u64>,
    data: Vec<u8>,
    ttl: Duration,
}

fn attr(ino: u64, kind: FileType, size: u64) -> FileAttr {
    FileAttr {
        ino: INodeNo(ino),
        size,
        blocks: size.div_ceil(512),
        atime: UNIX_EPOCH,
        mtime: UNIX_EPOCH,
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
        blksize: 128 * 1024,
    }
}

impl TrivialFs {
    fn new(artists: u64, file_size: u64, ttl: Duration) -> TrivialFs {
        let mut fs = TrivialFs {
            nodes: Vec::new(),
            by_name: HashMap::new(),
            data: vec![7u8; file_size as usize],
            ttl,
        };
        fs.add(1, "", FileType::Directory, 0);
        for a in 0..artists {
            let artist = fs.add(1, &format!("Artist {a:07}"), FileType::Directory, 0);
            let album = fs.add(
                artist,
                &format!("Album 000 ({})", 1960 + a % 65),
                FileType::Directory,
                0,
            );
            for t in 1..=10 {
                fs.add(
                    album,
                    &format!("{t:02} - Track {t} of Album 000.flac"),
                    FileType::RegularFile,
                    file_size,
                );
            }
        }
        fs
    }

    fn add(&mut self, parent: u64, name: &str, kind: FileType, size: u64) -> u64 {
        let ino = self.nodes.len() as u64 + 1;
        self.nodes.push(Node {
            parent,
            name: name.to_owned(),
            attr: attr(ino, kind, size),
            children: Vec::new(),
        });
        if ino != 1 {
            self.nodes[parent as usize - 1].children.push(ino);
            self.by_name.insert((parent, name.to_owned()), ino);
        }
        ino
    }

    fn node(&self, ino: INodeNo) -> Option<&Node> {
        self.nodes.get((ino.0 as usize).wrapping_sub(1))
    }
}

impl Filesystem for TrivialFs {
    /// The same request sizes as musicfs, so read throughput compares like with like.
    fn init(&mut self, _req: &Request, config: &mut fuser::KernelConfig) -> std::io::Result<()> {
        let _ = config.set_max_write(1 << 20);
        let _ = config.set_max_readahead(1 << 20);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let key = (parent.0, name.to_string_lossy().into_owned());
        match self.by_name.get(&key) {
            Some(&ino) => reply.entry(&self.ttl, &self.nodes[ino as usize - 1].attr, Generation(0)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.node(ino) {
            Some(n) => reply.attr(&self.ttl, &n.attr),
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
        let Some(node) = self.node(ino) else {
            return reply.error(Errno::ENOENT);
        };
        let mut entries = vec![
            (ino.0, FileType::Directory, "."),
            (node.parent.max(1), FileType::Directory, ".."),
        ];
        entries.extend(node.children.iter().map(|&c| {
            let n = &self.nodes[c as usize - 1];
            (c, n.attr.kind, n.name.as_str())
        }));
        for (i, (ino, kind, name)) in entries.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(ino), i as u64 + 1, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn open(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        reply.opened(FileHandle(0), FopenFlags::FOPEN_KEEP_CACHE);
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let start = (offset as usize).min(self.data.len());
        let end = (start + size as usize).min(self.data.len());
        reply.data(&self.data[start..end]);
    }
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let fs = TrivialFs::new(
        args.artists,
        args.file_size,
        Duration::from_secs_f64(args.ttl),
    );
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName("trivial".into()),
        MountOption::RO,
        MountOption::DefaultPermissions,
    ];
    config.n_threads = Some(args.threads);
    config.clone_fd = true;
    let session = fuser::Session::new(fs, &args.mountpoint, &config)?.spawn()?;
    // Same readahead as musicfs mounts get (see musicfs-fs mount.rs).
    {
        use std::os::unix::fs::MetadataExt;
        let dev = std::fs::metadata(&args.mountpoint)?.dev();
        let _ = std::fs::write(
            format!(
                "/sys/class/bdi/{}:{}/read_ahead_kb",
                libc::major(dev),
                libc::minor(dev)
            ),
            "1024",
        );
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    while !stop.load(Ordering::Relaxed) && !session.guard.is_finished() {
        std::thread::sleep(Duration::from_millis(50));
    }
    session.umount_and_join()
}
