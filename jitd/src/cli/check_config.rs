//! `jitd check-config`: validates the configuration and its policy (errors, exit 4), then
//! warns about what only this host can tell: groups and users that do not exist, programs
//! that are not installed, and roles that overlap.

use std::path::Path;
use std::process::ExitCode;

use nix::unistd::{Group, User};

use crate::config::config_file::Config;
use crate::config::policy_file::{Mention, MentionKind};

pub fn run(file: &Path) -> ExitCode {
    let config = match Config::load(file, true) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("jitd: invalid configuration: {e}");
            return ExitCode::from(4);
        }
    };
    let mut warnings: Vec<String> = config
        .mentions
        .iter()
        .filter_map(|m| missing(m).map(|what| located(m, file, &what)))
        .collect();
    warnings.extend(config.policy.overlaps());
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
