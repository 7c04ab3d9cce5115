//! Origin URLs: `/path`, `sftp://[user@]host[:port]/path`, `s3://bucket/prefix`, each with
//! optional `?key=value&…` options. A URL never holds a secret: a password in the user part or
//! in an option that is itself a URL (`endpoint=http://user:pass@host`) and unknown options are
//! refused, so a URL can be stored in the DB and logged. Errors about a refused URL show it
//! through [`redact_url`].

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
            url: redact_url(text),
            reason: reason.to_owned(),
        };
        let base = text.split_once('?').map_or(text, |(base, _)| base);
        if has_password(base) {
            return Err(bad(PASSWORD_REFUSED));
        }
        let url = OriginUrl::parse_checked(text, &bad)?;
        // An option whose value is a URL with a password (`endpoint=http://user:pass@host`)
        // would be stored and logged with the rest: refused like a password in the URL.
        if let Some(part) = url.part_with_password() {
            return Err(OriginError::BadUrl {
                url: format!("{}?…", redact_url(base)),
                reason: format!("{part} holds a password; {PASSWORD_REFUSED}"),
            });
        }
        Ok(url)
    }

    /// The URL of `text`, whose main part was checked for a password.
    fn parse_checked(text: &str, bad: &dyn Fn(&str) -> OriginError) -> Result<OriginUrl> {
        if let Some(rest) = text.strip_prefix("sftp://") {
            let (rest, options) = split_options(rest, SFTP_OPTIONS).map_err(|r| bad(&r))?;
            let (authority, path) = match rest.find('/') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => return Err(bad("no path: write sftp://host/path/to/music")),
            };
            let (user, hostport) = match authority.rsplit_once('@') {
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

    /// The first of this URL's parts holding a password (the user part, or an option whose
    /// value is a URL with one), by name. `None` for every URL [`OriginUrl::parse`] accepts;
    /// [`crate::open`] asks again of URLs built by hand.
    pub(crate) fn part_with_password(&self) -> Option<String> {
        let options = match self {
            OriginUrl::Local(_) => return None,
            OriginUrl::Sftp { user, .. } if user.as_deref().is_some_and(|u| u.contains(':')) => {
                return Some("the user part".to_owned());
            }
            OriginUrl::Sftp { options, .. } | OriginUrl::S3 { options, .. } => options,
        };
        options
            .iter()
            .find(|(_, v)| has_password(v.split_once('?').map_or(v, |(base, _)| base)))
            .map(|(k, _)| format!("option {k}"))
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
            // With an `@` after the `?`, the key may be the tail of a password holding `?`
            // (`sftp://bob:pa?ss@host/…`): not echoed.
            let named = if !query.contains('@')
                && !k.is_empty()
                && k.len() <= 40
                && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            {
                format!("{k:?} ")
            } else {
                String::new()
            };
            return Err(format!(
                "unknown option {named}(known: {}); credentials never go in the URL",
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

const PASSWORD_REFUSED: &str = "a password in a URL is refused (it would be stored in the \
     database and shown in logs): use a key or ssh-agent for SFTP, the AWS variables or \
     ~/.aws for S3 (an `@` in a path is written %40)";

/// Whether `text` (a URL without its options) holds a password: a `:` between `://` and the
/// last `@`. Wider than RFC 3986's userinfo on purpose: a password holding `/` or `#` ends the
/// authority early, and must be refused all the same.
fn has_password(text: &str) -> bool {
    let Some(start) = text.find("://") else {
        return false;
    };
    let rest = &text[start + 3..];
    rest.rfind('@').is_some_and(|at| rest[..at].contains(':'))
}

/// A refused URL as safe to show, in an error or a log line: anything between `://` and the
/// last `@` hidden, and the options (a password holding `?` may run into them). Safe for any
/// text, parsed or not.
pub fn redact_url(text: &str) -> String {
    let without_options = |t: &str| match t.split_once('?') {
        Some((base, _)) => format!("{base}?…"),
        None => t.to_owned(),
    };
    let Some(start) = text.find("://") else {
        return without_options(text);
    };
    let (scheme, rest) = (&text[..start], &text[start + 3..]);
    match rest.rfind('@') {
        Some(at) => format!("{scheme}://***{}", without_options(&rest[at..])),
        None => format!("{scheme}://{}", without_options(rest)),
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

    /// Every way a password can ride in a URL is refused before the URL exists (so before
    /// it is stored or logged), and the error shows none of it.
    #[test]
    fn refuses_passwords_anywhere_and_never_echoes_them() {
        let secret = "Hunter2xyz";
        for text in [
            "sftp://bob:Hunter2xyz@nas/m",
            "sftp://bob:Hunter2xyz@nas:2222/m?timeout_ms=5",
            "sftp://bob:Hunter2xyz@@nas/m",
            "sftp://bob:p@Hunter2xyz@nas/m",
            "sftp://bob:pa/Hunter2xyz@nas/m",
            "sftp://bob:pa#Hunter2xyz@nas/m",
            "sftp://bob:pa?Hunter2xyz@nas/m",
            "sftp://bob:pa?Hunter2xyz&timeout_ms=1@nas/m",
            "s3://bob:Hunter2xyz@bucket/p",
            "s3://b/p?endpoint=http://user:Hunter2xyz@minio:9000",
            "s3://b/p?region=x&endpoint=https://user:Hunter2xyz@minio",
            "s3://b?endpoint=http%3A%2F%2Fuser%3AHunter2xyz%40minio",
            "sftp://nas/m?known_hosts=http://u:Hunter2xyz@h/k",
            "s3:/b?endpoint=http://user:Hunter2xyz@minio",
            "https://user:Hunter2xyz@host/x",
        ] {
            let err = OriginUrl::parse(text).expect_err(text).to_string();
            assert!(!err.contains(secret), "{text}: {err}");
            assert!(!err.contains("Hunter2"), "{text}: {err}");
        }
        let err = OriginUrl::parse("s3://b/p?endpoint=http://u:Hunter2xyz@minio")
            .unwrap_err()
            .to_string();
        assert!(err.contains("s3://b/p"), "names the origin: {err}");
        assert!(err.contains("option endpoint holds a password"), "{err}");
        // A user alone is no secret; an `@` in a path is written %40.
        for text in [
            "sftp://alice@nas/m",
            "sftp://alice@nas:2222/m",
            "s3://b?endpoint=http://alice@minio:9000",
            "sftp://nas:2222/at%40home",
            "sftp://nas/m@home",
        ] {
            OriginUrl::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        }
    }

    #[test]
    fn a_url_built_by_hand_with_a_password_is_not_opened() {
        let url = OriginUrl::S3 {
            bucket: "b".into(),
            prefix: String::new(),
            options: vec![("endpoint".into(), "http://u:Hunter2xyz@minio".into())],
        };
        let err = crate::open(&url).err().expect("refused").to_string();
        assert!(!err.contains("Hunter2xyz"), "{err}");
        assert!(err.contains("password"), "{err}");
        let url = OriginUrl::Sftp {
            user: Some("bob:Hunter2xyz".into()),
            host: "nas".into(),
            port: 22,
            path: "/m".into(),
            options: Vec::new(),
        };
        let err = crate::open(&url).err().expect("refused").to_string();
        assert!(!err.contains("Hunter2xyz"), "{err}");
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
