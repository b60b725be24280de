//! The process a session belongs to, as jitd needs it to end the session later.

use std::io::Read;

/// The kernel's "no audit session" value in /proc/self/sessionid.
const AUDIT_UNSET: u32 = u32::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    /// The process calling pam_open_session (sudo, or sshd's per-connection monitor).
    pub pid: u32,
    /// The audit session id set by pam_loginuid at login; `None` when unset or unreadable.
    pub audit_session: Option<u32>,
}

impl Origin {
    pub fn current() -> Origin {
        Origin {
            pid: std::process::id(),
            audit_session: audit_session(),
        }
    }
}

/// Longest command line a pass report carries: the record names what ran, and the frame to
/// jitd stays small.
const MAX_COMMAND_LINE: u64 = 4096;

/// This process's argv (sudo's, when loaded by sudo), cut at [`MAX_COMMAND_LINE`] bytes.
pub fn own_command_line() -> Option<Vec<String>> {
    let file = std::fs::File::open("/proc/self/cmdline").ok()?;
    let mut raw = Vec::new();
    file.take(MAX_COMMAND_LINE).read_to_end(&mut raw).ok()?;
    let raw = raw.strip_suffix(&[0]).unwrap_or(&raw);
    Some(
        raw.split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect(),
    )
}

fn audit_session() -> Option<u32> {
    let file = std::fs::File::open("/proc/self/sessionid").ok()?;
    // The file holds one decimal u32; read no more than that could need.
    let mut text = String::new();
    file.take(16).read_to_string(&mut text).ok()?;
    parse_session_id(&text)
}

fn parse_session_id(text: &str) -> Option<u32> {
    match text.trim().parse::<u32>() {
        Ok(AUDIT_UNSET) | Err(_) => None,
        Ok(id) => Some(id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unset_or_garbled_session_id_is_none() {
        assert_eq!(parse_session_id("4294967295"), None);
        assert_eq!(parse_session_id(""), None);
        assert_eq!(parse_session_id("12x"), None);
        assert_eq!(parse_session_id("42\n"), Some(42));
    }

    #[test]
    fn the_own_command_line_is_this_processs_argv() {
        let argv = own_command_line().unwrap();
        let expected: Vec<String> = std::env::args().collect();
        assert_eq!(argv, expected);
    }

    #[test]
    fn the_current_process_is_described() {
        assert_eq!(Origin::current().pid, std::process::id());
    }
}
