//! Checks what a requester sent before anything is recorded: every field bounded, the command
//! an existing executable that only root can change (a bare name looked up in the fixed secure
//! PATH), with arguments sudo can match exactly. Durations, reasons and tickets are then judged
//! by the policy (`core::policy`).

use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path};
use std::time::Duration;

use jit_proto::{NewRequest, Target};

use crate::shell::host::program_trust;
use crate::shell::host::sudoers_rule::ExactCommand;

pub const MAX_ARGS: usize = 64;
pub const MAX_ARG_BYTES: usize = 1024;
/// The whole command line, its arguments' bytes together: a request (command, reason and
/// ticket) stays a few KiB, far under the 64 KiB frame, so lists of many stay answerable.
pub const MAX_COMMAND_BYTES: usize = 4096;
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

/// The command must name an existing executable that only root can change, by an absolute path
/// without `.` or `..` (so the sudoers rule matches exactly the program the approver saw) or
/// by a bare name, which is looked up in the fixed secure PATH (never the requester's). The
/// arguments are bounded and must be ones sudo can match exactly: no control characters, no
/// whitespace, no empty argument. Returns the command line with the program's absolute path:
/// what is stored, shown to approvers and granted.
pub fn check_command(argv: &[String]) -> Result<Vec<String>, String> {
    let Some(program) = argv.first() else {
        return Err("the command is empty: name the program to run".into());
    };
    if argv.len() > MAX_ARGS {
        return Err(format!("the command has more than {MAX_ARGS} arguments"));
    }
    let total: usize = argv.iter().map(String::len).sum();
    if total > MAX_COMMAND_BYTES {
        return Err(format!(
            "the command line is {total} bytes, more than {MAX_COMMAND_BYTES}: ask for a shorter one (a script that only root can change, say)"
        ));
    }
    for a in argv {
        if a.len() > MAX_ARG_BYTES {
            return Err(format!("an argument is longer than {MAX_ARG_BYTES} bytes"));
        }
        if a.chars().any(|c| c.is_control()) {
            return Err("the command contains a control character (newline, tab, escape…), which sudoers cannot express".into());
        }
    }
    let program = if program.is_empty() || program.contains('/') {
        program.clone()
    } else {
        jit_proto::command::find_in_secure_path(program)?
    };
    let path = Path::new(&program);
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
    let mut resolved = Vec::with_capacity(argv.len());
    resolved.push(program.clone());
    resolved.extend_from_slice(&argv[1..]);
    // Refused now, with the reason, rather than failing after an approver said yes.
    ExactCommand::parse(&resolved).map_err(|e| format!("refused: {e}"))?;
    let meta = std::fs::metadata(path)
        .map_err(|e| format!("the command {program:?} cannot be used: {e}"))?;
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return Err(format!("the command {program:?} is not an executable file"));
    }
    program_trust::check(&program).map_err(|e| format!("refused: {e}"))?;
    Ok(resolved)
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
            argv(&[""]),
            argv(&["../x"]),
            argv(&["bin/echo"]),
            argv(&["/usr/bin/../bin/echo"]),
            argv(&["/usr/bin/"]),
            argv(&["/nonexistent/program"]),
            argv(&["no-such-program-anywhere"]),
            argv(&["/etc/passwd"]),
            argv(&["/bin/echo", "a\nb"]),
        ] {
            assert!(check_command(&bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn a_bare_name_is_resolved_in_the_secure_path_and_stored_absolute() {
        let resolved = check_command(&argv(&["id", "-u"])).unwrap();
        assert_eq!(resolved, argv(&["/usr/bin/id", "-u"]));
        let e = check_command(&argv(&["no-such-program-anywhere"])).unwrap_err();
        assert!(e.contains(jit_proto::command::SECURE_PATH), "{e}");
    }

    #[test]
    fn arguments_sudo_cannot_match_exactly_are_refused_when_asked() {
        for (bad, says) in [
            (
                argv(&["/bin/echo", "a b"]),
                "argument 1 cannot be granted exactly: it contains whitespace",
            ),
            (
                argv(&["/bin/echo", "x", ""]),
                "argument 2 cannot be granted exactly: it is empty",
            ),
            (argv(&["/bin/echo", "a\u{a0}b"]), "it contains whitespace"),
            (argv(&["/usr/bin/sudoedit"]), "sudoedit"),
        ] {
            let e = check_command(&bad).expect_err(&format!("{bad:?} must be refused"));
            assert!(
                e.starts_with("refused: ") && e.contains(says),
                "{bad:?}: {e}"
            );
        }
    }

    #[test]
    fn a_program_others_can_change_is_refused_naming_the_component() {
        // Root's own file, but in /tmp, where its owner could replace it: refused all the same.
        let dir = std::env::temp_dir().join(format!("jitd-submission-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let prog = dir.join("hello");
        std::fs::write(&prog, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).unwrap();
        let refused = check_command(&argv(&[&prog.display().to_string()]));
        let _ = std::fs::remove_dir_all(&dir);
        let e = refused.unwrap_err();
        let tmp = std::env::temp_dir().display().to_string();
        assert!(
            e.starts_with(&format!("refused: {tmp} is writable by every user")),
            "{e}"
        );
        assert!(
            e.ends_with("jit grants only programs that only root can change"),
            "{e}"
        );
    }

    #[test]
    fn a_command_line_is_bounded_as_a_whole_not_only_per_argument() {
        // 40 arguments of 1000 bytes: each allowed, together 40 KB (two such requests once
        // made every approver's `jitd list` fail).
        let arg = "x".repeat(1000);
        let mut long = argv(&["/bin/echo"]);
        long.extend(std::iter::repeat_n(arg, 40));
        let e = check_command(&long).unwrap_err();
        assert!(e.contains("more than 4096"), "{e}");
    }

    #[test]
    fn sizes_are_bounded() {
        let mut req = NewRequest {
            target: Target::Ssh,
            duration_secs: Some(0),
            reason: Some("INC-42".into()),
            ticket: None,
            role: None,
            hosts: None,
        };
        assert!(check(&req).unwrap_err().contains("longer than zero"));
        req.duration_secs = None;
        req.reason = Some("x".repeat(MAX_REASON_BYTES + 1));
        assert!(check(&req).unwrap_err().contains("reason"));
        req.reason = Some("  spaced  ".into());
        assert_eq!(check(&req).unwrap().reason, "spaced");
    }
}
