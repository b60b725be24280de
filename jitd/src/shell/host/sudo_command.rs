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
pub fn invocation_of(pid: u32) -> Result<Invocation, Refusal> {
    let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
        .map_err(|e| Refusal(format!("cannot tell which program asked (pid {pid}): {e}")))?;
    let name = exe.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if !matches!(name, "sudo" | "sudo-rs") {
        return Err(Refusal(format!(
            "the check came from {}, not sudo: a sudo grant covers only the command sudo runs",
            exe.display()
        )));
    }
    let argv = command_line(pid)
        .ok_or_else(|| Refusal(format!("cannot read the command line of sudo (pid {pid})")))?;
    sudo_invocation::parse(&argv)
}
