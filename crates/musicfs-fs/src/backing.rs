//! Opening backing files so that nothing outside the music folders is ever served.
//!
//! A file is opened by its path *relative to its origin root*, resolved by the kernel beneath
//! that root (`openat2` with `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`): a `..` or an absolute
//! symlink cannot climb out, whatever the DB row says (edited with sqlite3, or stale after a
//! symlink was swapped in since the scan). A symlink that leaves its own root but lands in
//! another music folder (albums linked between disks) is followed, and that open is again
//! resolved beneath the root it lands in. Only when the scan was told to let external
//! symlinks in (`--follow-external-symlinks`) does the mount follow them anywhere.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use musicfs_origin::local::{open_root, openat2_beneath};

/// Why a backing file was not opened.
#[derive(Debug)]
pub(crate) enum OpenError {
    Io(io::Error),
    /// The path resolves outside every music folder: (resolved target).
    Outside(PathBuf),
}

impl From<io::Error> for OpenError {
    fn from(err: io::Error) -> OpenError {
        OpenError::Io(err)
    }
}

/// Whether `rel` stays beneath its root by its letters alone: relative, no `..` component.
fn lexically_beneath(rel: &[u8]) -> bool {
    !rel.starts_with(b"/") && !rel.split(|&b| b == b'/').any(|c| c == b"..")
}

/// Opens `root/rel` read-only, never outside the music folders. `outside_policy` is asked only
/// when the path leaves `root`: every music folder's root, and whether symlinks may lead
/// anywhere (only ever symlinks: a row whose path itself climbs out is refused regardless).
pub(crate) fn open_beneath(
    root: &[u8],
    rel: &[u8],
    outside_policy: impl FnOnce() -> (Vec<Vec<u8>>, bool),
) -> Result<File, OpenError> {
    let dir = open_root(root)?;
    match openat2_beneath(dir.as_raw_fd(), rel) {
        Err(err) if err.raw_os_error() == Some(libc::EXDEV) => {}
        other => return Ok(other?),
    }
    // It leaves its root: where does it really lead?
    let full = Path::new(OsStr::from_bytes(root)).join(OsStr::from_bytes(rel));
    let target = std::fs::canonicalize(&full)?;
    let target_bytes = target.as_os_str().as_bytes();
    let (roots, follow_external) = outside_policy();
    let follow_external = follow_external && lexically_beneath(rel);
    let beneath = roots.into_iter().find_map(|r| {
        let inner = target_bytes
            .strip_prefix(r.as_slice())?
            .strip_prefix(b"/")?;
        Some((r.clone(), inner.to_vec()))
    });
    match beneath {
        Some((other_root, inner)) => {
            let dir = open_root(&other_root)?;
            Ok(openat2_beneath(dir.as_raw_fd(), &inner)?)
        }
        None if follow_external => Ok(File::open(&target)?),
        None => Err(OpenError::Outside(target)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn read(root: &Path, rel: &str, roots: &[&Path], follow: bool) -> Result<String, String> {
        let roots: Vec<Vec<u8>> = roots
            .iter()
            .map(|r| r.as_os_str().as_bytes().to_vec())
            .collect();
        match open_beneath(root.as_os_str().as_bytes(), rel.as_bytes(), || {
            (roots, follow)
        }) {
            Ok(f) => Ok(std::io::read_to_string(f).unwrap()),
            Err(OpenError::Outside(p)) => Err(format!("outside {}", p.display())),
            Err(OpenError::Io(e)) => Err(format!("io {e}")),
        }
    }

    #[test]
    fn never_leaves_the_music_folders() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b, secret) = (
            tmp.path().join("a"),
            tmp.path().join("b"),
            tmp.path().join("secret"),
        );
        for d in [&a, &b] {
            std::fs::create_dir_all(d.join("album")).unwrap();
        }
        std::fs::write(&secret, "secret").unwrap();
        std::fs::write(a.join("album/song.flac"), "a-song").unwrap();
        std::fs::write(b.join("album/other.flac"), "b-song").unwrap();
        symlink("../album/song.flac", a.join("album/rel.flac")).unwrap();
        symlink(a.join("album/song.flac"), a.join("abs.flac")).unwrap();
        symlink(b.join("album/other.flac"), a.join("cross.flac")).unwrap();
        symlink(&secret, a.join("evil.flac")).unwrap();
        symlink("../../secret", a.join("album/evil2.flac")).unwrap();
        let roots = [a.as_path(), b.as_path()];

        assert_eq!(
            read(&a, "album/song.flac", &roots, false).unwrap(),
            "a-song"
        );
        assert_eq!(read(&a, "album/rel.flac", &roots, false).unwrap(), "a-song");
        assert_eq!(read(&a, "abs.flac", &roots, false).unwrap(), "a-song");
        assert_eq!(read(&a, "cross.flac", &roots, false).unwrap(), "b-song");
        for evil in [
            "evil.flac",
            "album/evil2.flac",
            "../secret",
            "album/../../secret",
        ] {
            let got = read(&a, evil, &roots, false);
            assert!(got.is_err(), "{evil} was served: {got:?}");
            assert!(
                !format!("{got:?}").contains("\"secret\""),
                "{evil}: {got:?}"
            );
        }
        // A row naming an absolute path does not escape either.
        assert!(read(&a, secret.to_str().unwrap(), &roots, false).is_err());
        // Only by the user's explicit choice, and only through a symlink.
        assert_eq!(read(&a, "evil.flac", &roots, true).unwrap(), "secret");
        assert!(read(&a, "../secret", &roots, true).is_err());
        assert!(read(&a, secret.to_str().unwrap(), &roots, true).is_err());
    }
}
