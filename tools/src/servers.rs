//! Real servers on loopback for tests and benchmarks: OpenSSH's `sshd` (SFTP, key-only, a
//! generated host key) and two S3 servers (`moto_server`, and `s3s-fs`, which checks
//! signatures). Each is a child process killed by its pid when dropped, or when it does not
//! come up. `start` returns `Err(reason)` when the server program is not installed, so the
//! caller can fail (CI) or skip loudly (a laptop).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port free right now on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

fn wait_listening(port: u16, child: &mut Child, what: &str) -> Result<(), String> {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("{what} exited at start: {status}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!("{what} did not listen on port {port} within 20 s"))
}

/// A server process, killed (by its pid) and reaped when dropped.
struct ServerProcess(Child);

impl ServerProcess {
    /// Starts `cmd` with no terminal I/O and waits until it listens on `port`; a process that
    /// does not come up is killed. `install` says how to get the program.
    fn start(cmd: &mut Command, port: u16, what: &str, install: &str) -> Result<Self, String> {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("{what}: {e} ({install})"))?;
        let mut process = ServerProcess(child);
        wait_listening(port, &mut process.0, what)?;
        Ok(process)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `sshd` serving SFTP (read-only) on 127.0.0.1, accepting one generated key for the current
/// user. Its host key is in `known_hosts`; `identity_file` is the client key. sshd's defaults
/// otherwise (`MaxStartups 10:30:100`: a burst of logins is refused, as on a real server).
pub struct SshServer {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
    pub known_hosts: PathBuf,
    pub identity_file: PathBuf,
    config: PathBuf,
}

fn keygen(path: &Path) -> Result<(), String> {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("ssh-keygen: {e}"))?;
    status
        .success()
        .then_some(())
        .ok_or_else(|| format!("ssh-keygen failed: {status}"))
}

impl SshServer {
    pub const SSHD: &str = "/usr/sbin/sshd";

    /// Starts sshd with its keys and config in `dir` (created).
    pub fn start(dir: &Path) -> Result<SshServer, String> {
        Self::start_with(dir, "")
    }

    /// [`SshServer::start`] with more `sshd_config` lines (e.g. `MaxStartups 1`).
    pub fn start_with(dir: &Path, extra_config: &str) -> Result<SshServer, String> {
        if !Path::new(Self::SSHD).exists() {
            return Err(format!(
                "{} not installed (apt-get install openssh-server)",
                Self::SSHD
            ));
        }
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let _ = std::fs::create_dir_all("/run/sshd");
        let host_key = dir.join("host_ed25519");
        let identity_file = dir.join("client_ed25519");
        if !host_key.exists() {
            keygen(&host_key)?;
        }
        if !identity_file.exists() {
            keygen(&identity_file)?;
        }
        std::fs::copy(
            identity_file.with_extension("pub"),
            dir.join("authorized_keys"),
        )
        .map_err(|e| e.to_string())?;
        let port = free_port();
        let config = dir.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "ListenAddress 127.0.0.1\nPort {port}\nHostKey {host}\nPidFile {dir}/sshd.pid\n\
                 AuthorizedKeysFile {dir}/authorized_keys\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n\
                 PermitRootLogin prohibit-password\n\
                 Subsystem sftp internal-sftp -R\n{extra_config}\n",
                host = host_key.display(),
                dir = dir.display()
            ),
        )
        .map_err(|e| e.to_string())?;
        let mut server = SshServer {
            child: Self::spawn(&config, dir)?,
            port,
            dir: dir.to_owned(),
            known_hosts: dir.join("known_hosts"),
            identity_file,
            config,
        };
        wait_listening(port, &mut server.child, "sshd")?;
        let public =
            std::fs::read_to_string(host_key.with_extension("pub")).map_err(|e| e.to_string())?;
        let mut fields = public.split_whitespace();
        let (kind, key) = (fields.next().unwrap_or(""), fields.next().unwrap_or(""));
        std::fs::write(
            &server.known_hosts,
            format!("[127.0.0.1]:{port} {kind} {key}\n"),
        )
        .map_err(|e| e.to_string())?;
        Ok(server)
    }

    fn spawn(config: &Path, dir: &Path) -> Result<Child, String> {
        Command::new(Self::SSHD)
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::create(dir.join("sshd.log"))
                    .map(Stdio::from)
                    .unwrap_or(Stdio::null()),
            )
            .spawn()
            .map_err(|e| format!("{}: {e}", Self::SSHD))
    }

    /// An `sftp://` URL of `path` on this server, with the test's key and known_hosts.
    pub fn url(&self, path: &Path) -> String {
        format!(
            "sftp://127.0.0.1:{}{}?identity_file={}&known_hosts={}",
            self.port,
            path.display(),
            self.identity_file.display(),
            self.known_hosts.display()
        )
    }

    /// [`SshServer::url`] through a proxy listening on `port` (the host key is made known
    /// under that port too).
    pub fn url_via(&self, path: &Path, port: u16) -> String {
        let known = std::fs::read_to_string(&self.known_hosts).unwrap_or_default();
        let line = known
            .lines()
            .next()
            .unwrap_or_default()
            .replace(&format!("]:{} ", self.port), &format!("]:{port} "));
        let _ = std::fs::write(&self.known_hosts, format!("{known}{line}\n"));
        self.url(path)
            .replace(&format!(":{}/", self.port), &format!(":{port}/"))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the server (connections already open stay served by their own processes).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same port, with the same keys.
    pub fn restart(&mut self) -> Result<(), String> {
        self.kill();
        self.child = Self::spawn(&self.config, &self.dir)?;
        wait_listening(self.port, &mut self.child, "sshd")
    }
}

impl Drop for SshServer {
    fn drop(&mut self) {
        // sshd forks one process per connection; killing the group ends them too.
        self.kill();
        let _ = Command::new("pkill")
            .args(["-f", &format!("sshd.*{}", self.config.display())])
            .status();
    }
}

/// `s3s-fs`: an S3 server over a folder (each subfolder a bucket) that checks SigV4
/// signatures against one access key, so wrong credentials are refused as by AWS.
pub struct SigningS3Server {
    _process: ServerProcess,
    pub port: u16,
    /// The folder served: `data/<bucket>/<key>`.
    pub data: PathBuf,
}

impl SigningS3Server {
    /// The program: `$MUSICFS_S3S_FS`, else `s3s-fs` on the `PATH`.
    pub fn program() -> String {
        std::env::var("MUSICFS_S3S_FS").unwrap_or_else(|_| "s3s-fs".to_owned())
    }

    /// Serves `data` (created) accepting only `access_key` signed with `secret_key`. (These
    /// are a test server's own keys, so its command line may show them.)
    pub fn start(data: &Path, access_key: &str, secret_key: &str) -> Result<Self, String> {
        std::fs::create_dir_all(data).map_err(|e| e.to_string())?;
        let port = free_port();
        let process = ServerProcess::start(
            Command::new(Self::program())
                .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                .args(["--access-key", access_key, "--secret-key", secret_key])
                .arg(data),
            port,
            &Self::program(),
            "cargo install s3s-fs --version 0.14.1 --features binary --locked, or set \
             MUSICFS_S3S_FS",
        )?;
        Ok(SigningS3Server {
            _process: process,
            port,
            data: data.to_owned(),
        })
    }

    /// An `s3://` URL of `bucket` on this server.
    pub fn url(&self, bucket: &str) -> String {
        format!("s3://{bucket}?endpoint=http://127.0.0.1:{}", self.port)
    }
}

/// `moto_server`: an S3 server in memory, speaking HTTP on 127.0.0.1. Accepts any
/// credentials.
pub struct S3Server {
    process: ServerProcess,
    pub port: u16,
}

impl S3Server {
    /// The program: `$MUSICFS_MOTO_SERVER`, else `moto_server` on the `PATH`.
    pub fn program() -> String {
        std::env::var("MUSICFS_MOTO_SERVER").unwrap_or_else(|_| "moto_server".to_owned())
    }

    pub fn start() -> Result<S3Server, String> {
        let port = free_port();
        let process = ServerProcess::start(
            Command::new(Self::program()).args(["-H", "127.0.0.1", "-p", &port.to_string()]),
            port,
            &Self::program(),
            "pip install 'moto[server]', or set MUSICFS_MOTO_SERVER",
        )?;
        Ok(S3Server { process, port })
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// An `s3://` URL of `bucket/prefix` on this server.
    pub fn url(&self, bucket: &str, prefix: &str) -> String {
        let prefix = if prefix.is_empty() {
            String::new()
        } else {
            format!("/{prefix}")
        };
        format!("s3://{bucket}{prefix}?endpoint={}", self.endpoint())
    }

    /// [`S3Server::url`] through a proxy listening on `port`.
    pub fn url_via(&self, bucket: &str, prefix: &str, port: u16) -> String {
        self.url(bucket, prefix)
            .replace(&format!(":{}", self.port), &format!(":{port}"))
    }

    pub fn pid(&self) -> u32 {
        self.process.0.id()
    }

    /// Creates `bucket` and uploads every file under `dir` to `prefix/<relative path>`.
    /// Returns the relative paths uploaded: names that cannot be S3 keys (not UTF-8, or with
    /// control characters, which the S3 client refuses) are left out.
    pub fn upload(&self, bucket: &str, prefix: &str, dir: &Path) -> anyhow::Result<Vec<String>> {
        use object_store::ObjectStoreExt;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        create_bucket(&self.endpoint(), bucket)?;
        let store = self.store(bucket)?;
        let mut uploaded = Vec::new();
        let mut stack = vec![dir.to_owned()];
        while let Some(folder) = stack.pop() {
            for entry in std::fs::read_dir(&folder)? {
                let entry = entry?;
                if entry.file_type()?.is_dir() {
                    stack.push(entry.path());
                    continue;
                }
                let Some(rel) = entry.path().strip_prefix(dir)?.to_str().map(str::to_owned) else {
                    continue;
                };
                let key = if prefix.is_empty() {
                    rel.clone()
                } else {
                    format!("{prefix}/{rel}")
                };
                let Ok(key) = object_store::path::Path::parse(key) else {
                    continue;
                };
                let bytes = std::fs::read(entry.path())?;
                runtime.block_on(store.put(&key, bytes.into()))?;
                uploaded.push(rel);
            }
        }
        Ok(uploaded)
    }
}

impl S3Server {
    fn store(&self, bucket: &str) -> anyhow::Result<object_store::aws::AmazonS3> {
        Ok(object_store::aws::AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_region("us-east-1")
            .with_endpoint(self.endpoint())
            .with_allow_http(true)
            .with_access_key_id("test")
            .with_secret_access_key("test")
            .build()?)
    }

    /// Deletes the object `key` of `bucket`.
    pub fn delete(&self, bucket: &str, key: &str) -> anyhow::Result<()> {
        use object_store::ObjectStoreExt;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let store = self.store(bucket)?;
        runtime.block_on(store.delete(&object_store::path::Path::parse(key)?))?;
        Ok(())
    }
}

impl S3Server {
    /// Puts `bytes` at `key` of `bucket` with a bare unsigned HTTP/1.1 request, every byte of
    /// the key but letters and digits percent-encoded: keys the S3 client refuses to write
    /// (`Icon\r`, `a//b`, `./x`) can be made so.
    pub fn put_raw(&self, bucket: &str, key: &str, bytes: &[u8]) -> anyhow::Result<()> {
        use std::io::{Read, Write};
        let host = self.endpoint().trim_start_matches("http://").to_owned();
        let encoded: String = key
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect();
        let mut stream = std::net::TcpStream::connect(&host)?;
        write!(
            stream,
            "PUT /{bucket}/{encoded} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n",
            bytes.len()
        )?;
        stream.write_all(bytes)?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        anyhow::ensure!(
            answer.starts_with("HTTP/1.1 200"),
            "putting {key:?}: {}",
            answer.lines().next().unwrap_or("")
        );
        Ok(())
    }
}

/// `PUT /bucket` with a bare HTTP/1.1 request: moto accepts unsigned requests, and this keeps
/// an HTTP client out of the tools' dependencies.
fn create_bucket(endpoint: &str, bucket: &str) -> anyhow::Result<()> {
    use std::io::{Read, Write};
    let host = endpoint.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(host)?;
    write!(
        stream,
        "PUT /{bucket} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    anyhow::ensure!(
        answer.starts_with("HTTP/1.1 200"),
        "creating bucket {bucket}: {}",
        answer.lines().next().unwrap_or("")
    );
    Ok(())
}
