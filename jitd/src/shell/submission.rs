//! Checks what a requester sent before anything is recorded: every field bounded, the command
//! an absolute, normalised path to an existing executable, the duration within policy.

use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path};

use chrono::Duration;
use jit_proto::{NewRequest, Target};

use crate::config::Config;

pub const MAX_ARGS: usize = 64;
pub const MAX_ARG_BYTES: usize = 1024;
pub const MAX_REASON_BYTES: usize = 1000;
pub const MAX_TICKET_BYTES: usize = 128;

/// A request that passed validation; identity and policy are added by the caller.
#[derive(Debug)]
pub struct Checked {
    pub target: Target,
    pub duration: Duration,
    pub reason: String,
    pub ticket: Option<String>,
}

pub fn check(req: &NewRequest, config: &Config) -> Result<Checked, String> {
    let target = match &req.target {
        Target::Ssh => Target::Ssh,
        Target::Sudo { command } => Target::Sudo {
            command: check_command(command)?,
        },
    };
    let max = config.max_duration;
    let duration = match req.duration_secs {
        None => config.default_duration,
        Some(0) => return Err("the duration must be longer than zero".into()),
        Some(s) if s > max.as_secs() => {
            return Err(format!(
                "{} is longer than the maximum of {}: ask for less (--for {})",
                jit_proto::duration::format(std::time::Duration::from_secs(s)),
                jit_proto::duration::format(max),
                jit_proto::duration::format(max)
            ))
        }
        Some(s) => std::time::Duration::from_secs(s),
    };
    let reason = req.reason.clone().unwrap_or_default().trim().to_string();
    if reason.is_empty() && config.require_reason {
        return Err("a reason is required: pass --reason \"why you need this\"".into());
    }
    if reason.len() > MAX_REASON_BYTES {
        return Err(format!(
            "the reason is longer than {MAX_REASON_BYTES} bytes"
        ));
    }
    let ticket = req.ticket.clone().filter(|t| !t.is_empty());
    if ticket.as_ref().is_some_and(|t| t.len() > MAX_TICKET_BYTES) {
        return Err(format!(
            "the ticket is longer than {MAX_TICKET_BYTES} bytes"
        ));
    }
    Ok(Checked {
        target,
        duration: Duration::seconds(duration.as_secs() as i64),
        reason,
        ticket,
    })
}

/// The command must name an existing executable by an absolute path without `.` or `..`
/// (so the sudoers rule matches exactly the program the approver saw); arguments are bounded
/// and free of control characters, which sudoers cannot express.
pub fn check_command(argv: &[String]) -> Result<Vec<String>, String> {
    let Some(program) = argv.first() else {
        return Err("the command is empty: name the program to run".into());
    };
    if argv.len() > MAX_ARGS {
        return Err(format!("the command has more than {MAX_ARGS} arguments"));
    }
    for a in argv {
        if a.len() > MAX_ARG_BYTES {
            return Err(format!("an argument is longer than {MAX_ARG_BYTES} bytes"));
        }
        if a.chars().any(|c| c.is_control()) {
            return Err("the command contains a control character (newline, tab, escape…), which sudoers cannot express".into());
        }
    }
    let path = Path::new(program);
    if !path.is_absolute() {
        return Err(format!(
            "the command {program:?} is not an absolute path: name the program by its full path (e.g. /usr/bin/systemctl)"
        ));
    }
    if path
        .components()
        .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
        || program.contains("//")
        || program.ends_with('/')
    {
        return Err(format!(
            "the command path {program:?} is not normalised: write it without ., .. or //"
        ));
    }
    let meta = std::fs::metadata(path)
        .map_err(|e| format!("the command {program:?} cannot be used: {e}"))?;
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return Err(format!("the command {program:?} is not an executable file"));
    }
    Ok(argv.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn commands_must_be_absolute_existing_executables() {
        assert!(check_command(&argv(&["/bin/echo", "a,b", "*"])).is_ok());
        for bad in [
            vec![],
            argv(&["echo"]),
            argv(&["../x"]),
            argv(&["/usr/bin/../bin/echo"]),
            argv(&["/usr/bin/"]),
            argv(&["/nonexistent/program"]),
            argv(&["/etc/passwd"]),
            argv(&["/bin/echo", "a\nb"]),
        ] {
            assert!(check_command(&bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn durations_and_reasons_follow_the_config() {
        let config = Config::default();
        let mut req = NewRequest {
            target: Target::Ssh,
            duration_secs: None,
            reason: Some("INC-42".into()),
            ticket: None,
            role: None,
        };
        assert_eq!(
            check(&req, &config).unwrap().duration,
            Duration::minutes(15)
        );
        req.duration_secs = Some(5 * 3600);
        assert!(check(&req, &config).unwrap_err().contains("maximum"));
        req.duration_secs = Some(60);
        req.reason = Some("   ".into());
        assert!(check(&req, &config)
            .unwrap_err()
            .contains("reason is required"));
    }
}
