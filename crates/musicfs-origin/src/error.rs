use std::path::PathBuf;

/// Why an origin call failed. Every variant names the origin (its URL, never a secret) and,
/// where there is one, the path inside it.
#[derive(Debug, thiserror::Error)]
pub enum OriginError {
    #[error("{url}: not an origin URL: {reason}")]
    BadUrl { url: String, reason: String },
    /// The server could not be reached or stopped answering (refused, reset, timed out).
    #[error("{origin}: unreachable: {cause}")]
    Unreachable { origin: String, cause: String },
    /// The server answered but refused who we are.
    #[error("{origin}: authentication failed: {cause}")]
    Auth { origin: String, cause: String },
    /// OpenSSH's rule: a host whose key is unknown or changed is never talked to.
    #[error("{origin}: {message}")]
    HostKey { origin: String, message: String },
    #[error("{origin}: {path}: no such file or folder")]
    NotFound { origin: String, path: String },
    #[error("{origin}: {path}: {cause}")]
    Io {
        origin: String,
        path: String,
        cause: String,
        kind: std::io::ErrorKind,
    },
    #[error("{path}: {source}")]
    Local {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The server answered but could not serve now (a 5xx, a throttle, a connection reset
    /// mid-answer): the same request may well succeed later. A file or folder failing so is
    /// read again next time, never taken as broken or gone.
    #[error("{origin}: {path}: failed for now: {cause}")]
    Busy {
        origin: String,
        path: String,
        cause: String,
    },
    /// The file is another version than the one scanned (S3: its ETag no longer matches):
    /// its bytes are never served as the scanned file's.
    #[error("{origin}: {path}: changed since it was listed ({cause})")]
    Changed {
        origin: String,
        path: String,
        cause: String,
    },
}

impl OriginError {
    pub fn is_not_found(&self) -> bool {
        match self {
            OriginError::NotFound { .. } => true,
            OriginError::Local { source, .. } => source.kind() == std::io::ErrorKind::NotFound,
            _ => false,
        }
    }

    /// The origin as a whole is in trouble (not one file): a scan stops removing, a mount
    /// fails over.
    pub fn is_origin_down(&self) -> bool {
        matches!(
            self,
            OriginError::Unreachable { .. }
                | OriginError::Auth { .. }
                | OriginError::HostKey { .. }
        )
    }

    /// As an `io::Error`, for `Read`/`Seek` adapters and errno mapping.
    pub fn into_io(self) -> std::io::Error {
        let kind = match &self {
            OriginError::NotFound { .. } => std::io::ErrorKind::NotFound,
            OriginError::Unreachable { .. } => std::io::ErrorKind::TimedOut,
            OriginError::Auth { .. } | OriginError::HostKey { .. } => {
                std::io::ErrorKind::PermissionDenied
            }
            OriginError::Io { kind, .. } => *kind,
            OriginError::Local { source, .. } => source.kind(),
            // Never `Interrupted`: `read_exact` would retry it at once, forever.
            OriginError::Busy { .. } => std::io::ErrorKind::Other,
            _ => std::io::ErrorKind::Other,
        };
        std::io::Error::new(kind, self)
    }
}

pub type Result<T> = std::result::Result<T, OriginError>;
