//! SFTP servers through libssh2 (`ssh2`), with OpenSSH's conventions: keys from `~/.ssh`, an
//! `identity_file` option or ssh-agent; host keys checked against `~/.ssh/known_hosts`, and an
//! unknown or changed host key refused with OpenSSH's message (`login.rs`). A libssh2 session
//! runs one call at a time, so a pool of sessions serves concurrent callers (`session.rs`); a
//! session that failed on the network is dropped, never reused. A file open for several ranged
//! reads holds a session of its own (`file.rs`).

mod file;
mod login;
mod session;

use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use ssh2::{ErrorCode, Session};

use crate::error::{OriginError, Result};
use crate::{Entry, Meta, OpenFile, Origin, OriginUrl};

use file::{SftpFile, read_range};
use login::{home, login_name};
use session::{Conn, Pool, Sessions, Taken};

/// libssh2's "no such file" SFTP status.
const FX_NO_SUCH_FILE: i32 = 2;
const FX_PERMISSION_DENIED: i32 = 3;
/// Sessions per origin unless the URL says `sessions=N`: each runs one request at a time,
/// so this is how many round trips are in flight.
const DEFAULT_SESSIONS: usize = 64;

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
    sessions: Arc<Sessions>,
}

impl std::fmt::Debug for SftpOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SftpOrigin({})", self.display)
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
            sessions: Arc::new(Sessions {
                pool: Mutex::new(Pool {
                    idle: Vec::new(),
                    open: 0,
                    logging_in: 0,
                    hold_until: None,
                }),
                freed: Condvar::new(),
                max: url
                    .option("sessions")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(DEFAULT_SESSIONS)
                    .max(1),
                fetched: AtomicU64::new(0),
                idle_limit: session::IDLE_LIMIT,
            }),
            url,
        })
    }

    /// How long a pooled session may sit idle and still be reused (default 60 s): past it,
    /// it is closed and the next call logs in anew. For links that drop idle connections
    /// sooner, and for tests.
    pub fn with_idle_limit(mut self, limit: Duration) -> SftpOrigin {
        Arc::get_mut(&mut self.sessions)
            .expect("set before the origin is used")
            .idle_limit = limit;
        self
    }

    fn unreachable(&self, cause: impl std::fmt::Display) -> OriginError {
        OriginError::Unreachable {
            origin: self.display.clone(),
            cause: cause.to_string(),
        }
    }

    /// A session from the pool, or a new one when callers have been waiting.
    fn checkout(&self) -> Result<Conn> {
        loop {
            match self.sessions.take() {
                Taken::Idle(conn) => return Ok(conn),
                Taken::LogIn => {
                    let started = std::time::Instant::now();
                    let conn = self.connect();
                    let must_report = self.sessions.logged_in(conn.is_ok());
                    // A refusal (MaxStartups, a host's connection limit) comes at once; a
                    // login that waited out the timeout met a server gone silent, which the
                    // caller must hear of rather than wait on sessions as silent as it.
                    let refused = started.elapsed() < self.timeout / 2;
                    match conn {
                        Ok(conn) => return Ok(conn),
                        Err(err @ OriginError::Unreachable { .. }) if refused && !must_report => {
                            tracing::debug!("an extra SFTP session was refused: {err}");
                        }
                        Err(err) => return Err(err),
                    }
                }
            }
        }
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
        let socket = tcp.try_clone().map_err(|e| self.unreachable(e))?;
        session.set_tcp_stream(tcp);
        session.set_timeout(self.timeout.as_millis().min(u32::MAX as u128) as u32);
        session.handshake().map_err(|e| self.unreachable(e))?;
        self.check_host_key(&session)?;
        self.authenticate(&session)?;
        let sftp = session.sftp().map_err(|e| self.unreachable(e))?;
        Ok(Conn {
            session,
            sftp,
            closing: None,
            socket,
            idle_since: None,
        })
    }

    /// Runs `call` on a pooled session and returns the session with its result. A session
    /// whose call failed on the network (not with an SFTP status such as "no such file") is
    /// closed rather than returned to the pool.
    ///
    /// A session that sat in the pool may have died meanwhile (the server restarted, a NAT
    /// or firewall dropped the connection): when its call fails on the network at once, the
    /// other idle sessions are closed too and the call is made once more on a new login, so
    /// a dead session costs the caller one retry, not an error. A call that failed by
    /// waiting out the timeout is not retried: the server went silent, and the caller must
    /// hear of it within one timeout.
    fn on_session<T>(
        &self,
        rel: &[u8],
        mut call: impl FnMut(&mut Conn) -> std::result::Result<T, ssh2::Error>,
    ) -> Result<(Conn, T)> {
        let mut retried = false;
        loop {
            let mut conn = self.checkout()?;
            let pooled = conn.idle_since.is_some();
            let started = std::time::Instant::now();
            match call(&mut conn) {
                Ok(value) => return Ok((conn, value)),
                Err(err) => {
                    let broken = is_network(&err);
                    self.sessions.give_back(conn, broken);
                    if broken && pooled && !retried && started.elapsed() < self.timeout / 2 {
                        tracing::debug!(
                            "{}: a pooled SFTP session was dead ({}); logging in anew",
                            self.display,
                            err.message()
                        );
                        self.sessions.drop_idle();
                        retried = true;
                        continue;
                    }
                    return Err(self.error(rel, err));
                }
            }
        }
    }

    /// Runs `call` on a pooled session (see [`SftpOrigin::on_session`]), then gives it back.
    fn with_sftp<T>(
        &self,
        rel: &[u8],
        call: impl Fn(&mut Conn, &Path) -> std::result::Result<T, ssh2::Error>,
    ) -> Result<T> {
        let path = self.path(rel);
        let (conn, value) = self.on_session(rel, |conn| {
            let value = call(conn, &path)?;
            conn.finish_close()?;
            Ok(value)
        })?;
        self.sessions.give_back(conn, false);
        Ok(value)
    }

    /// The server path of `rel`, byte for byte: SFTP names are bytes, and a name that is not
    /// UTF-8 must reach the server as it was listed.
    fn path(&self, rel: &[u8]) -> PathBuf {
        let root = Path::new(&self.root);
        if rel.is_empty() {
            root.to_owned()
        } else {
            root.join(std::ffi::OsStr::from_bytes(rel))
        }
    }

    fn error(&self, rel: &[u8], err: ssh2::Error) -> OriginError {
        error(&self.display, rel, err)
    }
}

fn is_network(err: &ssh2::Error) -> bool {
    matches!(err.code(), ErrorCode::Session(_))
}

fn error(display: &str, rel: &[u8], err: ssh2::Error) -> OriginError {
    let origin = display.to_owned();
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
        let listed = self.with_sftp(rel, |conn, path| conn.list(path, false))?;
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
                    name: name.as_bytes().to_vec(),
                    is_dir: kind.is_dir(),
                    meta: meta_of(&stat),
                    refused: None,
                })
            })
            .collect())
    }

    fn stat(&self, rel: &[u8]) -> Result<Meta> {
        let stat = self.with_sftp(rel, |conn, path| conn.sftp.stat(path))?;
        Ok(meta_of(&stat))
    }

    fn read_at(&self, rel: &[u8], offset: u64, len: usize) -> Result<Vec<u8>> {
        let data = self.with_sftp(rel, |conn, path| {
            let mut file = conn.sftp.open(path)?;
            let data = read_range(&mut file, offset, len)?;
            conn.close_later(file)?;
            Ok(data)
        })?;
        self.sessions
            .fetched
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        Ok(data)
    }

    fn open(&self, rel: &[u8]) -> Result<Option<Box<dyn OpenFile>>> {
        let path = self.path(rel);
        let (conn, file) = self.on_session(rel, |conn| {
            let file = conn.sftp.open(&path)?;
            conn.finish_close()?;
            Ok(file)
        })?;
        Ok(Some(Box::new(SftpFile {
            sessions: self.sessions.clone(),
            display: self.display.clone(),
            rel: rel.to_vec(),
            file: Some(file),
            conn: Some(conn),
            broken: false,
        })))
    }

    fn stat_root(&self) -> Result<bool> {
        let listed = self.with_sftp(b"", |conn, path| conn.list(path, true))?;
        Ok(!listed.is_empty())
    }

    fn bytes_fetched(&self) -> u64 {
        self.sessions.fetched.load(Ordering::Relaxed)
    }
}
