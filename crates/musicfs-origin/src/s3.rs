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
use object_store::path::Path;
use object_store::{ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt, RetryConfig};

use crate::error::{OriginError, Result};
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
        let mut builder = AmazonS3Builder::new()
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
            });
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
        match walked.map_err(|e| self.error(rel, e))? {
            Some(objects) => Ok(Some(self.listed_ahead.split(rel, objects))),
            None => Ok(None),
        }
    }

    fn error(&self, rel: &[u8], err: object_store::Error) -> OriginError {
        let path = String::from_utf8_lossy(rel).into_owned();
        let origin = self.display.clone();
        match err {
            object_store::Error::NotFound { .. } => OriginError::NotFound { origin, path },
            object_store::Error::PermissionDenied { source, .. }
            | object_store::Error::Unauthenticated { source, .. } => OriginError::Auth {
                origin,
                cause: format!("{} ({})", chain(source.as_ref()), self.keys_from),
            },
            object_store::Error::Precondition { .. } => OriginError::Changed {
                origin,
                path,
                cause: "its ETag changed".into(),
            },
            object_store::Error::Generic { source, .. } => {
                let cause = chain(source.as_ref());
                if refused_credentials(&cause) {
                    let cause = format!("{cause} ({})", self.keys_from);
                    OriginError::Auth { origin, cause }
                } else {
                    OriginError::Unreachable { origin, cause }
                }
            }
            other => OriginError::Io {
                origin,
                path,
                cause: other.to_string(),
                kind: std::io::ErrorKind::Other,
            },
        }
    }

    fn block_on<F: std::future::Future>(&self, fut: F) -> F::Output {
        crate::runtime().block_on(fut)
    }
}

/// Whether a failed request was refused for its credentials. `object_store` reports most
/// non-2xx answers (a list's 403 among them) as generic errors whose text holds the status
/// and S3's error code; its status type is private, so the text is all there is.
fn refused_credentials(cause: &str) -> bool {
    const CODES: [&str; 8] = [
        "403 Forbidden",
        "401 Unauthorized",
        "SignatureDoesNotMatch",
        "InvalidAccessKeyId",
        "AccessDenied",
        "ExpiredToken",
        "InvalidToken",
        "AuthorizationHeaderMalformed",
    ];
    CODES.iter().any(|code| cause.contains(code))
}

/// An error and its sources on one line (reqwest's top line alone says little).
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
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
        Ok(self.read_at_sized(rel, offset, len)?.0)
    }

    fn reads_tell_size(&self) -> bool {
        true
    }

    /// One ranged GET; its `Content-Range` carries the object's whole size.
    fn read_at_sized(&self, rel: &[u8], offset: u64, len: usize) -> Result<(Vec<u8>, Option<u64>)> {
        if len == 0 {
            return Ok((Vec::new(), None));
        }
        let key = self.key(rel)?;
        let options = GetOptions {
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
            // A range starting at or past the end: S3 answers 416.
            Err(object_store::Error::Generic { source, .. })
                if source.to_string().contains("416")
                    || source.to_string().contains("Range Not Satisfiable") =>
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
    ) -> Option<Result<Box<dyn std::io::Read + Send>>> {
        let stall = stall.min(self.timeout);
        let opened = (|| {
            let key = self.key(rel)?;
            let options = GetOptions {
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
