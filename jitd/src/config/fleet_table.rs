//! `[fleet]` in jitd.toml: where the shared store is, how to reach it, and whom this host
//! trusts to approve. Without the table jitd is a single host, exactly as before.

use std::path::PathBuf;

use serde::Deserialize;

use crate::core::fleet::records::valid_name;

pub const DEFAULT_PREFIX: &str = "/jit";
pub const DEFAULT_ALLOWED_SIGNERS: &str = "/etc/jit/allowed_signers";

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetConfig {
    /// etcd client URLs (`https://10.0.0.1:2379`); each host spreads over them by its name.
    pub endpoints: Vec<String>,
    /// This host's name in the fleet (default: the kernel's host name).
    #[serde(default)]
    pub host_name: Option<String>,
    /// Key prefix in etcd, so that several fleets can share a cluster.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// CA certificate(s) that sign the etcd members' certificates (PEM); only these are
    /// trusted for `https` endpoints when set.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// This host's client certificate and key (PEM), for members run with
    /// `--client-cert-auth`. The certificate must carry no CN (etcd's gateway refuses those).
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// etcd user (RBAC), with its password in a root-only `password_file`.
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// OpenSSH allowed_signers: which SSH keys sign approvals as which approver (by user
    /// name). The trust anchor: root's alone, never read from the store.
    #[serde(default = "default_allowed_signers")]
    pub allowed_signers: PathBuf,
    /// How long the store may go unheard (no member answers, or the watch is lost) before the
    /// grants of roles with `fleet_offline = "end"` end on this host (default 60s).
    #[serde(default)]
    pub offline_grace: Option<String>,
}

/// `offline_grace` when none is set.
pub const DEFAULT_OFFLINE_GRACE: std::time::Duration = std::time::Duration::from_secs(60);
const MAX_OFFLINE_GRACE: std::time::Duration = std::time::Duration::from_secs(86_400);

fn default_prefix() -> String {
    DEFAULT_PREFIX.into()
}

fn default_allowed_signers() -> PathBuf {
    PathBuf::from(DEFAULT_ALLOWED_SIGNERS)
}

impl FleetConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.endpoints.is_empty() || self.endpoints.len() > 32 {
            return Err("[fleet] endpoints: list 1 to 32 etcd client URLs".into());
        }
        for e in &self.endpoints {
            let rest = e
                .strip_prefix("https://")
                .or_else(|| e.strip_prefix("http://"))
                .ok_or_else(|| {
                    format!("[fleet] endpoints: {e:?} is not an http:// or https:// URL")
                })?;
            if rest.is_empty() || rest.contains(['/', '?', '#', '@', ' ']) {
                return Err(format!(
                    "[fleet] endpoints: {e:?} must be scheme://host:port and nothing else"
                ));
            }
        }
        if let Some(h) = &self.host_name {
            valid_name(h).map_err(|e| format!("[fleet] host_name: {e}"))?;
        }
        let p = &self.prefix;
        if !p.starts_with('/')
            || p.len() > 128
            || p.ends_with('/')
            || !p[1..].split('/').all(|seg| valid_name(seg).is_ok())
        {
            return Err(format!(
                "[fleet] prefix: {p:?} must look like /jit or /org/jit (no trailing /)"
            ));
        }
        if self.cert_file.is_some() != self.key_file.is_some() {
            return Err("[fleet] cert_file and key_file go together".into());
        }
        if self.user.is_some() != self.password_file.is_some() {
            return Err("[fleet] user and password_file go together".into());
        }
        self.checked_offline_grace()?;
        Ok(())
    }

    /// `offline_grace` (validated at load: [`FleetConfig::validate`]).
    pub fn offline_grace(&self) -> std::time::Duration {
        self.checked_offline_grace()
            .unwrap_or(DEFAULT_OFFLINE_GRACE)
    }

    fn checked_offline_grace(&self) -> Result<std::time::Duration, String> {
        let Some(text) = &self.offline_grace else {
            return Ok(DEFAULT_OFFLINE_GRACE);
        };
        match jit_proto::duration::parse(text) {
            Ok(d) if !d.is_zero() && d <= MAX_OFFLINE_GRACE => Ok(d),
            _ => Err(format!(
                "[fleet] offline_grace: {text:?} must be a duration from 1s to 1d (e.g. \"2m\")"
            )),
        }
    }
}

/// This host's name: the kernel's, as `hostname` prints it.
pub fn kernel_host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<FleetConfig, String> {
        let c: FleetConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        c.validate()?;
        Ok(c)
    }

    #[test]
    fn offline_grace_is_a_duration_from_a_second_to_a_day() {
        let base = "endpoints = [\"http://127.0.0.1:2379\"]\n";
        assert_eq!(parse(base).unwrap().offline_grace(), DEFAULT_OFFLINE_GRACE);
        assert_eq!(
            parse(&format!("{base}offline_grace = \"90s\""))
                .unwrap()
                .offline_grace(),
            std::time::Duration::from_secs(90)
        );
        for bad in ["0s", "2d", "soon", ""] {
            let e = parse(&format!("{base}offline_grace = \"{bad}\"")).unwrap_err();
            assert!(e.contains("offline_grace"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_careless_fleet_table_is_refused_with_the_key_named() {
        assert!(parse("endpoints = [\"http://127.0.0.1:2379\"]").is_ok());
        for (bad, key) in [
            ("endpoints = []", "endpoints"),
            ("endpoints = [\"127.0.0.1:2379\"]", "endpoints"),
            ("endpoints = [\"http://u:p@h:1\"]", "endpoints"),
            (
                "endpoints = [\"http://h:1\"]\nhost_name = \"db/1\"",
                "host_name",
            ),
            ("endpoints = [\"http://h:1\"]\nprefix = \"jit\"", "prefix"),
            ("endpoints = [\"http://h:1\"]\nprefix = \"/jit/\"", "prefix"),
            (
                "endpoints = [\"http://h:1\"]\ncert_file = \"/c\"",
                "cert_file",
            ),
            (
                "endpoints = [\"http://h:1\"]\nuser = \"h\"",
                "password_file",
            ),
            ("endpoints = [\"http://h:1\"]\nsecret = 1", "unknown field"),
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains(key), "{bad}: {e}");
        }
    }
}
