//! jitd's configuration file (TOML). Unknown keys and bad values are errors that name the
//! file, line and key, so a typo never silently changes policy.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

pub use crate::config::error::ConfigError;
use crate::config::fleet_table::{kernel_host_name, FleetConfig};
use crate::config::notifier_tables::{NotifierConfig, UrlSource};
use crate::config::policy_file::{self, Mention, RoleSpec, Source};
use crate::config::root_only;
use crate::core::policy::{Defaults, Policy};
use crate::core::recording::{Record, RecordingsDir};

pub const DEFAULT_CONFIG: &str = "/etc/jit/jitd.toml";
pub const CONFIG_ENV: &str = "JITD_CONFIG";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub socket: PathBuf,
    pub state_dir: PathBuf,
    pub sudoers_dir: PathBuf,
    /// Members of these groups (and root) decide on requests.
    pub approver_groups: Vec<String>,
    #[serde(deserialize_with = "human_duration")]
    pub default_duration: Duration,
    #[serde(deserialize_with = "human_duration")]
    pub max_duration: Duration,
    /// How long a request may wait for a decision before it times out.
    #[serde(deserialize_with = "human_duration")]
    pub pending_ttl: Duration,
    /// How long ended requests stay in memory and in the state directory (`jitd show`,
    /// `jitd list --all`); the audit log keeps the trail for good.
    #[serde(deserialize_with = "human_duration")]
    pub retention: Duration,
    pub require_reason: bool,
    /// Between SIGTERM and SIGKILL when a grant's sessions are ended.
    #[serde(deserialize_with = "human_duration")]
    pub kill_grace: Duration,
    /// How long before expiry the grant's terminals are warned.
    #[serde(deserialize_with = "human_duration")]
    pub warn_before: Duration,
    /// Name of the cgroup (under the cgroup v2 root) that holds one child cgroup per grant.
    /// jitd ends every process in a child whose grant is not active, so two daemons on one
    /// host must not share it.
    pub cgroup: String,
    /// Concurrent connections, all users together.
    pub max_connections: usize,
    /// Concurrent connections of one non-root user. Root (the PAM module) is bounded only by
    /// `max_connections`, and a share of that is kept free for it.
    pub max_connections_per_uid: usize,
    /// `[[role]]` tables of the main file; drop-ins add more (see `policy_file`).
    #[serde(rename = "role")]
    pub roles: Vec<RoleSpec>,
    /// Built from the roles and the global settings above by `load` / `parse`.
    #[serde(skip)]
    pub policy: Policy,
    /// Groups, users and programs the policy names, for `jitd check-config`.
    #[serde(skip)]
    pub mentions: Vec<Mention>,
    /// The file this was loaded from, for reloads.
    #[serde(skip)]
    pub source: Option<PathBuf>,
    /// Webhooks told of requests, decisions and expiry (`[[notifier]]` tables).
    #[serde(rename = "notifier")]
    pub notifiers: Vec<NotifierConfig>,
    /// Approvers logged in on the host get a one-line notice of a new request.
    pub notify_terminals: bool,
    /// The login records (utmp) that say who is logged in on which terminal.
    pub utmp_file: PathBuf,
    /// `audit.log` is rotated before an append would make it larger than this many bytes
    /// (`"off"`: never by size). Written like `64MiB`.
    #[serde(deserialize_with = "rotate_size")]
    pub audit_rotate_size: Option<u64>,
    /// `audit.log` is rotated once its first record is this old (`"off"`, the default: never
    /// by age).
    #[serde(deserialize_with = "rotate_age")]
    pub audit_rotate_age: Option<Duration>,
    /// Where to rewrite Prometheus metrics every 15 s (node_exporter's textfile collector);
    /// none by default (`jitd metrics` prints them on demand).
    pub metrics_textfile: Option<PathBuf>,
    /// Fleet mode (`[fleet]`): requests, approvals and ends shared through etcd.
    pub fleet: Option<FleetConfig>,
    /// What grants are recorded with when their role does not say (and grants without a role):
    /// `"output"` (default), `"all"` (input too, passwords included) or `"off"`.
    #[serde(deserialize_with = "record_mode")]
    pub record: Record,
    /// Root-only directory holding one directory of recordings per grant.
    pub recordings_dir: PathBuf,
    /// Members of these groups (and root) may replay recordings and read the audit trail.
    pub auditor_groups: Vec<String>,
}

/// Default of `recordings_dir`.
pub const DEFAULT_RECORDINGS_DIR: &str = "/var/log/jit/sessions";

/// Default of `audit_rotate_size`: a few hundred thousand records per file.
pub const DEFAULT_AUDIT_ROTATE_SIZE: u64 = 64 << 20;
/// Smallest `audit_rotate_size`: a file holds at least a few records.
const MIN_AUDIT_ROTATE_SIZE: u64 = 4 << 10;

impl Default for Config {
    fn default() -> Self {
        Config {
            socket: PathBuf::from(jit_proto::DEFAULT_SOCKET),
            state_dir: PathBuf::from("/var/lib/jitd"),
            sudoers_dir: PathBuf::from("/etc/sudoers.d"),
            approver_groups: Vec::new(),
            default_duration: Duration::from_secs(15 * 60),
            max_duration: Duration::from_secs(4 * 3600),
            pending_ttl: Duration::from_secs(3600),
            retention: Duration::from_secs(30 * 24 * 3600),
            require_reason: true,
            kill_grace: Duration::from_secs(10),
            warn_before: Duration::from_secs(5 * 60),
            cgroup: "jit".into(),
            max_connections: 256,
            max_connections_per_uid: 16,
            roles: Vec::new(),
            policy: Policy::open(Defaults {
                approver_groups: Vec::new(),
                default_duration: Duration::from_secs(15 * 60),
                max_duration: Duration::from_secs(4 * 3600),
                require_reason: true,
                record: Record::CONFIGURED_DEFAULT,
            }),
            mentions: Vec::new(),
            source: None,
            notifiers: Vec::new(),
            notify_terminals: true,
            utmp_file: PathBuf::from("/var/run/utmp"),
            audit_rotate_size: Some(DEFAULT_AUDIT_ROTATE_SIZE),
            audit_rotate_age: None,
            metrics_textfile: None,
            fleet: None,
            record: Record::CONFIGURED_DEFAULT,
            recordings_dir: PathBuf::from(DEFAULT_RECORDINGS_DIR),
            auditor_groups: Vec::new(),
        }
    }
}

fn human_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    jit_proto::duration::parse(&text).map_err(serde::de::Error::custom)
}

fn record_mode<'de, D: Deserializer<'de>>(d: D) -> Result<Record, D::Error> {
    let text = String::deserialize(d)?;
    Record::parse(&text).map_err(serde::de::Error::custom)
}

fn rotate_age<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let text = String::deserialize(d)?;
    if text == "off" {
        return Ok(None);
    }
    jit_proto::duration::parse(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

fn rotate_size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let text = String::deserialize(d)?;
    if text == "off" {
        return Ok(None);
    }
    parse_size(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// `512KiB`, `64MiB`, `1GiB` or a number of bytes with `B`; at least
/// [`MIN_AUDIT_ROTATE_SIZE`]. Binary units only, spelled out, so `64M` cannot be read two ways.
fn parse_size(text: &str) -> Result<u64, String> {
    let bad = |why: &str| {
        format!("invalid size {text:?}: {why} (write e.g. 64MiB, 512KiB, 1GiB or \"off\")")
    };
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    let scale: u64 = match unit {
        "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "" => return Err(bad("a number without a unit")),
        _ => return Err(bad(&format!("unknown unit {unit:?}"))),
    };
    let number: u64 = number.parse().map_err(|_| bad("no number"))?;
    let bytes = number.checked_mul(scale).ok_or_else(|| bad("too large"))?;
    if bytes < MIN_AUDIT_ROTATE_SIZE {
        return Err(bad("smaller than 4KiB"));
    }
    Ok(bytes)
}

impl Config {
    /// This host's name: `[fleet] host_name`, or the kernel's. Roles' `hosts` match it.
    pub fn host_name(&self) -> String {
        self.fleet
            .as_ref()
            .and_then(|f| f.host_name.clone())
            .unwrap_or_else(kernel_host_name)
    }

    /// The global settings that apply without roles.
    pub fn defaults(&self) -> Defaults {
        Defaults {
            approver_groups: self.approver_groups.clone(),
            default_duration: self.default_duration,
            max_duration: self.max_duration,
            require_reason: self.require_reason,
            record: self.record,
        }
    }

    /// Reads and validates `path` and the role drop-ins beside it (`<path>.d/*.toml`). A
    /// missing file at the default location yields the defaults (plus any drop-ins), so a
    /// fresh install starts; a missing file named explicitly is an error.
    ///
    /// As root, the file must be root's alone, and so must every directory above it
    /// ([`root_only`]): `JITD_CONFIG` may come from another user's environment (`su` without
    /// `-`), and whoever writes the configuration decides what root's jitd grants and which
    /// audit log `jitd audit verify` vouches for.
    pub fn load(path: &Path, explicit: bool) -> Result<Config, ConfigError> {
        let err = |message: String| ConfigError {
            file: path.to_path_buf(),
            message,
        };
        root_only::check(path).map_err(|e| err(not_root_only(&e, path, "configuration")))?;
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => String::new(),
            Err(e) => return Err(err(format!("cannot read: {e}"))),
        };
        let mut config = Config::parse_globals(&text).map_err(err)?;
        let mut sources = vec![Source {
            file: path.to_path_buf(),
            text,
            roles: std::mem::take(&mut config.roles),
        }];
        sources.extend(policy_file::read_drop_ins(&policy_file::drop_in_dir(path))?);
        let built = policy_file::build(config.defaults(), &sources)?;
        config.policy = built.policy;
        config.policy.host = Some(config.host_name());
        config.mentions = built.mentions;
        config.source = Some(path.to_path_buf());
        Ok(config)
    }

    /// One file's text, without drop-ins.
    #[cfg(test)]
    pub fn parse(text: &str) -> Result<Config, String> {
        let mut config = Config::parse_globals(text)?;
        let roles = std::mem::take(&mut config.roles);
        let built = policy_file::build(
            config.defaults(),
            &[Source {
                file: PathBuf::new(),
                text: text.to_string(),
                roles,
            }],
        )
        .map_err(|e| e.message)?;
        config.policy = built.policy;
        Ok(config)
    }

    /// Refuses a notifier `url` that looks secret ([`WebhookUrl::looks_secret`]) written inline
    /// in a configuration file that users other than root can read: any of them could post
    /// fake requests and approvals into the approvers' channel. Such a URL goes in a
    /// root-only `url_file`. `jitd check-config` and `jitd serve` apply it; `jitd explain`,
    /// `audit` and `report` do not (they must keep working while this is being fixed).
    ///
    /// [`WebhookUrl::looks_secret`]: crate::config::notifier_tables::WebhookUrl::looks_secret
    pub fn check_inline_secrets(&self) -> Result<(), ConfigError> {
        let Some(file) = &self.source else {
            return Ok(());
        };
        let exposed: Vec<String> = self
            .notifiers
            .iter()
            .enumerate()
            .filter_map(|(n, c)| match &c.url {
                UrlSource::Inline(url) if url.looks_secret() => {
                    Some(format!("[[notifier]] {} ({}/…)", n + 1, url.origin()))
                }
                _ => None,
            })
            .collect();
        if exposed.is_empty() {
            return Ok(());
        }
        let readable = match std::fs::metadata(file) {
            Ok(meta) => {
                use std::os::unix::fs::MetadataExt;
                (meta.uid() != 0 || meta.mode() & 0o044 != 0).then(|| {
                    format!(
                        "mode {:04o}, owner uid {}",
                        meta.mode() & 0o7777,
                        meta.uid()
                    )
                })
            }
            Err(e) => Some(format!("who can read it cannot be checked: {e}")),
        };
        let Some(why) = readable else {
            return Ok(());
        };
        Err(ConfigError {
            file: file.clone(),
            message: format!(
                "inline secret URL: {} is written in this file, which users other than root \
                 can read ({why}), and its path or query may be its secret: anyone here could \
                 post fake requests and approvals to it. Move the URL into a root-only file \
                 (`install -m 600 /dev/null /etc/jit/webhook.url`, then put the URL in it), name \
                 that file with `url_file` instead of `url`, and have the webhook's URL replaced: \
                 it has been readable. (Making this file root-only, chmod 600, also passes, but \
                 then approvers cannot run `jitd explain`.)",
                exposed.join(", ")
            ),
        })
    }

    /// As root, the state directory must be root's alone, and every directory above it
    /// ([`root_only`]): `jitd audit`, `audit verify` and `report` read the trail from it, and
    /// a directory a user controls could hold a forged one. `jitd serve` checks the directory
    /// itself more closely when it opens it (`state_dir::prepare`); this adds the directories
    /// above.
    pub fn check_state_dir(&self) -> Result<(), ConfigError> {
        root_only::check(&self.state_dir).map_err(|e| ConfigError {
            file: self.source.clone().unwrap_or_default(),
            message: format!(
                "key `state_dir`: {}",
                not_root_only(&e, &self.state_dir, "state directory")
            ),
        })
    }

    fn parse_globals(text: &str) -> Result<Config, String> {
        let config: Config = toml::from_str(text).map_err(|e| e.to_string())?;
        config.validate()?;
        Ok(config)
    }

    /// Keys whose change a reload cannot apply (only the policy reloads).
    pub fn restart_only_changes(&self, new: &Config) -> Vec<&'static str> {
        let mut out = Vec::new();
        let mut differs = |key: &'static str, changed: bool| {
            if changed {
                out.push(key);
            }
        };
        differs("socket", self.socket != new.socket);
        differs("state_dir", self.state_dir != new.state_dir);
        differs("sudoers_dir", self.sudoers_dir != new.sudoers_dir);
        differs("pending_ttl", self.pending_ttl != new.pending_ttl);
        differs("retention", self.retention != new.retention);
        differs("kill_grace", self.kill_grace != new.kill_grace);
        differs("warn_before", self.warn_before != new.warn_before);
        differs("cgroup", self.cgroup != new.cgroup);
        differs(
            "max_connections",
            self.max_connections != new.max_connections,
        );
        differs(
            "max_connections_per_uid",
            self.max_connections_per_uid != new.max_connections_per_uid,
        );
        // Notifiers (and their token files) are set up once, at startup.
        differs("fleet", self.fleet != new.fleet);
        differs("notifier", self.notifiers != new.notifiers);
        differs(
            "notify_terminals",
            self.notify_terminals != new.notify_terminals,
        );
        differs("utmp_file", self.utmp_file != new.utmp_file);
        differs(
            "metrics_textfile",
            self.metrics_textfile != new.metrics_textfile,
        );
        differs(
            "audit_rotate_size",
            self.audit_rotate_size != new.audit_rotate_size,
        );
        differs(
            "audit_rotate_age",
            self.audit_rotate_age != new.audit_rotate_age,
        );
        // Drop-ins already installed name the directory; replays check the groups of start.
        differs("recordings_dir", self.recordings_dir != new.recordings_dir);
        differs("auditor_groups", self.auditor_groups != new.auditor_groups);
        out
    }

    fn validate(&self) -> Result<(), String> {
        if let Some(fleet) = &self.fleet {
            fleet.validate()?;
        }
        if self.default_duration > self.max_duration {
            return Err(format!(
                "key `default_duration` ({}) is longer than `max_duration` ({})",
                jit_proto::duration::format(self.default_duration),
                jit_proto::duration::format(self.max_duration)
            ));
        }
        for (key, path) in [
            ("socket", &self.socket),
            ("state_dir", &self.state_dir),
            ("sudoers_dir", &self.sudoers_dir),
            ("utmp_file", &self.utmp_file),
            ("recordings_dir", &self.recordings_dir),
        ]
        .into_iter()
        .chain(
            self.metrics_textfile
                .as_ref()
                .map(|p| ("metrics_textfile", p)),
        ) {
            if !path.is_absolute() {
                return Err(format!("key `{key}` must be an absolute path"));
            }
        }
        if self.retention.is_zero() || self.retention > Duration::from_secs(3650 * 86400) {
            return Err("key `retention` must be between 1s and 3650d".into());
        }
        if self.max_connections < 8 || self.max_connections_per_uid == 0 {
            return Err(
                "key `max_connections` must be at least 8 and `max_connections_per_uid` at least 1"
                    .into(),
            );
        }
        if self.cgroup.is_empty()
            || !self
                .cgroup
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err("key `cgroup` must be a plain name (letters, digits, - and _)".into());
        }
        if self.approver_groups.iter().any(|g| g.is_empty()) {
            return Err("key `approver_groups` contains an empty group name".into());
        }
        if self.auditor_groups.iter().any(|g| g.is_empty()) {
            return Err("key `auditor_groups` contains an empty group name".into());
        }
        RecordingsDir::parse(&self.recordings_dir)
            .map_err(|e| format!("key `recordings_dir`: {e}"))?;
        Ok(())
    }
}

/// The refusal of a configuration file or state directory that is not root's alone, saying
/// what to do: the usual cause is `JITD_CONFIG` from another user's environment.
fn not_root_only(e: &root_only::NotRootOnly, path: &Path, what: &str) -> String {
    let from_env = std::env::var_os(CONFIG_ENV).is_some();
    let env_hint = if from_env {
        format!(
            "{CONFIG_ENV} is set in your environment (to {:?}); if it came from another user's \
             environment (`su` without `-`), use `su -` or `unset {CONFIG_ENV}`. ",
            std::env::var_os(CONFIG_ENV).unwrap_or_default()
        )
    } else {
        String::new()
    };
    format!(
        "{e}: as root, jitd uses only a {what} that root alone can change (whoever can change \
         it can grant themselves root or forge the audit trail). {env_hint}If {} is the right \
         one, make it and the directories above it root's and not writable by others \
         (chown root:root, chmod go-w)",
        path.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_gives_safe_defaults() {
        let c = Config::parse("").unwrap();
        assert!(c.require_reason);
        assert_eq!(c.pending_ttl, Duration::from_secs(3600));
        assert_eq!(c.kill_grace, Duration::from_secs(10));
        assert_eq!(c.socket, PathBuf::from("/run/jitd/jitd.sock"));
    }

    #[test]
    fn durations_are_human() {
        let c = Config::parse("default_duration = \"1h30m\"\nmax_duration = \"8h\"").unwrap();
        assert_eq!(c.default_duration, Duration::from_secs(5400));
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_line_and_key() {
        let e = Config::parse("approver_groups = []\nmax_duraton = \"1h\"\n").unwrap_err();
        assert!(e.contains("line 2") && e.contains("max_duraton"), "{e}");
        let e = Config::parse("\n\npending_ttl = \"soon\"\n").unwrap_err();
        assert!(e.contains("line 3") && e.contains("soon"), "{e}");
        let e = Config::parse("default_duration = \"5h\"\nmax_duration = \"1h\"").unwrap_err();
        assert!(e.contains("default_duration"), "{e}");
        let e = Config::parse("state_dir = \"relative\"").unwrap_err();
        assert!(e.contains("state_dir"), "{e}");
    }

    #[test]
    fn audit_rotation_is_by_size_by_default_and_by_age_when_asked() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.audit_rotate_size, Some(64 << 20));
        assert_eq!(c.audit_rotate_age, None);
        let c = Config::parse("audit_rotate_size = \"512KiB\"\naudit_rotate_age = \"7d\"").unwrap();
        assert_eq!(c.audit_rotate_size, Some(512 << 10));
        assert_eq!(c.audit_rotate_age, Some(Duration::from_secs(7 * 86400)));
        let c = Config::parse("audit_rotate_size = \"off\"\naudit_rotate_age = \"off\"").unwrap();
        assert_eq!((c.audit_rotate_size, c.audit_rotate_age), (None, None));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("4096B"), Ok(4096));
        for bad in [
            "64M",
            "64",
            "MiB",
            "1KiB",
            "-1MiB",
            "99999999999999GiB",
            "64 MiB",
        ] {
            assert!(parse_size(bad).is_err(), "{bad} was accepted");
        }
        let e = Config::parse("\naudit_rotate_size = \"64MB\"\n").unwrap_err();
        assert!(e.contains("line 2") && e.contains("64MB"), "{e}");
    }

    fn scratch(tag: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("jitd-config-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        dir
    }

    /// The attack: root runs `jitd audit verify` after `su` (not `su -`) from alice, whose
    /// environment names her own configuration, whose state_dir holds her forged trail.
    #[test]
    fn as_root_a_configuration_or_state_dir_someone_else_owns_is_refused() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let dir = scratch("owner");
        let file = dir.join("jitd.toml");
        std::fs::write(&file, format!("state_dir = \"{}/state\"\n", dir.display())).unwrap();
        std::fs::create_dir(dir.join("state")).unwrap();
        let config = Config::load(&file, true).unwrap();
        config.check_state_dir().unwrap();

        std::os::unix::fs::chown(&file, Some(65534), None).unwrap();
        let e = Config::load(&file, true).unwrap_err().to_string();
        assert!(
            e.contains("owned by uid 65534") && e.contains("chown root:root"),
            "{e}"
        );
        std::os::unix::fs::chown(&file, Some(0), None).unwrap();

        std::os::unix::fs::chown(dir.join("state"), Some(65534), None).unwrap();
        let config = Config::load(&file, true).unwrap();
        let e = config.check_state_dir().unwrap_err().to_string();
        assert!(
            e.contains("state_dir") && e.contains("owned by uid 65534"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_inline_secret_url_is_refused_in_a_file_others_can_read() {
        use std::os::unix::fs::PermissionsExt;
        let dir = scratch("inline");
        let file = dir.join("jitd.toml");
        let write = |url: &str, mode: u32| {
            std::fs::write(
                &file,
                format!("[[notifier]]\nurl = \"{url}\"\nformat = \"slack\"\n"),
            )
            .unwrap();
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
            Config::load(&file, true).unwrap()
        };
        let slack = "https://hooks.slack.com/services/T0/B0/s3cr3t";
        for mode in [0o644, 0o640, 0o604] {
            let e = write(slack, mode)
                .check_inline_secrets()
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("inline secret URL") && e.contains("url_file"),
                "{e}"
            );
            assert!(
                e.contains("hooks.slack.com") && !e.contains("s3cr3t"),
                "{e}"
            );
        }
        // Root's alone: inline is allowed (approvers then cannot run `jitd explain`).
        assert!(write(slack, 0o600).check_inline_secrets().is_ok());
        // A bare origin carries no secret.
        assert!(write("https://alerts.example.com/", 0o644)
            .check_inline_secrets()
            .is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
