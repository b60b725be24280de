//! Running the approved command through `sudo -n --`, so sudo's rules and pam_jit's account
//! check both apply, and passing its exit status through. The command is the one jitd
//! recorded, its program an absolute path: sudo never searches PATH for it.

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitCode};

use crate::exit;

pub fn through_sudo(argv: &[String]) -> ExitCode {
    let status = Command::new("sudo").arg("-n").arg("--").args(argv).status();
    match status {
        Ok(s) => match (s.code(), s.signal()) {
            (Some(code), _) => ExitCode::from(code.clamp(0, 255) as u8),
            (None, Some(sig)) => ExitCode::from((128 + sig).clamp(0, 255) as u8),
            _ => ExitCode::FAILURE,
        },
        Err(e) => {
            eprintln!("jit-elevate: cannot run sudo: {e} (is sudo installed?)");
            ExitCode::from(exit::REFUSED)
        }
    }
}
