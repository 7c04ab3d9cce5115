use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use crate::ScanError;

/// An exclusive lock on `<db>.scan-lock`, held for the whole scan. The kernel drops it when
/// the process dies, so a killed scanner never leaves a stale lock behind.
pub(crate) struct ScanLock {
    _file: File,
}

pub(crate) fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".scan-lock");
    PathBuf::from(name)
}

impl ScanLock {
    pub(crate) fn acquire(db: &Path) -> Result<ScanLock, ScanError> {
        let path = lock_path(db);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| ScanError::LockFile {
                path: path.clone(),
                source,
            })?;
        match file.try_lock() {
            Ok(()) => Ok(ScanLock { _file: file }),
            Err(TryLockError::WouldBlock) => Err(ScanError::Locked { lock: path }),
            Err(TryLockError::Error(source)) => Err(ScanError::LockFile { path, source }),
        }
    }
}
