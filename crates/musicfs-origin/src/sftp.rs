//! SFTP servers through libssh2 (`ssh2`), with OpenSSH's conventions: keys from `~/.ssh`, an
//! `identity_file` option or ssh-agent; host keys checked against `~/.ssh/known_hosts`, and an
//! unknown or changed host key refused with OpenSSH's message. A libssh2 session runs one call
//! at a time, so a small pool of sessions serves concurrent callers; a session that failed on
//! the network is dropped, never reused.

use std::io::{Read, Seek, SeekFrom};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use base64::Engine;
use ssh2::{CheckResult, ErrorCode, HashType, HostKeyType, KnownHostFileKind, Session, Sftp};

use crate::error::{OriginError, Result};
use crate::{Entry, Meta, OpenFile, Origin, OriginUrl};

/// libssh2's "no such file" SFTP status.
const FX_NO_SUCH_FILE: i32 = 2;
const FX_PERMISSION_DENIED: i32 = 3;
/// Sessions per origin unless the URL says `sessions=N`: each runs one request at a time,
/// so this is how many round trips are in flight.
const DEFAULT_SESSIONS: usize = 64;

struct Conn {
    /// Kept alive for `sftp`, which borrows its channel.
    session: Session,
    sftp: Sftp,
    /// A handle whose close request is sent but whose answer is not read yet.
    closing: Option<ssh2::File>,
}

/// libssh2's "would block" and "end of the listing" codes.
const LIBSSH2_ERROR_EAGAIN: i32 = -37;
const LIBSSH2_ERROR_FILE: i32 = -16;

impl Conn {
    /// Sends the close request of `file` without waiting for its answer: the next request on
    /// this session goes out right behind it, and the answer is collected after that one's
    /// (see [`Conn::finish_close`]). A file costs open, read and close round trips; this
    /// takes the close off the critical path.
    fn close_later(&mut self, mut file: ssh2::File) -> std::result::Result<(), ssh2::Error> {
        self.finish_close()?;
        self.session.set_blocking(false);
        let sent = file.close();
        self.session.set_blocking(true);
        match sent {
            Err(err) if err.code() == ErrorCode::Session(LIBSSH2_ERROR_EAGAIN) => {
                self.closing = Some(file);
                Ok(())
            }
            other => other,
        }
    }

    /// Reads the answer to a close sent by [`Conn::close_later`] (blocking; by the time a
    /// later request was answered it has arrived).
    fn finish_close(&mut self) -> std::result::Result<(), ssh2::Error> {
        match self.closing.take() {
            Some(mut file) => file.close(),
            None => Ok(()),
        }
    }

    /// The entries of the folder at `path` (without `.` and `..`); with `first_only`, stops
    /// at the first one.
    fn list(
        &mut self,
        path: &Path,
        first_only: bool,
    ) -> std::result::Result<Vec<(PathBuf, ssh2::FileStat)>, ssh2::Error> {
        let mut dir = self.sftp.opendir(path)?;
        let mut entries = Vec::new();
        loop {
            match dir.readdir() {
                Ok((name, _)) if name == Path::new(".") || name == Path::new("..") => {}
                Ok((name, stat)) => {
                    entries.push((name, stat));
                    if first_only {
                        break;
                    }
                }
                Err(err) if err.code() == ErrorCode::Session(LIBSSH2_ERROR_FILE) => break,
                Err(err) => return Err(err),
            }
        }
        self.close_later(dir)?;
        Ok(entries)
    }
}

struct Pool {
    idle: Vec<Conn>,
    /// Sessions open, in use or idle.
    open: usize,
    /// Sessions being set up.
    logging_in: usize,
    /// After a refused login the pool stays as it is for a while.
    hold_until: Option<std::time::Instant>,
}

/// The session pool, shared by the origin and its open files (which hold a session each).
///
/// It grows only while callers wait: a login costs ten round trips and real CPU on both ends
/// (sshd forks for each), so on a fast link a few sessions recycled at once beat many; on a
/// slow one every session is busy for whole round trips and the pool fills up to `max`.
struct Sessions {
    pool: Mutex<Pool>,
    freed: Condvar,
    max: usize,
    fetched: AtomicU64,
}

/// Sessions set up at once. sshd drops unauthenticated connections beyond `MaxStartups`
/// (10 by default, at random from there): a burst of logins would be refused.
const CONCURRENT_LOGINS: usize = 6;
/// A caller that waited this long for a free session starts a new one.
const GROW_AFTER: Duration = Duration::from_millis(30);

/// How long the pool stops growing after a login was refused.
const HOLD_AFTER_REFUSAL: Duration = Duration::from_secs(2);

/// What [`Sessions::take`] found.
enum Taken {
    Idle(Conn),
    /// A slot is reserved: the caller logs in (and calls [`Sessions::logged_in`]).
    LogIn,
}

impl Sessions {
    fn take(&self) -> Taken {
        let mut pool = self.pool.lock().unwrap();
        let mut waited = Duration::ZERO;
        loop {
            if let Some(conn) = pool.idle.pop() {
                return Taken::Idle(conn);
            }
            let busy = pool.open + pool.logging_in;
            if busy < self.max
                && pool.logging_in < CONCURRENT_LOGINS
                && (busy == 0
                    || (waited >= GROW_AFTER
                        && pool
                            .hold_until
                            .is_none_or(|t| t <= std::time::Instant::now())))
            {
                pool.logging_in += 1;
                return Taken::LogIn;
            }
            let started = std::time::Instant::now();
            pool = self
                .freed
                .wait_timeout(
                    pool,
                    GROW_AFTER
                        .saturating_sub(waited)
                        .max(Duration::from_millis(1)),
                )
                .unwrap()
                .0;
            waited += started.elapsed();
        }
    }

    /// A login ended. Returns whether its failure must reach the caller: not while other
    /// sessions are open (a refused login, e.g. by `MaxStartups`, then only means the pool
    /// stops growing, and the caller waits for one of them).
    fn logged_in(&self, ok: bool) -> bool {
        let mut pool = self.pool.lock().unwrap();
        pool.logging_in -= 1;
        if ok {
            pool.open += 1;
        } else {
            pool.hold_until = Some(std::time::Instant::now() + HOLD_AFTER_REFUSAL);
        }
        let others = pool.open + pool.logging_in > 0;
        drop(pool);
        self.freed.notify_all();
        !ok && !others
    }

    /// Returns a session after a call; one that failed on the network is closed instead.
    fn give_back(&self, conn: Conn, broken: bool) {
        if broken {
            // Closing a session (and a close still pending on it) talks to a server that
            // may not answer: briefly, and outside the pool's lock.
            conn.session.set_timeout(1000);
            drop(conn);
            self.pool.lock().unwrap().open -= 1;
        } else {
            self.pool.lock().unwrap().idle.push(conn);
        }
        self.freed.notify_one();
    }
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
    sessions: Arc<Sessions>,
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
            }),
            url,
        })
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
                    let conn = self.connect();
                    let must_report = self.sessions.logged_in(conn.is_ok());
                    match conn {
                        Ok(conn) => return Ok(conn),
                        Err(err)
                            if must_report || !matches!(err, OriginError::Unreachable { .. }) =>
                        {
                            return Err(err);
                        }
                        Err(err) => tracing::debug!("an extra SFTP session was refused: {err}"),
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
        call: impl FnOnce(&mut Conn, &Path) -> std::result::Result<T, ssh2::Error>,
    ) -> Result<T> {
        let mut conn = self.checkout()?;
        let result = call(&mut conn, &self.path(rel)).and_then(|value| {
            conn.finish_close()?;
            Ok(value)
        });
        let broken = matches!(&result, Err(err) if is_network(err));
        self.sessions.give_back(conn, broken);
        result.map_err(|err| self.error(rel, err))
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

/// Reads up to `len` bytes at `offset` of an open file. libssh2 pipelines a read as requests
/// for four times the buffer it is given (read-ahead that would cross the wire and be thrown
/// away at close); a buffer a quarter of what is still wanted makes it ask for just that.
fn read_range(
    file: &mut ssh2::File,
    offset: u64,
    len: usize,
) -> std::result::Result<Vec<u8>, ssh2::Error> {
    file.seek(SeekFrom::Start(offset)).map_err(read_failed)?;
    let mut buf = vec![0; len];
    let mut filled = 0;
    while filled < len {
        let ask = ((len - filled) / 4).max(1);
        match file.read(&mut buf[filled..filled + ask]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(read_failed(e)),
        }
    }
    buf.truncate(filled);
    Ok(buf)
}

/// A file open on a session of its own, which returns to the pool when the file is dropped.
struct SftpFile {
    sessions: Arc<Sessions>,
    display: String,
    rel: Vec<u8>,
    /// Closed (or its close sent) before the session is given back.
    file: Option<ssh2::File>,
    conn: Option<Conn>,
    broken: bool,
}

impl OpenFile for SftpFile {
    fn read_at(&mut self, offset: u64, len: usize) -> Result<Vec<u8>> {
        let file = self.file.as_mut().expect("open until dropped");
        match read_range(file, offset, len) {
            Ok(data) => {
                self.sessions
                    .fetched
                    .fetch_add(data.len() as u64, Ordering::Relaxed);
                Ok(data)
            }
            Err(err) => {
                self.broken |= is_network(&err);
                Err(error(&self.display, &self.rel, err))
            }
        }
    }
}

impl Drop for SftpFile {
    fn drop(&mut self) {
        let (Some(file), Some(mut conn)) = (self.file.take(), self.conn.take()) else {
            return;
        };
        if self.broken {
            // The close request on a session that stopped answering would wait out the
            // whole session timeout for nothing (give_back drops the session briefly too).
            conn.session.set_timeout(1000);
            drop(file);
        } else if conn.close_later(file).is_err() {
            self.broken = true;
        }
        self.sessions.give_back(conn, self.broken);
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
        let mut conn = self.checkout()?;
        match conn
            .sftp
            .open(self.path(rel))
            .and_then(|file| conn.finish_close().map(|()| file))
        {
            Ok(file) => Ok(Some(Box::new(SftpFile {
                sessions: self.sessions.clone(),
                display: self.display.clone(),
                rel: rel.to_vec(),
                file: Some(file),
                conn: Some(conn),
                broken: false,
            }))),
            Err(err) => {
                self.sessions.give_back(conn, is_network(&err));
                Err(self.error(rel, err))
            }
        }
    }

    fn stat_root(&self) -> Result<bool> {
        let listed = self.with_sftp(b"", |conn, path| conn.list(path, true))?;
        Ok(!listed.is_empty())
    }

    fn bytes_fetched(&self) -> u64 {
        self.sessions.fetched.load(Ordering::Relaxed)
    }
}
