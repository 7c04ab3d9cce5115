//! Setting up a session the way OpenSSH would: the host key checked against known_hosts
//! first (unknown or changed: refused with OpenSSH's words), then a key from `identity_file`,
//! ssh-agent or `~/.ssh`.

use std::path::PathBuf;

use base64::Engine;
use ssh2::{CheckResult, HashType, HostKeyType, KnownHostFileKind, Session};

use super::SftpOrigin;
use crate::error::{OriginError, Result};

pub(super) fn home() -> PathBuf {
    std::env::var_os("HOME").map_or_else(|| PathBuf::from("/"), PathBuf::from)
}

pub(super) fn login_name() -> String {
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
    pub(super) fn check_host_key(&self, session: &Session) -> Result<()> {
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

    pub(super) fn authenticate(&self, session: &Session) -> Result<()> {
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
}
