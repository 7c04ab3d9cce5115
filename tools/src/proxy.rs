//! A TCP fault proxy for tests and benchmarks: sits between a client and a server on loopback
//! and adds latency, throttles, swallows traffic (a black hole: connections stay open, nothing
//! arrives), resets connections, flips a byte, and counts bytes. `tc netem` is not available on
//! this kernel; this is the in-repo replacement.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

#[derive(Default)]
struct State {
    /// Added to each direction: the round trip grows by twice this.
    one_way_delay_us: AtomicU64,
    /// Bytes per second per direction and connection; 0: unlimited.
    rate: AtomicU64,
    blackhole: AtomicBool,
    /// Flip the server-to-client byte at this global offset (u64::MAX: never).
    corrupt_at: AtomicU64,
    down: AtomicU64,
    up: AtomicU64,
    /// Both sockets of every open connection, by connection number (for `reset_all`); a
    /// connection's are dropped once both directions have ended, so a long run does not
    /// run out of file descriptors.
    connections: Mutex<std::collections::HashMap<u64, [TcpStream; 2]>>,
    /// Client connections accepted so far.
    accepted: AtomicU64,
    closed: AtomicBool,
}

pub struct FaultProxy {
    pub port: u16,
    state: Arc<State>,
}

impl FaultProxy {
    /// Listens on 127.0.0.1 (a free port) and forwards to 127.0.0.1:`target`.
    pub fn start(target: u16) -> std::io::Result<FaultProxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let state = Arc::new(State::default());
        state.corrupt_at.store(u64::MAX, Ordering::Relaxed);
        let shared = state.clone();
        std::thread::Builder::new()
            .name("fault-proxy".into())
            .spawn(move || {
                for client in listener.incoming() {
                    if shared.closed.load(Ordering::Relaxed) {
                        break;
                    }
                    let client = match client {
                        Ok(client) => client,
                        Err(err) => {
                            // Loud: a proxy that stops forwarding silently hangs its clients.
                            eprintln!("fault proxy: accept failed: {err}");
                            std::thread::sleep(Duration::from_millis(10));
                            continue;
                        }
                    };
                    let id = shared.accepted.fetch_add(1, Ordering::Relaxed);
                    let server = match TcpStream::connect(("127.0.0.1", target)) {
                        Ok(server) => server,
                        Err(err) => {
                            eprintln!("fault proxy: cannot reach port {target}: {err}");
                            let _ = client.shutdown(Shutdown::Both);
                            continue;
                        }
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    match (client.try_clone(), server.try_clone()) {
                        (Ok(c), Ok(s)) => {
                            shared.connections.lock().unwrap().insert(id, [c, s]);
                        }
                        (Err(err), _) | (_, Err(err)) => {
                            eprintln!("fault proxy: dropping a connection: {err}");
                            let _ = client.shutdown(Shutdown::Both);
                            let _ = server.shutdown(Shutdown::Both);
                            continue;
                        }
                    }
                    let open = Arc::new(std::sync::atomic::AtomicU8::new(2));
                    pump(&shared, &client, &server, false, (id, open.clone()));
                    pump(&shared, &server, &client, true, (id, open));
                }
            })?;
        Ok(FaultProxy { port, state })
    }

    pub fn set_delay(&self, one_way: Duration) {
        self.state
            .one_way_delay_us
            .store(one_way.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn set_rate(&self, bytes_per_second: u64) {
        self.state.rate.store(bytes_per_second, Ordering::Relaxed);
    }

    pub fn set_blackhole(&self, on: bool) {
        self.state.blackhole.store(on, Ordering::Relaxed);
    }

    /// Resets every open connection (new ones are accepted).
    pub fn reset_all(&self) {
        for (_, pair) in self.state.connections.lock().unwrap().drain() {
            for conn in pair {
                let _ = conn.shutdown(Shutdown::Both);
            }
        }
    }

    /// Flips the server-to-client byte `after` bytes from now.
    pub fn corrupt_after(&self, after: u64) {
        let now = self.state.down.load(Ordering::Relaxed);
        self.state.corrupt_at.store(now + after, Ordering::Relaxed);
    }

    /// Client connections accepted so far (each SSH session is one).
    pub fn connections(&self) -> u64 {
        self.state.accepted.load(Ordering::Relaxed)
    }

    /// Connections open now (both directions not yet ended).
    pub fn open_connections(&self) -> usize {
        self.state.connections.lock().unwrap().len()
    }

    /// Bytes forwarded server to client, and client to server.
    pub fn bytes(&self) -> (u64, u64) {
        (
            self.state.down.load(Ordering::Relaxed),
            self.state.up.load(Ordering::Relaxed),
        )
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.state.closed.store(true, Ordering::Relaxed);
        self.reset_all();
        let _ = TcpStream::connect(("127.0.0.1", self.port)); // wake the accept loop
    }
}

/// Forwards `from` to `to` with the proxy's faults: a reader thread stamps each chunk with
/// its due time, a writer thread delivers it then (so latency does not cut throughput).
/// `conn`: the connection's number and its directions still open; the last one to end
/// forgets the connection's sockets.
fn pump(
    state: &Arc<State>,
    from: &TcpStream,
    to: &TcpStream,
    downstream: bool,
    conn: (u64, Arc<std::sync::atomic::AtomicU8>),
) {
    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
        eprintln!("fault proxy: cannot clone a socket: out of file descriptors?");
        state.connections.lock().unwrap().remove(&conn.0);
        return;
    };
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send((Instant::now(), buf[..n].to_vec())).is_err() {
                        break;
                    }
                }
            }
        }
    });
    let state = state.clone();
    std::thread::spawn(move || {
        for (read_at, mut chunk) in rx {
            let delay = Duration::from_micros(state.one_way_delay_us.load(Ordering::Relaxed));
            let due = read_at + delay;
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            while state.blackhole.load(Ordering::Relaxed) && !state.closed.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(10));
            }
            let counter = if downstream { &state.down } else { &state.up };
            let start = counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            if downstream {
                let at = state.corrupt_at.load(Ordering::Relaxed);
                if at >= start && at < start + chunk.len() as u64 {
                    chunk[(at - start) as usize] ^= 0xFF;
                    state.corrupt_at.store(u64::MAX, Ordering::Relaxed);
                }
            }
            let rate = state.rate.load(Ordering::Relaxed);
            if rate > 0 {
                std::thread::sleep(Duration::from_secs_f64(chunk.len() as f64 / rate as f64));
            }
            if to.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
        if conn.1.fetch_sub(1, Ordering::AcqRel) == 1 {
            state.connections.lock().unwrap().remove(&conn.0);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_fds() -> usize {
        std::fs::read_dir("/proc/self/fd").unwrap().count()
    }

    #[test]
    fn closed_connections_free_their_sockets() {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = server.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for conn in server.incoming() {
                let mut conn = conn.unwrap();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16];
                    while let Ok(n) = conn.read(&mut buf) {
                        if n == 0 || conn.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        let proxy = FaultProxy::start(port).unwrap();
        let before = open_fds();
        for _ in 0..300 {
            let mut c = TcpStream::connect(("127.0.0.1", proxy.port)).unwrap();
            c.write_all(b"ping").unwrap();
            let mut back = [0u8; 4];
            c.read_exact(&mut back).unwrap();
            assert_eq!(&back, b"ping");
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while proxy.open_connections() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(proxy.open_connections(), 0, "closed connections kept");
        // 300 connections kept would hold 1200 descriptors (two clones per socket pair).
        assert!(
            open_fds() < before + 50,
            "{} descriptors open, {before} before",
            open_fds()
        );
    }
}
