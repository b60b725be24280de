//! The policy as operators write it: `[[role]]` tables (with `[[role.auto_approve]]` rules) in
//! jitd.toml and in drop-in files `<config>.d/*.toml` (e.g. /etc/jit/jitd.toml.d/web.toml),
//! read in name order. Every mistake is an error naming the file, line and key, so a typo
//! never silently widens access; names that only the host can check (groups, users, programs)
//! are returned as [`Mention`]s for `jitd check-config` to look up.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use regex::{Regex, RegexBuilder};
use serde::Deserialize;
use toml::Spanned;

use crate::config::error::ConfigError;
use crate::core::command_pattern::CommandPattern;
use crate::core::fleet::host_pattern::HostPattern;
use crate::core::policy::{AutoRule, Defaults, FleetOffline, Policy, Role};
use crate::core::recording::Record;
use crate::core::time_window::{parse_day, Hours, Schedule};

/// Most roles one policy may hold; a bound on what every request is matched against.
const MAX_ROLES: usize = 1000;
/// Compiled size limit of `reason_pattern` and `ticket_pattern`.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleSpec {
    name: Spanned<String>,
    #[serde(default)]
    commands: Vec<Spanned<String>>,
    #[serde(default)]
    ssh: bool,
    #[serde(default)]
    requester_groups: Vec<Spanned<String>>,
    #[serde(default)]
    requester_users: Vec<Spanned<String>>,
    /// Default: the global `approver_groups`.
    #[serde(default)]
    approver_groups: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    approvals: Option<Spanned<u32>>,
    #[serde(default)]
    self_approval: bool,
    #[serde(default = "yes")]
    deny_ends: bool,
    #[serde(default)]
    default_duration: Option<Spanned<String>>,
    #[serde(default)]
    max_duration: Option<Spanned<String>>,
    /// Default: the global `require_reason`.
    #[serde(default)]
    require_reason: Option<bool>,
    #[serde(default)]
    reason_pattern: Option<Spanned<String>>,
    #[serde(default)]
    ticket_pattern: Option<Spanned<String>>,
    #[serde(default)]
    break_glass: bool,
    #[serde(default)]
    auto_approve: Vec<RuleSpec>,
    /// Host-name globs the role applies to (default: every host).
    #[serde(default)]
    hosts: Vec<Spanned<String>>,
    /// Default: the global `record`.
    #[serde(default)]
    record: Option<Spanned<String>>,
    /// `"keep"` (default) or `"end"`.
    #[serde(default)]
    fleet_offline: Option<Spanned<String>>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    name: Spanned<String>,
    #[serde(default)]
    days: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    hours: Option<Spanned<String>>,
    #[serde(default)]
    timezone: Option<Spanned<String>>,
    #[serde(default)]
    groups: Vec<Spanned<String>>,
    #[serde(default)]
    commands: Vec<Spanned<String>>,
    #[serde(default)]
    max_duration: Option<Spanned<String>>,
}

/// A drop-in file holds roles and nothing else.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DropIn {
    #[serde(default)]
    role: Vec<RoleSpec>,
}

/// Where a file's roles came from, for error messages.
pub struct Source {
    pub file: PathBuf,
    pub text: String,
    pub roles: Vec<RoleSpec>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MentionKind {
    Group,
    User,
    Program,
}

/// A name the policy relies on that only the host can confirm.
#[derive(Debug, Clone)]
pub struct Mention {
    pub file: PathBuf,
    pub line: usize,
    pub key: &'static str,
    pub kind: MentionKind,
    pub name: String,
}

/// The directory of drop-ins for a config file: `/etc/jit/jitd.toml` → `/etc/jit/jitd.toml.d`.
pub fn drop_in_dir(config: &Path) -> PathBuf {
    let mut s = config.as_os_str().to_owned();
    s.push(".d");
    PathBuf::from(s)
}

/// Whoever can write a drop-in can grant themselves root: refuse one that anybody but
/// jitd's own user (root) could have written.
fn check_owner(path: &Path) -> Result<(), ConfigError> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).map_err(|e| ConfigError {
        file: path.to_path_buf(),
        message: format!("cannot read: {e}"),
    })?;
    if meta.uid() != nix::unistd::geteuid().as_raw() || meta.mode() & 0o022 != 0 {
        return Err(ConfigError {
            file: path.to_path_buf(),
            message: "must be owned by root and writable by nobody else (whoever can write the policy can grant themselves root): chown root and chmod go-w".into(),
        });
    }
    Ok(())
}

/// Reads every `*.toml` in `dir` (none if it does not exist), in name order.
pub fn read_drop_ins(dir: &Path) -> Result<Vec<Source>, ConfigError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(ConfigError {
                file: dir.to_path_buf(),
                message: format!("cannot read the drop-in directory: {e}"),
            })
        }
    };
    check_owner(dir)?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|file| {
            let err = |message: String| ConfigError {
                file: file.clone(),
                message,
            };
            check_owner(&file)?;
            let text =
                std::fs::read_to_string(&file).map_err(|e| err(format!("cannot read: {e}")))?;
            let parsed: DropIn = toml::from_str(&text).map_err(|e| {
                err(format!(
                    "{e}(a drop-in holds only [[role]] tables; global settings go in the main file)"
                ))
            })?;
            Ok(Source {
                file: file.clone(),
                text,
                roles: parsed.role,
            })
        })
        .collect()
}

/// The policy and the names it mentions.
pub struct Built {
    pub policy: Policy,
    pub mentions: Vec<Mention>,
}

struct Ctx<'a> {
    file: &'a Path,
    text: &'a str,
    mentions: Vec<Mention>,
}

impl Ctx<'_> {
    fn line(&self, span: std::ops::Range<usize>) -> usize {
        let end = span.start.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1
    }

    fn err<T>(&self, at: &Spanned<T>, key: &str, message: impl std::fmt::Display) -> ConfigError {
        ConfigError {
            file: self.file.to_path_buf(),
            message: format!("line {}: key `{key}`: {message}", self.line(at.span())),
        }
    }

    fn mention(&mut self, at: &Spanned<String>, key: &'static str, kind: MentionKind) {
        self.mentions.push(Mention {
            file: self.file.to_path_buf(),
            line: self.line(at.span()),
            key,
            kind,
            name: at.get_ref().clone(),
        });
    }

    fn duration(&self, at: &Spanned<String>, key: &str) -> Result<Duration, ConfigError> {
        jit_proto::duration::parse(at.get_ref()).map_err(|e| self.err(at, key, e))
    }

    fn regex(&self, at: &Spanned<String>, key: &str) -> Result<Regex, ConfigError> {
        RegexBuilder::new(at.get_ref())
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map_err(|e| self.err(at, key, format!("invalid regex: {e}")))
    }

    fn name(&self, at: &Spanned<String>, key: &str) -> Result<String, ConfigError> {
        let n = at.get_ref();
        if n.is_empty()
            || n.len() > 64
            || !n
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            return Err(self.err(
                at,
                key,
                format!("{n:?} is not a valid name (1-64 characters: letters, digits, . _ -)"),
            ));
        }
        Ok(n.clone())
    }

    fn names(
        &mut self,
        list: &[Spanned<String>],
        key: &'static str,
        kind: MentionKind,
    ) -> Result<Vec<String>, ConfigError> {
        list.iter()
            .map(|g| {
                if g.get_ref().is_empty() {
                    return Err(self.err(g, key, "empty name"));
                }
                self.mention(g, key, kind);
                Ok(g.get_ref().clone())
            })
            .collect()
    }

    fn patterns(
        &mut self,
        list: &[Spanned<String>],
        key: &'static str,
    ) -> Result<Vec<CommandPattern>, ConfigError> {
        list.iter()
            .map(|c| {
                let p = CommandPattern::parse(c.get_ref()).map_err(|e| self.err(c, key, e))?;
                if let CommandPattern::Args(words) = &p {
                    if !words[0].contains(['*', '?', '[']) {
                        let program = Spanned::new(c.span(), words[0].clone());
                        self.mention(&program, key, MentionKind::Program);
                    }
                }
                Ok(p)
            })
            .collect()
    }

    fn role(&mut self, spec: &RoleSpec, defaults: &Defaults) -> Result<Role, ConfigError> {
        let name = self.name(&spec.name, "role.name")?;
        let at = &spec.name;
        if spec.commands.is_empty() && !spec.ssh {
            return Err(self.err(
                at,
                "role.commands",
                format!(
                    "role {name} grants nothing: list commands (or \"ALL\") and/or set ssh = true"
                ),
            ));
        }
        if spec.requester_groups.is_empty() && spec.requester_users.is_empty() {
            return Err(self.err(at, "role.requester_groups", format!("role {name} says nobody may request it: set requester_groups and/or requester_users")));
        }
        let commands = self.patterns(&spec.commands, "role.commands")?;
        let requester_groups = self.names(
            &spec.requester_groups,
            "role.requester_groups",
            MentionKind::Group,
        )?;
        let requester_users = self.names(
            &spec.requester_users,
            "role.requester_users",
            MentionKind::User,
        )?;
        let approver_groups = match &spec.approver_groups {
            Some(list) => self.names(list, "role.approver_groups", MentionKind::Group)?,
            None => defaults.approver_groups.clone(),
        };
        let approvals = match &spec.approvals {
            None => 1,
            Some(n) if (1..=16).contains(n.get_ref()) => *n.get_ref(),
            Some(n) => return Err(self.err(n, "role.approvals", "must be between 1 and 16")),
        };
        let max_duration = match &spec.max_duration {
            Some(d) => self.duration(d, "role.max_duration")?,
            None if spec.break_glass => {
                return Err(self.err(
                    at,
                    "role.max_duration",
                    format!("break-glass role {name} needs its own short max_duration"),
                ))
            }
            None => defaults.max_duration,
        };
        let default_duration = match &spec.default_duration {
            Some(d) => {
                let v = self.duration(d, "role.default_duration")?;
                if v > max_duration {
                    return Err(self.err(
                        d,
                        "role.default_duration",
                        "longer than the role's max_duration",
                    ));
                }
                v
            }
            None => defaults.default_duration.min(max_duration),
        };
        if spec.break_glass && !spec.auto_approve.is_empty() {
            return Err(self.err(
                at,
                "role.auto_approve",
                format!("break-glass role {name} needs no approval rules: it is never approved"),
            ));
        }
        let reason_pattern = spec
            .reason_pattern
            .as_ref()
            .map(|p| self.regex(p, "role.reason_pattern"))
            .transpose()?;
        let ticket_pattern = spec
            .ticket_pattern
            .as_ref()
            .map(|p| self.regex(p, "role.ticket_pattern"))
            .transpose()?;
        let mut rule_names = HashSet::new();
        let mut auto_approve = Vec::new();
        for r in &spec.auto_approve {
            let rule = self.rule(r)?;
            if !rule_names.insert(rule.name.clone()) {
                return Err(self.err(
                    &r.name,
                    "role.auto_approve.name",
                    format!("rule {} is defined twice in role {name}", rule.name),
                ));
            }
            auto_approve.push(rule);
        }
        let hosts = spec
            .hosts
            .iter()
            .map(|h| {
                HostPattern::try_from(h.get_ref().clone()).map_err(|e| self.err(h, "role.hosts", e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let record = match &spec.record {
            Some(r) => Record::parse(r.get_ref()).map_err(|e| self.err(r, "role.record", e))?,
            None => defaults.record,
        };
        let fleet_offline = match &spec.fleet_offline {
            None => FleetOffline::Keep,
            Some(v) => match v.get_ref().as_str() {
                "keep" => FleetOffline::Keep,
                "end" => FleetOffline::End,
                _ => {
                    return Err(self.err(
                        v,
                        "role.fleet_offline",
                        "must be \"keep\" (go on enforcing while the fleet store is away) or \"end\" (end the role's fleet grants after [fleet] offline_grace)",
                    ))
                }
            },
        };
        Ok(Role {
            fleet_offline,
            hosts,
            record,
            name,
            commands,
            ssh: spec.ssh,
            requester_groups,
            requester_users,
            approver_groups,
            approvals,
            self_approval: spec.self_approval,
            deny_ends: spec.deny_ends,
            default_duration,
            max_duration,
            require_reason: spec.require_reason.unwrap_or(defaults.require_reason),
            reason_pattern,
            ticket_pattern,
            break_glass: spec.break_glass,
            auto_approve,
        })
    }

    fn rule(&mut self, spec: &RuleSpec) -> Result<AutoRule, ConfigError> {
        let name = self.name(&spec.name, "role.auto_approve.name")?;
        let days =
            match &spec.days {
                None => Vec::new(),
                Some(list) if list.get_ref().is_empty() => return Err(self.err(
                    list,
                    "role.auto_approve.days",
                    "an empty list means the rule never applies; leave `days` out for every day",
                )),
                Some(list) => list
                    .get_ref()
                    .iter()
                    .map(|d| {
                        parse_day(d.get_ref()).map_err(|e| self.err(d, "role.auto_approve.days", e))
                    })
                    .collect::<Result<_, _>>()?,
            };
        let hours = spec
            .hours
            .as_ref()
            .map(|h| {
                Hours::parse(h.get_ref()).map_err(|e| self.err(h, "role.auto_approve.hours", e))
            })
            .transpose()?;
        let zone = match &spec.timezone {
            None => chrono_tz::UTC,
            Some(z) => z.get_ref().parse().map_err(|_| {
                self.err(
                    z,
                    "role.auto_approve.timezone",
                    format!(
                        "unknown time zone {:?} (write an IANA name such as Europe/Berlin or UTC)",
                        z.get_ref()
                    ),
                )
            })?,
        };
        let max_duration = spec
            .max_duration
            .as_ref()
            .map(|d| self.duration(d, "role.auto_approve.max_duration"))
            .transpose()?;
        Ok(AutoRule {
            name,
            schedule: Schedule { days, hours, zone },
            groups: self.names(&spec.groups, "role.auto_approve.groups", MentionKind::Group)?,
            commands: self.patterns(&spec.commands, "role.auto_approve.commands")?,
            max_duration,
        })
    }
}

/// Builds the policy from the roles of every source, checking everything that can be checked
/// without looking at the host.
pub fn build(defaults: Defaults, sources: &[Source]) -> Result<Built, ConfigError> {
    let mut roles: Vec<Role> = Vec::new();
    let mut mentions = Vec::new();
    for source in sources {
        let mut ctx = Ctx {
            file: &source.file,
            text: &source.text,
            mentions: Vec::new(),
        };
        for spec in &source.roles {
            let role = ctx.role(spec, &defaults)?;
            if roles.iter().any(|r| r.name == role.name) {
                return Err(ctx.err(
                    &spec.name,
                    "role.name",
                    format!("role {} is defined twice", role.name),
                ));
            }
            if roles.len() >= MAX_ROLES {
                return Err(ctx.err(&spec.name, "role", format!("more than {MAX_ROLES} roles")));
            }
            roles.push(role);
        }
        mentions.append(&mut ctx.mentions);
    }
    for g in &defaults.approver_groups {
        mentions.push(Mention {
            file: PathBuf::new(),
            line: 0,
            key: "approver_groups",
            kind: MentionKind::Group,
            name: g.clone(),
        });
    }
    Ok(Built {
        policy: Policy {
            defaults,
            roles,
            host: None,
        },
        mentions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::config_file::Config;

    fn load(main: &str, drop_ins: &[(&str, &str)]) -> Result<Config, ConfigError> {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("jitd-policy-file-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("jitd.toml.d")).unwrap();
        std::fs::write(dir.join("jitd.toml"), main).unwrap();
        for (name, text) in drop_ins {
            std::fs::write(dir.join("jitd.toml.d").join(name), text).unwrap();
        }
        let result = Config::load(&dir.join("jitd.toml"), true);
        let _ = std::fs::remove_dir_all(&dir);
        result
    }

    const WEB: &str = r#"
[[role]]
name = "web-restart"
commands = ["/usr/bin/systemctl restart nginx", "/usr/bin/systemctl reload nginx"]
ssh = false
requester_groups = ["ops"]
approver_groups = ["ops-leads"]
approvals = 1
self_approval = false
default_duration = "15m"
max_duration = "1h"
reason_pattern = "^(INC|CHG)-[0-9]+"
break_glass = false

[[role.auto_approve]]
name = "business-hours"
days = ["mon", "tue", "wed", "thu", "fri"]
hours = "09:00-17:00"
timezone = "Europe/Berlin"
groups = ["ops"]
max_duration = "30m"
"#;

    #[test]
    fn the_documented_example_loads_from_the_main_file_and_drop_ins() {
        let c = load(
            "approver_groups = [\"admins\"]\n",
            &[
                ("10-web.toml", WEB),
                (
                    "20-db.toml",
                    "[[role]]\nname = \"db\"\nssh = true\nrequester_users = [\"carol\"]\n",
                ),
                ("README", "not toml"),
            ],
        )
        .unwrap();
        let p = &c.policy;
        assert_eq!(p.role_names(), vec!["web-restart", "db"]);
        let web = p.role("web-restart").unwrap();
        assert_eq!(web.max_duration, Duration::from_secs(3600));
        assert_eq!(web.auto_approve[0].schedule.zone, chrono_tz::Europe::Berlin);
        assert!(web.deny_ends);
        // Unset approver groups fall back to the global ones.
        assert_eq!(
            p.role("db").unwrap().approver_groups,
            vec!["admins".to_string()]
        );
        assert!(c
            .mentions
            .iter()
            .any(|m| m.name == "ops-leads" && m.line == 7 && m.file.ends_with("10-web.toml")));
        // Fleet grants go on while the store is away unless a role says otherwise.
        assert_eq!(web.fleet_offline, FleetOffline::Keep);
        let strict = load(
            "",
            &[(
                "web.toml",
                &WEB.replace(
                    "break_glass = false",
                    "break_glass = false\nfleet_offline = \"end\"",
                ),
            )],
        )
        .unwrap();
        assert_eq!(
            strict.policy.role("web-restart").unwrap().fleet_offline,
            FleetOffline::End
        );
    }

    #[test]
    fn a_drop_in_others_could_write_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("jitd-policy-perm-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("web.toml");
        std::fs::write(&file, WEB).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).unwrap();
        let e = read_drop_ins(&dir).err().expect("refused");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let fine = read_drop_ins(&dir).map(|s| s.len());
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            e.to_string().contains("web.toml") && e.message.contains("writable by nobody else"),
            "{e}"
        );
        assert_eq!(fine.unwrap(), 1);
    }

    #[test]
    fn mistakes_name_the_file_line_and_key() {
        let cases: Vec<(String, &str, &str)> = vec![
            (
                WEB.replace("ssh = false", "ssh = false\nshh = true"),
                "line 6",
                "shh",
            ),
            (
                WEB.replace("\"^(INC|CHG)-[0-9]+\"", "\"^(INC\""),
                "line 12",
                "role.reason_pattern",
            ),
            (
                WEB.replace("/usr/bin/systemctl reload", "systemctl reload"),
                "line 4",
                "role.commands",
            ),
            (
                WEB.replace("09:00-17:00", "17:00-17:00"),
                "line 18",
                "role.auto_approve.hours",
            ),
            (
                WEB.replace("Europe/Berlin", "Europe/Atlantis"),
                "line 19",
                "role.auto_approve.timezone",
            ),
            (
                WEB.replace("\"mon\", \"tue\", \"wed\", \"thu\", \"fri\"", ""),
                "line 17",
                "role.auto_approve.days",
            ),
            (
                WEB.replace("\"fri\"", "\"friday\""),
                "line 17",
                "role.auto_approve.days",
            ),
            (
                WEB.replace("approvals = 1", "approvals = 0"),
                "line 8",
                "role.approvals",
            ),
            (
                WEB.replace("default_duration = \"15m\"", "default_duration = \"2h\""),
                "line 10",
                "role.default_duration",
            ),
            (
                WEB.replace("requester_groups = [\"ops\"]", ""),
                "line 3",
                "requester",
            ),
            (
                WEB.replace("break_glass = false", "break_glass = true"),
                "line 3",
                "role.auto_approve",
            ),
            (
                format!("{WEB}{}", WEB.split("[[role.auto").next().unwrap()),
                "line 24",
                "defined twice",
            ),
            (
                WEB.replace(
                    "break_glass = false",
                    "break_glass = false\nfleet_offline = \"stop\"",
                ),
                "line 14",
                "role.fleet_offline",
            ),
        ];
        for (text, line, key) in cases {
            let e = load("", &[("web.toml", &text)]).unwrap_err();
            let shown = e.to_string();
            assert!(
                shown.contains("web.toml") && shown.contains(line) && shown.contains(key),
                "{shown}"
            );
        }
        let e = load("approver_groups = []\n[[role]]\nname = \"x\"\nssh = true\nrequester_users = [\"a\"]\ncolour = 1\n", &[]).unwrap_err();
        assert!(
            e.to_string().contains("jitd.toml")
                && e.to_string().contains("line 6")
                && e.to_string().contains("colour"),
            "{e}"
        );
        let e = load("", &[("x.toml", "socket = \"/tmp/x\"\n")]).unwrap_err();
        assert!(
            e.to_string().contains("x.toml") && e.to_string().contains("socket"),
            "{e}"
        );
    }
}
