//! SFTP servers through libssh2 (`ssh2`), with OpenSSH's conventions: keys from `~/.ssh`, an
//! `identity_file` option or ssh-agent; host keys checked against `~/.ssh/known_hosts`, and an
//! unknown or changed host key refused with OpenSSH's message. A libssh2 session runs one call
//! at a time, so a small pool of sessions serves concurrent callers; a session that failed on
//! the network is dropped, never reused.

use std::io::{Read, Seek, SeekFrom};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use base64::Engine;
use ssh2::{CheckResult, ErrorCode, HashType, HostKeyType, KnownHostFileKind, Session, Sftp};

use crate::error::{OriginError, Result};
use crate::{Entry, Meta, Origin, OriginUrl};

/// libssh2's "no such file" SFTP status.
const FX_NO_SUCH_FILE: i32 = 2;
const FX_PERMISSION_DENIED: i32 = 3;

struct Conn {
    /// Kept alive for `sftp`, which borrows its channel.
    _session: Session,
    sftp: Sftp,
}

struct Pool {
    idle: Vec<Conn>,
    /// Sessions open or being opened, idle or in use.
    open: usize,
}

pub struct SftpOrigin {
    url: OriginUrl,
    display: String,
    user: String,
    host: String,
    port: u16,
    root: String,
    identity_file: Option<PathBuf>,
    known_hosts: PathBuf,
    timeout: Duration,
    max_sessions: usize,
    pool: Mutex<Pool>,
    freed: Condvar,
    /// Held while a session is being set up: sessions open one after another, never in a
    /// burst. sshd drops unauthenticated connections beyond `MaxStartups` (10 by default,
    /// at random from there), which a burst of 16 logins would hit, and read as "unreachable".
    connecting: Mutex<()>,
    fetched: AtomicU64,
}

impl std::fmt::Debug for SftpOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SftpOrigin({})", self.display)
    }
}

fn home() -> PathBuf {
    std::env::var_os("HOME").map_or_else(|| PathBuf::from("/"), PathBuf::from)
}

fn login_name() -> String {
    if let Some(user) = std::env::var("USER").ok().filter(|u| !u.is_empty()) {
        return user;
    }
    // SAFETY: getpwuid returns a pointer into static storage or NULL; copied out at once.
    unsafe {
        let pw = libc::getpwuid(libc::getuid());
        if !pw.is_null() && !(*pw).pw_name.is_null() {
            return std::ffi::CStr::from_ptr((*pw).pw_name)
                .to_string_lossy()
                .into_owned();
        }
    }
    "root".to_owned()
}

fn key_type_name(kind: HostKeyType) -> &'static str {
    match kind {
        HostKeyType::Rsa => "RSA",
        HostKeyType::Dss => "DSA",
        HostKeyType::Ecdsa256 | HostKeyType::Ecdsa384 | HostKeyType::Ecdsa521 => "ECDSA",
        HostKeyType::Ed25519 => "ED25519",
        HostKeyType::Unknown => "unknown",
    }
}

impl SftpOrigin {
    pub fn new(url: OriginUrl) -> Result<SftpOrigin> {
        let OriginUrl::Sftp {
            user,
            host,
            port,
            path,
            ..
        } = &url
        else {
            panic!("SftpOrigin needs an sftp:// URL");
        };
        let expand = |p: &str| match p.strip_prefix("~/") {
            Some(rest) => home().join(rest),
            None => PathBuf::from(p),
        };
        Ok(SftpOrigin {
            display: url.to_string(),
            user: user.clone().unwrap_or_else(login_name),
            host: host.clone(),
            port: *port,
            root: if path.is_empty() {
                "/".into()
            } else {
                path.clone()
            },
            identity_file: url.option("identity_file").map(expand),
            known_hosts: url
                .option("known_hosts")
                .map(expand)
                .unwrap_or_else(|| home().join(".ssh/known_hosts")),
            timeout: crate::timeout_option(&url, Duration::from_secs(30)),
            max_sessions: url
                .option("sessions")
                .and_then(|v| v.parse().ok())
                .unwrap_or(16usize)
                .max(1),
            pool: Mutex::new(Pool {
                idle: Vec::new(),
                open: 0,
            }),
            freed: Condvar::new(),
            connecting: Mutex::new(()),
            fetched: AtomicU64::new(0),
            url,
        })
    }

    fn unreachable(&self, cause: impl std::fmt::Display) -> OriginError {
        OriginError::Unreachable {
            origin: self.display.clone(),
            cause: cause.to_string(),
        }
    }

    /// [`SftpOrigin::connect`], never two at once (see `connecting`).
    fn connect_one_at_a_time(&self) -> Result<Conn> {
        let _one_at_a_time = self.connecting.lock().unwrap_or_else(|e| e.into_inner());
        self.connect()
    }

    /// A new authenticated session, its host key checked first.
    fn connect(&self) -> Result<Conn> {
        let addr = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| self.unreachable(e))?
            .next()
            .ok_or_else(|| self.unreachable("the host name has no address"))?;
        let tcp = TcpStream::connect_timeout(&addr, self.timeout.min(Duration::from_secs(10)))
            .map_err(|e| self.unreachable(e))?;
        let _ = tcp.set_nodelay(true);
        let mut session = Session::new().map_err(|e| self.unreachable(e))?;
        session.set_tcp_stream(tcp);
        session.set_timeout(self.timeout.as_millis().min(u32::MAX as u128) as u32);
        session.handshake().map_err(|e| self.unreachable(e))?;
        self.check_host_key(&session)?;
        self.authenticate(&session)?;
        let sftp = session.sftp().map_err(|e| self.unreachable(e))?;
        Ok(Conn {
            _session: session,
            sftp,
        })
    }

    fn check_host_key(&self, session: &Session) -> Result<()> {
        let refuse = |message: String| OriginError::HostKey {
            origin: self.display.clone(),
            message,
        };
        let (key, kind) = session
            .host_key()
            .ok_or_else(|| refuse("the server sent no host key".into()))?;
        let kind = key_type_name(kind);
        let fingerprint = session
            .host_key_hash(HashType::Sha256)
            .map(|h| base64::engine::general_purpose::STANDARD_NO_PAD.encode(h))
            .unwrap_or_default();
        let name = if self.port == 22 {
            self.host.clone()
        } else {
            format!("[{}]:{}", self.host, self.port)
        };
        let mut known = session.known_hosts().map_err(|e| self.unreachable(e))?;
        if self.known_hosts.exists() {
            known
                .read_file(&self.known_hosts, KnownHostFileKind::OpenSSH)
                .map_err(|e| refuse(format!("cannot read {}: {e}", self.known_hosts.display())))?;
        }
        match known.check_port(&self.host, self.port, key) {
            CheckResult::Match => Ok(()),
            CheckResult::NotFound => Err(refuse(format!(
                "No {kind} host key is known for {name} and you have requested strict checking \
                 (its fingerprint is SHA256:{fingerprint}; if it is right, add it to {} with \
                 `ssh-keyscan -p {} {} >> {}`). Host key verification failed.",
                self.known_hosts.display(),
                self.port,
                self.host,
                self.known_hosts.display()
            ))),
            CheckResult::Mismatch => Err(refuse(format!(
                "WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! IT IS POSSIBLE THAT SOMEONE IS \
                 DOING SOMETHING NASTY! The fingerprint for the {kind} key sent by the remote \
                 host {name} is SHA256:{fingerprint}, which does not match {}. Host key \
                 verification failed.",
                self.known_hosts.display()
            ))),
            CheckResult::Failure => Err(refuse(
                "the host key could not be checked. Host key verification failed.".into(),
            )),
        }
    }

    fn authenticate(&self, session: &Session) -> Result<()> {
        let mut tried = Vec::new();
        let keys: Vec<PathBuf> = match &self.identity_file {
            Some(file) => vec![file.clone()],
            None => ["id_ed25519", "id_ecdsa", "id_rsa"]
                .iter()
                .map(|k| home().join(".ssh").join(k))
                .filter(|p| p.exists())
                .collect(),
        };
        if self.identity_file.is_none() && std::env::var_os("SSH_AUTH_SOCK").is_some() {
            if let Ok(mut agent) = session.agent()
                && agent.connect().is_ok()
                && agent.list_identities().is_ok()
            {
                for identity in agent.identities().unwrap_or_default() {
                    if agent.userauth(&self.user, &identity).is_ok() {
                        return Ok(());
                    }
                }
            }
            tried.push("ssh-agent".to_owned());
        }
        for key in &keys {
            if session
                .userauth_pubkey_file(&self.user, None, key, None)
                .is_ok()
                && session.authenticated()
            {
                return Ok(());
            }
            tried.push(key.display().to_string());
        }
        Err(OriginError::Auth {
            origin: self.display.clone(),
            cause: if tried.is_empty() {
                format!(
                    "no key to offer for {} (none in ~/.ssh, no ssh-agent, no identity_file)",
                    self.user
                )
            } else {
                format!(
                    "{} refused every key offered ({})",
                    self.user,
                    tried.join(", ")
                )
            },
        })
    }

    /// Runs `call` on a pooled session. A session whose call failed on the network (not with
    /// an SFTP status such as "no such file") is closed rather than returned to the pool.
    fn with_sftp<T>(
        &self,
        rel: &[u8],
        call: impl FnOnce(&Sftp, &Path) -> std::result::Result<T, ssh2::Error>,
    ) -> Result<T> {
        let conn = {
            let mut pool = self.pool.lock().unwrap();
            loop {
                if let Some(conn) = pool.idle.pop() {
                    break Some(conn);
                }
                if pool.open < self.max_sessions {
                    pool.open += 1;
                    break None;
                }
                pool = self.freed.wait(pool).unwrap();
            }
        };
        let conn = match conn {
            Some(conn) => conn,
            None => match self.connect_one_at_a_time() {
                Ok(conn) => conn,
                Err(err) => {
                    self.pool.lock().unwrap().open -= 1;
                    self.freed.notify_one();
                    return Err(err);
                }
            },
        };
        let path = self.path(rel);
        let result = call(&conn.sftp, &path);
        let mut pool = self.pool.lock().unwrap();
        match &result {
            Err(err) if matches!(err.code(), ErrorCode::Session(_)) => pool.open -= 1,
            _ => pool.idle.push(conn),
        }
        drop(pool);
        self.freed.notify_one();
        result.map_err(|err| self.error(rel, err))
    }

    fn path(&self, rel: &[u8]) -> PathBuf {
        let rel = String::from_utf8_lossy(rel);
        if rel.is_empty() {
            PathBuf::from(&self.root)
        } else {
            Path::new(&self.root).join(rel.as_ref())
        }
    }

    fn error(&self, rel: &[u8], err: ssh2::Error) -> OriginError {
        let origin = self.display.clone();
        let path = String::from_utf8_lossy(rel).into_owned();
        match err.code() {
            ErrorCode::SFTP(FX_NO_SUCH_FILE) => OriginError::NotFound { origin, path },
            ErrorCode::SFTP(code) => OriginError::Io {
                origin,
                path,
                cause: err.message().to_owned(),
                kind: if code == FX_PERMISSION_DENIED {
                    std::io::ErrorKind::PermissionDenied
                } else {
                    std::io::ErrorKind::Other
                },
            },
            ErrorCode::Session(_) => OriginError::Unreachable {
                origin,
                cause: err.message().to_owned(),
            },
        }
    }
}

/// A read of an open file failed: the session is suspect (libssh2 turns its errors into
/// `io::Error` there), so it is treated as a network failure.
fn read_failed(err: std::io::Error) -> ssh2::Error {
    tracing::debug!("sftp read failed: {err}");
    ssh2::Error::new(ErrorCode::Session(-43), "reading from the server failed")
}

fn meta_of(stat: &ssh2::FileStat) -> Meta {
    Meta {
        size: stat.size.unwrap_or(0),
        mtime_ns: (stat.mtime.unwrap_or(0) as i64).saturating_mul(1_000_000_000),
        etag: None,
    }
}

impl Origin for SftpOrigin {
    fn url(&self) -> &OriginUrl {
        &self.url
    }

    fn list(&self, rel: &[u8]) -> Result<Vec<Entry>> {
        let listed = self.with_sftp(rel, |sftp, path| sftp.readdir(path))?;
        Ok(listed
            .into_iter()
            .filter_map(|(path, stat)| {
                let kind = stat.file_type();
                // Symlinks are not followed: no loops, and nothing outside the library.
                if !(kind.is_dir() || kind.is_file()) {
                    return None;
                }
                let name = path.file_name()?;
                Some(Entry {
                    name: std::os::unix::ffi::OsStrExt::as_bytes(name).to_vec(),
                    is_dir: kind.is_dir(),
                    meta: meta_of(&stat),
                })
            })
            .collect())
    }

    fn stat(&self, rel: &[u8]) -> Result<Meta> {
        let stat = self.with_sftp(rel, |sftp, path| sftp.stat(path))?;
        Ok(meta_of(&stat))
    }

    fn read_at(&self, rel: &[u8], offset: u64, len: usize) -> Result<Vec<u8>> {
        let data = self.with_sftp(rel, |sftp, path| {
            let mut file = sftp.open(path)?;
            file.seek(SeekFrom::Start(offset)).map_err(read_failed)?;
            let mut buf = vec![0; len];
            let mut filled = 0;
            while filled < len {
                match file.read(&mut buf[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(read_failed(e)),
                }
            }
            buf.truncate(filled);
            Ok(buf)
        })?;
        self.fetched.fetch_add(data.len() as u64, Ordering::Relaxed);
        Ok(data)
    }

    fn stat_root(&self) -> Result<bool> {
        let listed = self.with_sftp(b"", |sftp, path| sftp.readdir(path))?;
        Ok(!listed.is_empty())
    }

    fn bytes_fetched(&self) -> u64 {
        self.fetched.load(Ordering::Relaxed)
    }
}
