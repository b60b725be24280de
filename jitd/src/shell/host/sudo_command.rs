//! The sudo process on the other end of a PAM check or session: which program it is and what
//! it is about to run (`core::sudo_invocation` reads its argv). The process is the peer of
//! jitd's socket (SO_PEERCRED), alive and blocked on jitd's answer while this reads /proc, so
//! its pid cannot have been reused.

use crate::core::sudo_invocation::{self, Invocation, Refusal};

/// The argv of `pid`, from /proc, empty arguments kept (they are part of the command).
fn command_line(pid: u32) -> Option<Vec<String>> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let raw = raw.strip_suffix(&[0]).unwrap_or(&raw);
    Some(
        raw.split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect(),
    )
}

/// What the sudo process `pid` will run. Refused when `pid` is not sudo at all: a sudo grant
/// is bound to the command sudo runs, and another program with a `kind=sudo` PAM service (a
/// misconfigured `su`, say) has no such command to bind to.
///
/// The program is told by the kernel's `comm`, the name of the file that was executed (not
/// argv[0], which the caller chooses), which a user cannot change in a setuid process. It is
/// readable without ptrace rights: `/proc/PID/exe` is not, for a setuid process, without
/// CAP_SYS_PTRACE, which the hardened unit does not grant.
pub fn invocation_of(pid: u32) -> Result<Invocation, Refusal> {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map_err(|e| Refusal(format!("cannot tell which program asked (pid {pid}): {e}")))?;
    let name = comm.trim_end_matches('\n');
    if !matches!(name, "sudo" | "sudoedit" | "sudo-rs") {
        return Err(Refusal(format!(
            "the check came from {name:?}, not sudo: a sudo grant covers only the command sudo runs"
        )));
    }
    let argv = command_line(pid)
        .ok_or_else(|| Refusal(format!("cannot read the command line of sudo (pid {pid})")))?;
    sudo_invocation::parse(&argv)
}
