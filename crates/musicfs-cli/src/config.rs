//! The TOML config file (`--config`, `$MUSICFS_CONFIG`), shared by `musicfs-scan` and
//! `musicfs mount`. Every key is optional:
//!
//! ```toml
//! db = "/var/lib/musicfs/library.db"
//! roots = ["/srv/music"]                 # scanned, as on the command line
//! templates = "$albumartist/$album ($year)/$track - $title"
//! case_insensitive = false
//!
//! [[origins]]                            # a library (scanned), or a mirror of one (not)
//! url = "/mnt/nas/music"
//! [[origins]]
//! url = "s3://music-backup/music"
//! mirror_of = "/mnt/nas/music"           # same files, same relative paths
//! priority = 2                           # lower is preferred (default 1)
//! cache = true                           # on a library entry: read through the content
//!                                        # cache (default: remote yes, local no)
//! ```
//!
//! No credential ever goes here: SFTP keys come from `~/.ssh` or ssh-agent, S3 keys from the
//! AWS variables or `~/.aws` (docs/origins.md).

use std::path::{Path, PathBuf};

use anyhow::Context;
use musicfs_origin::{OriginUrl, redact_url};

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub db: Option<PathBuf>,
    #[serde(default)]
    pub roots: Vec<PathBuf>,
    /// `"TEMPLATE"`, or a table `{ Artists = "...", Genres = "..." }`.
    pub templates: Option<toml::Value>,
    pub case_insensitive: Option<bool>,
    #[serde(default)]
    pub origins: Vec<OriginEntry>,
}

#[derive(serde::Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct OriginEntry {
    pub url: String,
    /// The library this one is a copy of (its `url`).
    pub mirror_of: Option<String>,
    pub priority: Option<u32>,
    /// Whether this library's files go through the content cache.
    pub cache: Option<bool>,
}

impl ConfigFile {
    /// The file at `path`, or the empty config.
    pub fn load(path: Option<&Path>) -> anyhow::Result<ConfigFile> {
        let Some(path) = path else {
            return Ok(ConfigFile::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read config file", path.display()))?;
        let file: ConfigFile =
            toml::from_str(&text).with_context(|| format!("{}: invalid config", path.display()))?;
        // Every URL of the file is shown through `redact_url`: one holding a password is
        // refused, and the refusal must not print it.
        for entry in &file.origins {
            OriginUrl::parse(&entry.url).with_context(|| {
                format!("{}: origin {:?}", path.display(), redact_url(&entry.url))
            })?;
            if let Some(of) = &entry.mirror_of
                && !file
                    .origins
                    .iter()
                    .any(|o| &o.url == of && o.mirror_of.is_none())
            {
                anyhow::bail!(
                    "{}: origin {:?} is a mirror of {:?}, which is not an [[origins]] entry",
                    path.display(),
                    redact_url(&entry.url),
                    redact_url(of)
                );
            }
        }
        Ok(file)
    }

    /// Libraries to scan from `[[origins]]` (mirrors are not scanned: they hold the same
    /// files).
    pub fn libraries(&self) -> Vec<PathBuf> {
        self.origins
            .iter()
            .filter(|o| o.mirror_of.is_none())
            .map(|o| PathBuf::from(&o.url))
            .collect()
    }

    /// Libraries whose `cache` is set, by root as the DB stores it.
    pub fn cache_origins(&self) -> anyhow::Result<std::collections::HashMap<String, bool>> {
        let mut out = std::collections::HashMap::new();
        for entry in &self.origins {
            if let Some(cache) = entry.cache {
                anyhow::ensure!(
                    entry.mirror_of.is_none(),
                    "origin {:?}: `cache` is set on the library's entry, not a mirror's",
                    entry.url
                );
                out.insert(stored_root(&entry.url)?, cache);
            }
        }
        Ok(out)
    }

    /// Mirrors for the mount, keyed by their library's root as the DB stores it.
    pub fn mirrors(&self) -> anyhow::Result<Vec<musicfs_fs::MirrorConfig>> {
        let mut out = Vec::new();
        for entry in &self.origins {
            let of = entry.mirror_of.as_deref().unwrap_or(&entry.url);
            let has_mirrors = self
                .origins
                .iter()
                .any(|o| o.mirror_of.as_deref() == Some(of));
            if !has_mirrors {
                continue; // a library without mirrors needs no entry
            }
            out.push(musicfs_fs::MirrorConfig {
                of: stored_root(of)?,
                url: resolved(&entry.url)?,
                priority: entry.priority.unwrap_or(1),
            });
        }
        Ok(out)
    }
}

/// A root as the scanner stores it in `origins.root`: a canonical absolute path, or the URL.
pub fn stored_root(url: &str) -> anyhow::Result<String> {
    Ok(match resolved(url)? {
        OriginUrl::Local(path) => path.display().to_string(),
        remote => remote.to_string(),
    })
}

fn resolved(url: &str) -> anyhow::Result<OriginUrl> {
    Ok(match OriginUrl::parse(url)? {
        OriginUrl::Local(path) => {
            let absolute = std::path::absolute(&path)?;
            OriginUrl::Local(std::fs::canonicalize(&absolute).unwrap_or(absolute))
        }
        remote => remote,
    })
}
