//! Origin URLs: `/path`, `sftp://[user@]host[:port]/path`, `s3://bucket/prefix`, each with
//! optional `?key=value&…` options. A URL never holds a secret: passwords in the user part and
//! secret-looking options are refused, so a URL can be stored in the DB and logged.

use std::path::PathBuf;

use crate::error::{OriginError, Result};

/// Where a library lives. `Display` gives back the URL as the user wrote it (normalized).
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum OriginUrl {
    Local(PathBuf),
    Sftp {
        user: Option<String>,
        host: String,
        port: u16,
        /// Absolute path of the library on the server, without a trailing `/`.
        path: String,
        options: Vec<(String, String)>,
    },
    S3 {
        bucket: String,
        /// Key prefix of the library, without leading or trailing `/` (may be empty).
        prefix: String,
        options: Vec<(String, String)>,
    },
}

const SFTP_OPTIONS: &[&str] = &["identity_file", "known_hosts", "timeout_ms", "sessions"];
const S3_OPTIONS: &[&str] = &["endpoint", "region", "profile", "path_style", "timeout_ms"];

impl OriginUrl {
    pub fn parse(text: &str) -> Result<OriginUrl> {
        let bad = |reason: &str| OriginError::BadUrl {
            url: redact(text),
            reason: reason.to_owned(),
        };
        if let Some(rest) = text.strip_prefix("sftp://") {
            let (rest, options) = split_options(rest, SFTP_OPTIONS).map_err(|r| bad(&r))?;
            let (authority, path) = match rest.find('/') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => return Err(bad("no path: write sftp://host/path/to/music")),
            };
            let (user, hostport) = match authority.rsplit_once('@') {
                Some((user, _)) if user.contains(':') => {
                    return Err(bad(
                        "a password in the URL is refused (it would be stored and shown); \
                         use a key or ssh-agent",
                    ));
                }
                Some((user, hostport)) => (Some(user.to_owned()), hostport),
                None => (None, authority),
            };
            let (host, port) = parse_host_port(hostport).ok_or_else(|| bad("bad host or port"))?;
            if host.is_empty() {
                return Err(bad("no host"));
            }
            Ok(OriginUrl::Sftp {
                user,
                host,
                port,
                path: trim_slashes_end(&percent_decode(path)),
                options,
            })
        } else if let Some(rest) = text.strip_prefix("s3://") {
            let (rest, options) = split_options(rest, S3_OPTIONS).map_err(|r| bad(&r))?;
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest.as_str(), ""));
            if bucket.is_empty() || bucket.contains('@') {
                return Err(bad("no bucket (credentials never go in the URL)"));
            }
            Ok(OriginUrl::S3 {
                bucket: bucket.to_owned(),
                prefix: prefix.trim_matches('/').to_owned(),
                options,
            })
        } else if text.contains("://") {
            Err(bad("unknown scheme: use a path, sftp://… or s3://…"))
        } else {
            Ok(OriginUrl::Local(PathBuf::from(text)))
        }
    }

    /// `local`, `sftp` or `s3`: the `origins.kind` column.
    pub fn kind(&self) -> &'static str {
        match self {
            OriginUrl::Local(_) => "local",
            OriginUrl::Sftp { .. } => "sftp",
            OriginUrl::S3 { .. } => "s3",
        }
    }

    pub fn is_remote(&self) -> bool {
        !matches!(self, OriginUrl::Local(_))
    }

    /// `rel` inside this origin, for messages: the URL without its options, then `/rel`.
    pub fn locate(&self, rel: &[u8]) -> String {
        let base = match self {
            OriginUrl::Local(path) => path.display().to_string(),
            OriginUrl::Sftp { options, .. } | OriginUrl::S3 { options, .. } => {
                let full = self.to_string();
                if options.is_empty() {
                    full
                } else {
                    full[..full.find('?').unwrap_or(full.len())].to_owned()
                }
            }
        };
        if rel.is_empty() {
            base
        } else {
            format!(
                "{}/{}",
                base.trim_end_matches('/'),
                String::from_utf8_lossy(rel)
            )
        }
    }

    pub fn option(&self, key: &str) -> Option<&str> {
        let options = match self {
            OriginUrl::Local(_) => return None,
            OriginUrl::Sftp { options, .. } | OriginUrl::S3 { options, .. } => options,
        };
        options
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

impl std::fmt::Display for OriginUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let options = |f: &mut std::fmt::Formatter<'_>, options: &[(String, String)]| {
            for (i, (k, v)) in options.iter().enumerate() {
                write!(f, "{}{k}={v}", if i == 0 { '?' } else { '&' })?;
            }
            Ok(())
        };
        match self {
            OriginUrl::Local(path) => write!(f, "{}", path.display()),
            OriginUrl::Sftp {
                user,
                host,
                port,
                path,
                options: opts,
            } => {
                write!(f, "sftp://")?;
                if let Some(user) = user {
                    write!(f, "{user}@")?;
                }
                if host.contains(':') {
                    write!(f, "[{host}]")?;
                } else {
                    write!(f, "{host}")?;
                }
                if *port != 22 {
                    write!(f, ":{port}")?;
                }
                write!(f, "{}", if path.is_empty() { "/" } else { path })?;
                options(f, opts)
            }
            OriginUrl::S3 {
                bucket,
                prefix,
                options: opts,
            } => {
                write!(f, "s3://{bucket}")?;
                if !prefix.is_empty() {
                    write!(f, "/{prefix}")?;
                }
                options(f, opts)
            }
        }
    }
}

impl std::fmt::Debug for OriginUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OriginUrl({self})")
    }
}

fn split_options(
    text: &str,
    allowed: &[&str],
) -> std::result::Result<(String, Vec<(String, String)>), String> {
    let Some((base, query)) = text.split_once('?') else {
        return Ok((text.to_owned(), Vec::new()));
    };
    let mut options = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, "true"));
        if !allowed.contains(&k) {
            return Err(format!(
                "unknown option {k:?} (known: {}); credentials never go in the URL",
                allowed.join(", ")
            ));
        }
        options.push((k.to_owned(), percent_decode(v)));
    }
    Ok((base.to_owned(), options))
}

fn parse_host_port(text: &str) -> Option<(String, u16)> {
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => 22,
            None => return None,
        };
        return Some((host.to_owned(), port));
    }
    match text.rsplit_once(':') {
        Some((host, port)) => Some((host.to_owned(), port.parse().ok()?)),
        None => Some((text.to_owned(), 22)),
    }
}

fn trim_slashes_end(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    trimmed.to_owned()
}

fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

/// A refused URL as safe to show: anything between `//` and `@`, and the options, hidden.
fn redact(text: &str) -> String {
    let text = match text.split_once('?') {
        Some((base, _)) => format!("{base}?…"),
        None => text.to_owned(),
    };
    match (text.find("://"), text.find('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***{}", &text[..s], &text[at..]),
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_kind_and_prints_it_back() {
        for (text, kind) in [
            ("/srv/music", "local"),
            ("sftp://alice@nas:2222/home/alice/music", "sftp"),
            ("sftp://nas/music?identity_file=/k/id_ed25519", "sftp"),
            ("sftp://[::1]:2200/m", "sftp"),
            ("s3://bucket/some/prefix", "s3"),
            (
                "s3://bucket?endpoint=http://127.0.0.1:9000&path_style=true",
                "s3",
            ),
        ] {
            let url = OriginUrl::parse(text).unwrap();
            assert_eq!(url.kind(), kind);
            assert_eq!(url.to_string(), text);
        }
        let url = OriginUrl::parse("sftp://nas/music/").unwrap();
        assert!(matches!(url, OriginUrl::Sftp { port: 22, ref path, .. } if path == "/music"));
    }

    #[test]
    fn refuses_secrets_and_unknown_options() {
        let err = OriginUrl::parse("sftp://bob:hunter2@nas/m").unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(err.to_string().contains("password"), "{err}");
        let err = OriginUrl::parse("s3://b/p?secret_access_key=abc").unwrap_err();
        assert!(err.to_string().contains("unknown option"), "{err}");
        assert!(!err.to_string().contains("abc"), "{err}");
        assert!(OriginUrl::parse("ftp://x/y").is_err());
        assert!(OriginUrl::parse("sftp://host").is_err());
    }
}
