//! The session pool: authenticated sessions, each running one SFTP request at a time, and
//! what a session does besides a request (a close sent without waiting, a listing).

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use ssh2::{ErrorCode, Session, Sftp};

pub(super) struct Conn {
    /// Kept alive for `sftp`, which borrows its channel.
    pub(super) session: Session,
    pub(super) sftp: Sftp,
    /// A handle whose close request is sent but whose answer is not read yet.
    pub(super) closing: Option<ssh2::File>,
    /// The session's socket, to cut it when the session is given up (see [`Conn::abandon`]).
    pub(super) socket: std::net::TcpStream,
    /// When it was last given back to the pool; `None` for a session fresh from its login.
    /// A session idle for long may have died unnoticed (a NAT forgot it, the server
    /// restarted): such a one is closed rather than reused, and its first failure retried.
    pub(super) idle_since: Option<Instant>,
}

/// libssh2's "would block" and "end of the listing" codes.
const LIBSSH2_ERROR_EAGAIN: i32 = -37;
const LIBSSH2_ERROR_FILE: i32 = -16;

impl Conn {
    /// Drops a session that failed on the network. Freeing a libssh2 session sends on it
    /// (channel and handle closes, a close still pending); to a server that stopped answering
    /// each send would wait out the session timeout. The socket is shut first, so they fail
    /// at once.
    pub(super) fn abandon(self) {
        let _ = self.socket.shutdown(std::net::Shutdown::Both);
        drop(self);
    }

    /// Sends the close request of `file` without waiting for its answer: the next request on
    /// this session goes out right behind it, and the answer is collected after that one's
    /// (see [`Conn::finish_close`]). A file costs open, read and close round trips; this
    /// takes the close off the critical path.
    pub(super) fn close_later(
        &mut self,
        mut file: ssh2::File,
    ) -> std::result::Result<(), ssh2::Error> {
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
    pub(super) fn finish_close(&mut self) -> std::result::Result<(), ssh2::Error> {
        match self.closing.take() {
            Some(mut file) => file.close(),
            None => Ok(()),
        }
    }

    /// The entries of the folder at `path` (without `.` and `..`); with `first_only`, stops
    /// at the first one.
    pub(super) fn list(
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

pub(super) struct Pool {
    pub(super) idle: Vec<Conn>,
    /// Sessions open, in use or idle.
    pub(super) open: usize,
    /// Sessions being set up.
    pub(super) logging_in: usize,
    /// After a refused login the pool stays as it is for a while.
    pub(super) hold_until: Option<Instant>,
}

/// The session pool, shared by the origin and its open files (which hold a session each).
///
/// It grows only while callers wait: a login costs ten round trips and real CPU on both ends
/// (sshd forks for each), so on a fast link a few sessions recycled at once beat many; on a
/// slow one every session is busy for whole round trips and the pool fills up to `max`.
pub(super) struct Sessions {
    pub(super) pool: Mutex<Pool>,
    pub(super) freed: Condvar,
    pub(super) max: usize,
    pub(super) fetched: AtomicU64,
    /// Sessions idle longer than this are closed instead of reused (see [`IDLE_LIMIT`]).
    pub(super) idle_limit: Duration,
}

/// How long a pooled session may sit idle and still be reused. NAT gateways and firewalls
/// forget idle TCP connections after a few minutes (some after one): a session reused past
/// that would send into the void and wait out the whole call timeout. A new login costs a
/// few round trips.
pub(super) const IDLE_LIMIT: Duration = Duration::from_secs(60);

/// Sessions set up at once. sshd drops unauthenticated connections beyond `MaxStartups`
/// (10 by default, at random from there): a burst of logins would be refused.
const CONCURRENT_LOGINS: usize = 6;
/// A caller that waited this long for a free session starts a new one.
const GROW_AFTER: Duration = Duration::from_millis(30);

/// How long the pool stops growing after a login was refused.
const HOLD_AFTER_REFUSAL: Duration = Duration::from_secs(2);

/// What [`Sessions::take`] found.
pub(super) enum Taken {
    Idle(Conn),
    /// A slot is reserved: the caller logs in (and calls [`Sessions::logged_in`]).
    LogIn,
}

impl Sessions {
    pub(super) fn take(&self) -> Taken {
        self.expire_idle();
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
                        && pool.hold_until.is_none_or(|t| t <= Instant::now())))
            {
                pool.logging_in += 1;
                return Taken::LogIn;
            }
            let started = Instant::now();
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
    pub(super) fn logged_in(&self, ok: bool) -> bool {
        let mut pool = self.pool.lock().unwrap();
        pool.logging_in -= 1;
        if ok {
            pool.open += 1;
        } else {
            pool.hold_until = Some(Instant::now() + HOLD_AFTER_REFUSAL);
        }
        let others = pool.open + pool.logging_in > 0;
        drop(pool);
        self.freed.notify_all();
        !ok && !others
    }

    /// Returns a session after a call; one that failed on the network is closed instead.
    pub(super) fn give_back(&self, mut conn: Conn, broken: bool) {
        if broken {
            // Outside the pool's lock: freeing a session is never instant.
            conn.abandon();
            self.pool.lock().unwrap().open -= 1;
        } else {
            conn.idle_since = Some(Instant::now());
            self.pool.lock().unwrap().idle.push(conn);
        }
        self.freed.notify_one();
    }

    /// Closes the idle sessions given back more than `idle_limit` ago. Sessions are given
    /// back in time order and taken from the end, so those are a prefix of `idle`.
    fn expire_idle(&self) {
        let expired: Vec<Conn> = {
            let mut pool = self.pool.lock().unwrap();
            let stale = pool
                .idle
                .iter()
                .take_while(|c| c.idle_since.is_some_and(|t| t.elapsed() >= self.idle_limit))
                .count();
            if stale == 0 {
                return;
            }
            pool.open -= stale;
            pool.idle.drain(..stale).collect()
        };
        tracing::debug!("closing {} SFTP sessions idle too long", expired.len());
        // Never a goodbye on a session that may be dead: it would wait out the timeout.
        for conn in expired {
            conn.abandon();
        }
        self.freed.notify_all();
    }

    /// Closes every idle session: one of them was found dead after sitting in the pool, and
    /// those idle as long (a server restart, a NAT that forgot them) are likely dead too.
    pub(super) fn drop_idle(&self) {
        let idle: Vec<Conn> = {
            let mut pool = self.pool.lock().unwrap();
            let idle = std::mem::take(&mut pool.idle);
            pool.open -= idle.len();
            idle
        };
        for conn in idle {
            conn.abandon();
        }
        self.freed.notify_all();
    }
}
