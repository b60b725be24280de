//! The one line a denied user sees: what is missing and the exact command that asks for it.

use jit_proto::GrantKind;

use crate::log_line::escape;

/// Shown when jitd says there is no active grant.
pub fn no_grant(kind: GrantKind, user: &str) -> String {
    match kind {
        // The module never learns the command sudo was asked to run, so the placeholder stays.
        GrantKind::Sudo => format!(
            "jit: {} has no active sudo grant for this command; ask for one with: jit-elevate --reason \"why\" -- <command>",
            escape(user)
        ),
        GrantKind::Ssh => format!(
            "jit: {} has no active SSH grant for this host; ask for one on the host with: jit-elevate --ssh --reason \"why\" (or ask an approver for: jitd grant {} --ssh)",
            escape(user),
            escape(user)
        ),
    }
}

/// Shown when the module could not get an answer and fails closed.
pub fn unavailable() -> String {
    "jit: the access service (jitd) is not answering, so access is denied; try again, or ask an administrator to check jitd".to_string()
}

/// Shown when the module's own configuration is wrong.
pub fn misconfigured() -> String {
    "jit: access check misconfigured on this host, so access is denied; ask an administrator to check the pam_jit lines in /etc/pam.d and the system log".to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sudo_line_names_the_command_to_run() {
        let line = no_grant(GrantKind::Sudo, "alice");
        assert!(
            line.contains("jit-elevate --reason \"why\" -- <command>"),
            "{line}"
        );
        assert!(!line.contains('\n'));
    }

    #[test]
    fn the_ssh_line_names_both_ways_to_get_a_grant() {
        let line = no_grant(GrantKind::Ssh, "bob");
        assert!(
            line.contains("jit-elevate --ssh --reason \"why\""),
            "{line}"
        );
        assert!(line.contains("jitd grant bob --ssh"), "{line}");
    }

    #[test]
    fn a_hostile_user_name_cannot_break_the_line() {
        let line = no_grant(GrantKind::Ssh, "evil\n\x1b[2Jroot");
        assert!(!line.contains('\n') && !line.contains('\x1b'), "{line}");
    }
}
