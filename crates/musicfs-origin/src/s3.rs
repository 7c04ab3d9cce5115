//! S3 and S3-compatible object stores (MinIO, Garage, Ceph, Backblaze, Wasabi…) through
//! `object_store`. Folders are key prefixes; a top-level folder's subtree is listed with one
//! flat `ListObjectsV2` walk, other folders with a delimited one (see `s3_listing`). `object_store`'s own retries are off: the caller owns the
//! retry and failover policy, and a dead server must fail fast.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::client::{HttpError, HttpErrorKind};
use object_store::path::Path;
use object_store::{ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt, RetryConfig};

use crate::error::{OriginError, Result};
use crate::s3_http::{Connector, OddKeys, S3Refusal};
use crate::s3_listing::{FLAT_MAX_KEYS, ListedAhead};
use crate::secret::Secret;
use crate::{Entry, Meta, Origin, OriginUrl};

/// Access keys, from the standard variables or a `~/.aws/credentials` profile.
#[derive(Debug, Clone)]
pub(crate) struct S3Credentials {
    access_key_id: String,
    secret_access_key: Secret,
    session_token: Option<Secret>,
}

pub struct S3Origin {
    url: OriginUrl,
    display: String,
    store: AmazonS3,
    prefix: String,
    timeout: Duration,
    fetched: Arc<AtomicU64>,
    listed_ahead: ListedAhead,
    /// Keys the HTTP layer took out of listing pages, for the listing to report.
    odd_keys: OddKeys,
    /// Which keys are in use (never the secret), for an authentication error to name.
    keys_from: String,
}

impl std::fmt::Debug for S3Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "S3Origin({})", self.display)
    }
}

/// Settings from `~/.aws/config` and `~/.aws/credentials` for one profile.
#[derive(Default)]
struct Profile {
    credentials: Option<S3Credentials>,
    region: Option<String>,
    endpoint: Option<String>,
}

fn aws_dir() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".aws"))
}

/// Reads one profile the way the AWS CLI does: `[name]` in `credentials`, `[profile name]` (or
/// `[default]`) in `config`, paths overridable by `AWS_SHARED_CREDENTIALS_FILE` and
/// `AWS_CONFIG_FILE`.
fn read_profile(name: &str) -> Profile {
    let path = |var: &str, file: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .or_else(|| aws_dir().map(|d| d.join(file)))
    };
    let mut profile = Profile::default();
    if let Some(ini) = path("AWS_SHARED_CREDENTIALS_FILE", "credentials")
        .and_then(|p| ini::Ini::load_from_file(p).ok())
        && let Some(section) = ini.section(Some(name))
        && let (Some(id), Some(secret)) = (
            section.get("aws_access_key_id"),
            section.get("aws_secret_access_key"),
        )
    {
        profile.credentials = Some(S3Credentials {
            access_key_id: id.to_owned(),
            secret_access_key: Secret::new(secret),
            session_token: section.get("aws_session_token").map(Secret::new),
        });
    }
    if let Some(ini) =
        path("AWS_CONFIG_FILE", "config").and_then(|p| ini::Ini::load_from_file(p).ok())
    {
        let section_name = if name == "default" {
            "default".to_owned()
        } else {
            format!("profile {name}")
        };
        if let Some(section) = ini.section(Some(section_name)) {
            profile.region = section.get("region").map(str::to_owned);
            profile.endpoint = section.get("endpoint_url").map(str::to_owned);
        }
    }
    profile
}

/// An access key id as the AWS CLI shows one: its last four characters.
fn masked(id: &str) -> String {
    let tail: String = id
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("…{tail}")
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl S3Origin {
    pub fn new(url: OriginUrl) -> Result<S3Origin> {
        let OriginUrl::S3 { bucket, prefix, .. } = &url else {
            panic!("S3Origin needs an s3:// URL");
        };
        let display = url.to_string();
        let profile_name = url
            .option("profile")
            .map(str::to_owned)
            .or_else(|| env("AWS_PROFILE"))
            .unwrap_or_else(|| "default".to_owned());
        let profile = read_profile(&profile_name);
        let from_env = (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY"));
        let (credentials, keys_from) = match from_env {
            (Some(id), Some(secret)) => {
                let token = env("AWS_SESSION_TOKEN").map(Secret::new);
                let from = format!(
                    "access key {} from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY{}",
                    masked(&id),
                    if token.is_some() {
                        "/AWS_SESSION_TOKEN"
                    } else {
                        ""
                    }
                );
                let credentials = S3Credentials {
                    access_key_id: id,
                    secret_access_key: Secret::new(secret),
                    session_token: token,
                };
                (Some(credentials), from)
            }
            _ => match profile.credentials {
                Some(c) => {
                    let from = format!(
                        "access key {} from profile [{profile_name}] of ~/.aws/credentials",
                        masked(&c.access_key_id)
                    );
                    (Some(c), from)
                }
                None => (
                    None,
                    "no keys (AWS_ACCESS_KEY_ID unset, no ~/.aws profile): unsigned requests"
                        .to_owned(),
                ),
            },
        };
        let endpoint = url
            .option("endpoint")
            .map(str::to_owned)
            .or_else(|| env("AWS_ENDPOINT_URL_S3"))
            .or_else(|| env("AWS_ENDPOINT_URL"))
            .or(profile.endpoint);
        let region = url
            .option("region")
            .map(str::to_owned)
            .or_else(|| env("AWS_REGION"))
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .or(profile.region)
            .unwrap_or_else(|| "us-east-1".to_owned());
        // Servers other than AWS mostly want the bucket in the path.
        let path_style = match url.option("path_style") {
            Some(v) => v == "true" || v == "1",
            None => endpoint.is_some(),
        };
        let timeout = crate::timeout_option(&url, Duration::from_secs(30));
        let odd_keys = OddKeys::default();
        let mut builder = AmazonS3Builder::new()
            .with_http_connector(Connector {
                odd_keys: odd_keys.clone(),
            })
            .with_bucket_name(bucket)
            .with_region(region)
            .with_virtual_hosted_style_request(!path_style)
            .with_retry(RetryConfig {
                max_retries: 0,
                ..RetryConfig::default()
            })
            .with_client_options(
                ClientOptions::new()
                    .with_allow_http(true)
                    .with_timeout(timeout)
                    .with_connect_timeout(Duration::from_secs(5).min(timeout)),
            );
        if let Some(endpoint) = endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        match credentials {
            Some(c) => {
                builder = builder
                    .with_access_key_id(c.access_key_id)
                    .with_secret_access_key(c.secret_access_key.expose());
                if let Some(token) = c.session_token {
                    builder = builder.with_token(token.expose());
                }
            }
            // Public buckets: unsigned requests rather than a metadata-service probe.
            None => builder = builder.with_skip_signature(true),
        }
        let store = builder.build().map_err(|e| OriginError::BadUrl {
            url: display.clone(),
            reason: e.to_string(),
        })?;
        Ok(S3Origin {
            prefix: prefix.clone(),
            display,
            url,
            store,
            timeout,
            fetched: Arc::default(),
            listed_ahead: ListedAhead::default(),
            odd_keys,
            keys_from,
        })
    }

    /// The key of `rel` (a `/`-separated path below the prefix).
    fn key(&self, rel: &[u8]) -> Result<Path> {
        let rel = std::str::from_utf8(rel).map_err(|_| OriginError::NotFound {
            origin: self.display.clone(),
            path: String::from_utf8_lossy(rel).into_owned(),
        })?;
        let key = match (self.prefix.is_empty(), rel.is_empty()) {
            (true, _) => rel.to_owned(),
            (false, true) => self.prefix.clone(),
            (false, false) => format!("{}/{rel}", self.prefix),
        };
        Ok(Path::parse(&key).unwrap_or_else(|_| Path::from(key.as_str())))
    }

    /// One delimited listing of the folder `rel`: its files and subfolders.
    fn list_delimited(&self, rel: &[u8]) -> Result<Vec<Entry>> {
        let key = self.key(rel)?;
        let prefix = (!key.as_ref().is_empty()).then_some(&key);
        let listed = self
            .block_on(self.store.list_with_delimiter(prefix))
            .map_err(|e| self.error(rel, e))?;
        let mut entries = Vec::with_capacity(listed.objects.len() + listed.common_prefixes.len());
        for dir in &listed.common_prefixes {
            if let Some(name) = dir.filename() {
                entries.push(Entry {
                    name: name.as_bytes().to_vec(),
                    is_dir: true,
                    meta: Meta::default(),
                    refused: None,
                });
            }
        }
        for object in &listed.objects {
            // A "folder marker" object (`dir/`) has no name of its own.
            let Some(name) = object.location.filename() else {
                continue;
            };
            entries.push(Entry {
                name: name.as_bytes().to_vec(),
                is_dir: false,
                meta: meta_of(object),
                refused: None,
            });
        }
        let base = listed_prefix(&key);
        for odd in self.take_odd_keys(&base) {
            entries.push(odd_entry(odd.strip_prefix(&base).unwrap_or(&odd), &odd));
        }
        Ok(entries)
    }

    /// The whole subtree of `rel` in one flat walk; its subfolders' listings are held for
    /// the walk. `None` if it has more than [`FLAT_MAX_KEYS`] keys.
    fn list_flat(&self, rel: &[u8]) -> Result<Option<Vec<Entry>>> {
        let key = self.key(rel)?;
        let base = format!("{}/", key.as_ref());
        let walked = self.block_on(async {
            let mut stream = self.store.list(Some(&key));
            let mut objects = Vec::new();
            while let Some(object) = stream.next().await {
                let object = object?;
                if objects.len() == FLAT_MAX_KEYS {
                    return Ok(None);
                }
                if let Some(below) = object.location.as_ref().strip_prefix(&base) {
                    objects.push((below.to_owned(), meta_of(&object)));
                }
            }
            Ok(Some(objects))
        });
        let odd = self.take_odd_keys(&base);
        match walked.map_err(|e| self.error(rel, e))? {
            Some(objects) => {
                let mut own = self.listed_ahead.split(rel, objects);
                for key in odd {
                    own.push(odd_entry(key.strip_prefix(&base).unwrap_or(&key), &key));
                }
                Ok(Some(own))
            }
            None => Ok(None),
        }
    }

    /// The odd keys the HTTP layer took out of the listing pages of `prefix` (as sent).
    fn take_odd_keys(&self, prefix: &str) -> Vec<String> {
        let mut keys = self
            .odd_keys
            .lock()
            .unwrap()
            .remove(prefix)
            .unwrap_or_default();
        keys.sort();
        keys.dedup();
        keys
    }

    /// Classifies a failed request by what the server answered (its status and S3's error
    /// code) or how the connection failed, never by the text of the message: a key or a URL
    /// may hold any digits or words.
    fn error(&self, rel: &[u8], err: object_store::Error) -> OriginError {
        let path = String::from_utf8_lossy(rel).into_owned();
        let origin = self.display.clone();
        if let object_store::Error::Precondition { .. } = err {
            return OriginError::Changed {
                origin,
                path,
                cause: "its ETag is not the one scanned".into(),
            };
        }
        match failure_of(&err) {
            Failure::Refused(refusal) => match refusal.status {
                404 => OriginError::NotFound { origin, path },
                412 => OriginError::Changed {
                    origin,
                    path,
                    cause: format!("{refusal}: its ETag is not the one scanned"),
                },
                401 => OriginError::Auth {
                    origin,
                    cause: format!("{refusal} ({})", self.keys_from),
                },
                // Keys refused as such, or anything refused at the root: the whole origin.
                403 if rel.is_empty() || refusal.code.as_deref().is_some_and(refused_keys) => {
                    OriginError::Auth {
                        origin,
                        cause: format!("{refusal} ({})", self.keys_from),
                    }
                }
                // Access denied below the root (a policy on one prefix): that folder or file.
                403 => OriginError::Io {
                    origin,
                    path,
                    cause: format!("{refusal}: access denied"),
                    kind: std::io::ErrorKind::PermissionDenied,
                },
                408 | 429 | 500..=599 => OriginError::Busy {
                    origin,
                    path,
                    cause: refusal.to_string(),
                },
                _ => OriginError::Io {
                    origin,
                    path,
                    cause: refusal.to_string(),
                    kind: std::io::ErrorKind::Other,
                },
            },
            Failure::Transport(HttpErrorKind::Connect | HttpErrorKind::Timeout) => {
                OriginError::Unreachable {
                    origin,
                    cause: transport_cause(&err),
                }
            }
            // Reset or cut off mid-answer: the server was there, the next try may pass.
            Failure::Transport(HttpErrorKind::Request | HttpErrorKind::Interrupted) => {
                OriginError::Busy {
                    origin,
                    path,
                    cause: transport_cause(&err),
                }
            }
            Failure::Transport(_) | Failure::Other => OriginError::Io {
                origin,
                path,
                cause: transport_cause(&err),
                kind: std::io::ErrorKind::Other,
            },
        }
    }

    fn block_on<F: std::future::Future>(&self, fut: F) -> F::Output {
        crate::runtime().block_on(fut)
    }
}

/// S3 error codes that refuse the keys themselves (not access to one prefix).
fn refused_keys(code: &str) -> bool {
    matches!(
        code,
        "SignatureDoesNotMatch"
            | "InvalidAccessKeyId"
            | "ExpiredToken"
            | "InvalidToken"
            | "TokenRefreshRequired"
            | "AuthorizationHeaderMalformed"
            | "MissingSecurityHeader"
            | "InvalidClientTokenId"
    )
}

/// What went wrong with a request, from the error's sources.
enum Failure {
    /// The server answered with an error status.
    Refused(S3Refusal),
    /// No usable answer: the connection failed, timed out or was cut.
    Transport(HttpErrorKind),
    Other,
}

fn failure_of(err: &object_store::Error) -> Failure {
    let mut transport = None;
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(refusal) = e.downcast_ref::<S3Refusal>() {
            return Failure::Refused(refusal.clone());
        }
        if let Some(http) = e.downcast_ref::<HttpError>() {
            transport.get_or_insert(http.kind());
        }
        source = e.source();
    }
    transport.map_or(Failure::Other, Failure::Transport)
}

/// An error and its sources on one line (reqwest's top line alone says little). Bodies of
/// error answers never get here: the HTTP layer keeps only their status and code.
fn transport_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// The prefix a listing of `key` sends: `a/b/`, empty for the root.
fn listed_prefix(key: &Path) -> String {
    match key.as_ref() {
        "" => String::new(),
        k => format!("{k}/"),
    }
}

/// A listed key that cannot be a path here: reported under an escaped name, never read.
fn odd_entry(below: &str, key: &str) -> Entry {
    Entry {
        name: below.escape_debug().to_string().into_bytes(),
        is_dir: false,
        meta: Meta::default(),
        refused: Some(format!(
            "S3 key {key:?} is not a usable path (an empty, `.` or `..` segment, or a control \
             character): not served"
        )),
    }
}

fn meta_of(m: &object_store::ObjectMeta) -> Meta {
    Meta {
        size: m.size,
        mtime_ns: m
            .last_modified
            .timestamp_nanos_opt()
            .unwrap_or(m.last_modified.timestamp().saturating_mul(1_000_000_000)),
        etag: m.e_tag.clone(),
    }
}

impl Origin for S3Origin {
    fn url(&self) -> &OriginUrl {
        &self.url
    }

    /// A folder held by an earlier flat walk costs nothing; a top-level folder is walked flat
    /// (its whole subtree in a page or a few); anything else is one delimited listing.
    fn list(&self, rel: &[u8]) -> Result<Vec<Entry>> {
        if let Some(entries) = self.listed_ahead.take(rel) {
            return Ok(entries);
        }
        if !rel.is_empty()
            && !rel.contains(&b'/')
            && self.listed_ahead.has_room()
            && let Some(entries) = self.list_flat(rel)?
        {
            return Ok(entries);
        }
        self.list_delimited(rel)
    }

    fn stat(&self, rel: &[u8]) -> Result<Meta> {
        let key = self.key(rel)?;
        let meta = self
            .block_on(self.store.head(&key))
            .map_err(|e| self.error(rel, e))?;
        Ok(meta_of(&meta))
    }

    fn read_at(&self, rel: &[u8], offset: u64, len: usize) -> Result<Vec<u8>> {
        Ok(self.read_at_sized(rel, offset, len, None)?.0)
    }

    fn reads_tell_size(&self) -> bool {
        true
    }

    /// One ranged GET; its `Content-Range` carries the object's whole size. With `etag`,
    /// the GET carries `If-Match`: another version is refused by the server (412), so its
    /// bytes never arrive.
    fn read_at_sized(
        &self,
        rel: &[u8],
        offset: u64,
        len: usize,
        etag: Option<&str>,
    ) -> Result<(Vec<u8>, Option<u64>)> {
        if len == 0 {
            return Ok((Vec::new(), None));
        }
        let key = self.key(rel)?;
        let options = GetOptions {
            if_match: etag.map(str::to_owned),
            range: Some(GetRange::Bounded(offset..offset + len as u64)),
            ..GetOptions::default()
        };
        let got = self.block_on(async {
            let result = self.store.get_opts(&key, options).await?;
            let size = result.meta.size;
            Ok::<_, object_store::Error>((result.bytes().await?, size))
        });
        let (bytes, size) = match got {
            Ok(got) => got,
            // A range starting at or past the end: S3 answers 416, the end of the file.
            Err(e)
                if matches!(
                    failure_of(&e),
                    Failure::Refused(S3Refusal { status: 416, .. })
                ) =>
            {
                return Ok((Vec::new(), None));
            }
            Err(e) => return Err(self.error(rel, e)),
        };
        self.fetched
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok((bytes.to_vec(), Some(size)))
    }

    fn stat_root(&self) -> Result<bool> {
        let key = self.key(b"")?;
        let prefix = (!key.as_ref().is_empty()).then_some(&key);
        let listed = self
            .block_on(self.store.list_with_delimiter(prefix))
            .map_err(|e| self.error(b"", e))?;
        // Odd keys are the scan's to report: a health check leaves none behind.
        self.take_odd_keys(&listed_prefix(&key));
        Ok(!listed.objects.is_empty() || !listed.common_prefixes.is_empty())
    }

    fn bytes_fetched(&self) -> u64 {
        self.fetched.load(Ordering::Relaxed)
    }

    fn stream_from(
        &self,
        rel: &[u8],
        offset: u64,
        stall: Duration,
        etag: Option<&str>,
    ) -> Option<Result<Box<dyn std::io::Read + Send>>> {
        let stall = stall.min(self.timeout);
        let opened = (|| {
            let key = self.key(rel)?;
            let options = GetOptions {
                if_match: etag.map(str::to_owned),
                range: Some(GetRange::Offset(offset)),
                ..GetOptions::default()
            };
            let get = self.store.get_opts(&key, options);
            let result = match self.block_on(async { tokio::time::timeout(stall, get).await }) {
                Ok(result) => result.map_err(|e| self.error(rel, e))?,
                Err(_) => {
                    return Err(OriginError::Unreachable {
                        origin: self.display.clone(),
                        cause: format!("no answer in {stall:?}"),
                    });
                }
            };
            Ok(Box::new(S3Stream {
                stream: result.into_stream(),
                chunk: bytes::Bytes::new(),
                stall,
                fetched: self.fetched.clone(),
            }) as Box<dyn std::io::Read + Send>)
        })();
        Some(opened)
    }
}

/// The body of one GET, read as it arrives.
struct S3Stream {
    stream: BoxStream<'static, object_store::Result<bytes::Bytes>>,
    chunk: bytes::Bytes,
    stall: Duration,
    fetched: Arc<AtomicU64>,
}

impl std::io::Read for S3Stream {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.chunk.is_empty() {
            let (stall, stream) = (self.stall, &mut self.stream);
            let next = crate::runtime()
                .block_on(async move { tokio::time::timeout(stall, stream.next()).await });
            match next {
                Ok(Some(Ok(bytes))) => {
                    self.fetched
                        .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                    self.chunk = bytes;
                }
                Ok(None) => return Ok(0),
                Ok(Some(Err(err))) => return Err(std::io::Error::other(err.to_string())),
                Err(_) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("no bytes in {:?}", self.stall),
                    ));
                }
            }
        }
        let n = out.len().min(self.chunk.len());
        out[..n].copy_from_slice(&self.chunk[..n]);
        self.chunk = self.chunk.slice(n..);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    /// An HTTP server on loopback answering every request with `status` and `body` (what an
    /// S3 server answers when it refuses), for statuses moto cannot be made to give.
    fn answering(status: &'static str, body: &'static str) -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut request = Vec::new();
                let mut byte = [0u8; 1];
                while !request.ends_with(b"\r\n\r\n") && conn.read(&mut byte).unwrap_or(0) == 1 {
                    request.push(byte[0]);
                }
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        port
    }

    fn origin(port: u16) -> S3Origin {
        let url = OriginUrl::parse(&format!("s3://bucket?endpoint=http://127.0.0.1:{port}"));
        S3Origin::new(url.unwrap()).unwrap()
    }

    const SIGNATURE_BODY: &str = "<Error><Code>SignatureDoesNotMatch</Code><Message>The \
        request signature we calculated does not match</Message><AWSAccessKeyId>AKIALEAKED1234\
        </AWSAccessKeyId><StringToSign>AWS4-HMAC-SHA256 secret-ish</StringToSign>\
        <CanonicalRequest>GET /bucket</CanonicalRequest></Error>";

    #[test]
    fn a_server_error_is_transient_even_when_its_url_holds_416() {
        let port = answering(
            "503 Service Unavailable",
            "<Error><Code>SlowDown</Code><Message>416 reasons</Message></Error>",
        );
        let err = origin(port)
            .read_at(b"Album 416/x.flac", 0, 100)
            .expect_err("a 503 is no end of file");
        assert!(matches!(err, OriginError::Busy { .. }), "{err:?}");
        assert!(err.to_string().contains("HTTP 503 SlowDown"), "{err}");
        assert!(!err.is_origin_down());
    }

    #[test]
    fn a_range_past_the_end_is_the_end() {
        let port = answering(
            "416 Requested Range Not Satisfiable",
            "<Error><Code>InvalidRange</Code></Error>",
        );
        assert_eq!(origin(port).read_at(b"x.flac", 1000, 100).unwrap(), b"");
    }

    #[test]
    fn refused_keys_stop_the_origin_a_denied_prefix_only_its_folder_and_no_body_is_shown() {
        let port = answering("403 Forbidden", SIGNATURE_BODY);
        let err = origin(port).list(b"Artist/Album").unwrap_err();
        assert!(matches!(err, OriginError::Auth { .. }), "{err:?}");
        let shown = format!("{err} {err:?}");
        assert!(shown.contains("HTTP 403 SignatureDoesNotMatch"), "{shown}");
        for secret in [
            "AKIALEAKED",
            "StringToSign",
            "CanonicalRequest",
            "AWS4-HMAC",
        ] {
            assert!(!shown.contains(secret), "{secret} shown: {shown}");
        }

        let port = answering("403 Forbidden", "<Error><Code>AccessDenied</Code></Error>");
        let err = origin(port).list(b"Artist/Album").unwrap_err();
        assert!(
            matches!(&err, OriginError::Io { kind, .. } if *kind == std::io::ErrorKind::PermissionDenied),
            "{err:?}"
        );
        assert!(!err.is_origin_down(), "{err}");
        // At the root, nothing can be listed: the origin as a whole.
        assert!(origin(port).list(b"").unwrap_err().is_origin_down());
    }

    #[test]
    fn another_version_is_refused_as_changed() {
        let port = answering(
            "412 Precondition Failed",
            "<Error><Code>PreconditionFailed</Code></Error>",
        );
        let err = origin(port)
            .read_at_sized(b"x.flac", 0, 10, Some("\"abc\""))
            .unwrap_err();
        assert!(matches!(err, OriginError::Changed { .. }), "{err:?}");
    }
}
