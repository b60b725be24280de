//! `jitd check-config`: validates the configuration and its policy (errors, exit 4), then
//! warns about what only this host can tell: groups and users that do not exist, programs
//! that are not installed, and roles that overlap. It refuses (exit 4) what `jitd serve` would
//! refuse at startup: a secret-looking notifier URL inline in a file others can read, and (as
//! root) a `url_file` or `token_file` that is not root's alone or holds no valid value. It
//! runs as the unit's ExecStartPre, so what it refuses keeps jitd from starting.

use std::path::Path;
use std::process::ExitCode;

use nix::unistd::{Group, User};

use crate::config::config_file::Config;
use crate::config::policy_file::{Mention, MentionKind};
use crate::config::secret_file;
use crate::shell::fleet::allowed_signers_file;

pub fn run(file: &Path) -> ExitCode {
    let config = match Config::load(file, true) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("jitd: invalid configuration: {e}");
            return ExitCode::from(4);
        }
    };
    if let Err(e) = config.check_inline_secrets() {
        eprintln!("jitd: invalid configuration: {e}");
        return ExitCode::from(4);
    }
    let (mut secret_errors, mut warnings) = secret_files(&config);
    fleet_files(&config, &mut secret_errors, &mut warnings);
    if !secret_errors.is_empty() {
        for e in &secret_errors {
            eprintln!("jitd: invalid configuration: {}: {e}", file.display());
        }
        return ExitCode::from(4);
    }
    warnings.extend(
        config
            .mentions
            .iter()
            .filter_map(|m| missing(m).map(|what| located(m, file, &what))),
    );
    warnings.extend(config.policy.overlaps());
    warnings.extend(unrecorded_ssh(
        &config,
        Path::new(crate::core::tlog::TLOG_REC_SESSION).exists(),
    ));
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    println!(
        "{}: configuration is valid ({} role(s), {} warning(s))",
        file.display(),
        config.policy.roles.len(),
        warnings.len()
    );
    ExitCode::SUCCESS
}

/// `[fleet]`: the allowed_signers file and the etcd password as `jitd serve` reads them (it
/// refuses to start without them).
fn fleet_files(config: &Config, errors: &mut Vec<String>, warnings: &mut Vec<String>) {
    let Some(fleet) = &config.fleet else {
        return;
    };
    match allowed_signers_file::load_with_warnings(&fleet.allowed_signers) {
        Ok((signers, found)) => {
            if signers.is_empty() {
                warnings.push(format!(
                    "[fleet] allowed_signers {} lists no usable key: no fleet approval can count on this host",
                    fleet.allowed_signers.display()
                ));
            }
            warnings.extend(
                found
                    .into_iter()
                    .map(|w| format!("[fleet] allowed_signers: {w}")),
            );
        }
        Err(e) => errors.push(format!("[fleet] allowed_signers: {e}")),
    }
    if let (Some(key), true) = (&fleet.key_file, nix::unistd::geteuid().is_root()) {
        if let Err(e) = secret_file::check_private("key_file", key) {
            errors.push(format!("[fleet] {e}"));
        }
    }
    if let Some(path) = &fleet.password_file {
        if nix::unistd::geteuid().is_root() {
            if let Err(e) = secret_file::read("password_file", "one password", path) {
                errors.push(format!("[fleet] {e}"));
            }
        } else {
            warnings.push(format!(
                "[fleet] password_file {} not checked: only root can read it (run check-config as root)",
                path.display()
            ));
        }
    }
}

/// SSH grants are recorded with tlog where it is installed: without it, an SSH grant of a
/// recording role is not recorded, and an auditor must not assume it was.
fn unrecorded_ssh(config: &Config, tlog_installed: bool) -> Option<String> {
    if tlog_installed {
        return None;
    }
    let roles: Vec<String> = config
        .policy
        .roles
        .iter()
        .filter(|r| r.ssh && !r.record.is_off())
        .map(|r| format!("{} (record = {:?})", r.name, r.record.as_str()))
        .collect();
    if roles.is_empty() {
        return None;
    }
    Some(format!(
        "SSH grants of recording roles are not recorded: tlog is not installed (apt-get \
         install tlog, then restart jitd); roles: {}",
        roles.join(", ")
    ))
}

/// Reads every notifier's `url_file` and `token_file` as `jitd serve` will. They are root's
/// alone, so only root can: as anyone else they are warnings (not checked), not errors.
fn secret_files(config: &Config) -> (Vec<String>, Vec<String>) {
    let (mut errors, mut warnings) = (Vec::new(), Vec::new());
    let root = nix::unistd::geteuid().is_root();
    for (n, c) in config.notifiers.iter().enumerate() {
        let which = format!("[[notifier]] {} ({})", n + 1, c.url.shown());
        if !root {
            for (key, path) in c.secret_files() {
                warnings.push(format!(
                    "{which}: {key} {} not checked: only root can read it (run check-config as root)",
                    path.display()
                ));
            }
            continue;
        }
        if let Err(e) = c.resolve_url() {
            errors.push(format!("{which}: {e}"));
        }
        if let Some(path) = &c.token_file {
            if let Err(e) = secret_file::read("token_file", "one token", path) {
                errors.push(format!("{which}: {e}"));
            }
        }
    }
    (errors, warnings)
}

fn missing(m: &Mention) -> Option<String> {
    let absent = match m.kind {
        MentionKind::Group => !matches!(Group::from_name(&m.name), Ok(Some(_))),
        MentionKind::User => !matches!(User::from_name(&m.name), Ok(Some(_))),
        MentionKind::Program => !Path::new(&m.name).exists(),
    };
    absent.then(|| {
        let kind = match m.kind {
            MentionKind::Group => "group",
            MentionKind::User => "user",
            MentionKind::Program => "program",
        };
        format!("there is no {kind} {:?} on this host", m.name)
    })
}

fn located(m: &Mention, main: &Path, what: &str) -> String {
    if m.line == 0 {
        format!("{}: key `{}`: {what}", main.display(), m.key)
    } else {
        format!(
            "{}: line {}: key `{}`: {what}",
            m.file.display(),
            m.line,
            m.key
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_grants_of_recording_roles_are_unrecorded_only_without_tlog() {
        let config = Config::parse(
            "[[role]]\nname = \"shell\"\nssh = true\nrequester_users = [\"root\"]\nrecord = \"all\"\n\
             [[role]]\nname = \"quiet\"\nssh = true\nrequester_users = [\"root\"]\nrecord = \"off\"\n",
        )
        .unwrap();
        let said = unrecorded_ssh(&config, false).unwrap();
        assert!(said.contains("tlog is not installed"), "{said}");
        assert!(said.contains("shell (record = \"all\")"), "{said}");
        assert!(!said.contains("quiet"), "{said}");
        assert_eq!(unrecorded_ssh(&config, true), None);
    }
}
