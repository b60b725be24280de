//! Checks what a requester sent before anything is recorded: every field bounded, the command
//! an absolute, normalised path to an existing executable. Durations, reasons and tickets are
//! then judged by the policy (`core::policy`).

use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path};
use std::time::Duration;

use jit_proto::{NewRequest, Target};

pub const MAX_ARGS: usize = 64;
pub const MAX_ARG_BYTES: usize = 1024;
pub const MAX_REASON_BYTES: usize = 1000;
pub const MAX_TICKET_BYTES: usize = 128;

/// A request that passed validation; identity and policy are added by the caller.
#[derive(Debug)]
pub struct Checked {
    pub target: Target,
    /// `None`: the role's default.
    pub duration: Option<Duration>,
    pub reason: String,
    pub ticket: Option<String>,
}

pub fn check(req: &NewRequest) -> Result<Checked, String> {
    let target = match &req.target {
        Target::Ssh => Target::Ssh,
        Target::Sudo { command } => Target::Sudo {
            command: check_command(command)?,
        },
    };
    let duration = match req.duration_secs {
        Some(0) => return Err("the duration must be longer than zero".into()),
        Some(s) if s > jit_proto::duration::MAX_SECS => {
            return Err("the duration is longer than a year".into())
        }
        other => other.map(Duration::from_secs),
    };
    let reason = req.reason.clone().unwrap_or_default().trim().to_string();
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
    if let Some(role) = &req.role {
        if role.len() > 64 {
            return Err("the role name is longer than 64 bytes".into());
        }
    }
    Ok(Checked {
        target,
        duration,
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
    fn sizes_are_bounded() {
        let mut req = NewRequest {
            target: Target::Ssh,
            duration_secs: Some(0),
            reason: Some("INC-42".into()),
            ticket: None,
            role: None,
        };
        assert!(check(&req).unwrap_err().contains("longer than zero"));
        req.duration_secs = None;
        req.reason = Some("x".repeat(MAX_REASON_BYTES + 1));
        assert!(check(&req).unwrap_err().contains("reason"));
        req.reason = Some("  spaced  ".into());
        assert_eq!(check(&req).unwrap().reason, "spaced");
    }
}
