//! Puts what pam_jit decided on its own into jitd's audit trail. Two passes never reach jitd:
//! a member of the break-glass (`exempt_group`) group passes without asking, and `fail=open`
//! lets users in when jitd cannot answer. pam_jit logs both to syslog (authpriv); this reads
//! them back from the journal — at startup, so passes taken while jitd was down are recorded
//! once it is back, and then periodically — and records each as a `break_glass` or
//! `fail_open` event.
//!
//! Only entries whose trusted `_UID` is 0 count: sshd and sudo call PAM as root, while any
//! user could write a forged "pam_jit(…)" line to /dev/log. A cursor file in the state dir
//! keeps each entry from being recorded twice. Without journald (syslog only) there is
//! nothing to read back and the passes stay in syslog alone.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::core::events::{Event, EventKind};

const CURSOR_FILE: &str = "pam-journal.cursor";
/// Entries read per pass at most, so a flood of log lines cannot stall jitd.
const MAX_ENTRIES: usize = 10_000;

pub struct PamLogImport {
    cursor_file: PathBuf,
}

impl PamLogImport {
    pub fn new(state_dir: &Path) -> PamLogImport {
        PamLogImport {
            cursor_file: state_dir.join(CURSOR_FILE),
        }
    }

    /// Reads new authpriv journal entries and returns the events to record. The cursor is
    /// saved by [`PamLogImport::commit`] once they are recorded.
    pub fn read(&self) -> (Vec<Event>, Option<String>) {
        let cursor = match crate::shell::atomic_file::read_trusted(&self.cursor_file) {
            Ok(bytes) => Some(String::from_utf8_lossy(&bytes).into_owned()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                // Not jitd's alone (or unreadable): starting over from this boot would record
                // passes twice, so import nothing until it is fixed.
                eprintln!("jitd: pam_jit's passes are not imported: {e}");
                return (Vec::new(), None);
            }
        };
        let mut cmd = Command::new("journalctl");
        cmd.args(["-o", "json", "--no-pager", "-q", "SYSLOG_FACILITY=10"]);
        match cursor.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
            Some(c) => cmd.arg(format!("--after-cursor={c}")),
            // First run: this boot's entries.
            None => cmd.arg("-b"),
        };
        cmd.arg(format!("--lines={MAX_ENTRIES}"));
        let Ok(out) = cmd.stdin(Stdio::null()).stderr(Stdio::null()).output() else {
            return (Vec::new(), None);
        };
        let mut events = Vec::new();
        let mut last = None;
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let Ok(entry) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            if let Some(c) = entry["__CURSOR"].as_str() {
                last = Some(c.to_string());
            }
            if let Some(e) = event_from(&entry) {
                events.push(e);
            }
        }
        (events, last)
    }

    pub fn commit(&self, cursor: &str) {
        if let Err(e) =
            crate::shell::atomic_file::write_atomic(&self.cursor_file, cursor.as_bytes(), 0o600)
        {
            eprintln!("jitd: cannot save {}: {e}", self.cursor_file.display());
        }
    }
}

/// The event for one journal entry, if it is a pam_jit pass without a grant.
fn event_from(entry: &serde_json::Value) -> Option<Event> {
    if entry["_UID"].as_str() != Some("0") {
        return None;
    }
    let message = entry["MESSAGE"].as_str()?;
    let rest = message.strip_prefix("pam_jit(")?;
    let (kind, what) = if message.contains(": allowed without a grant: member of exempt group") {
        (
            EventKind::BreakGlass,
            "break-glass: passed pam_jit as a member of the exempt group",
        )
    } else if message.contains("(fail=open)") {
        (
            EventKind::FailOpen,
            "pam_jit failed open: let a user in without asking jitd",
        )
    } else {
        return None;
    };
    let service = rest.split(':').next().unwrap_or_default().to_string();
    let user = field(message, "user=");
    let mut e = Event::new(kind, format!("{what} ({service})"));
    e.user = user;
    e.extra.push(("SERVICE", service));
    if let Some(rhost) = field(message, "rhost=") {
        e.extra.push(("RHOST", rhost));
    }
    if let Some(at) = entry["__REALTIME_TIMESTAMP"].as_str() {
        e.extra.push(("LOGGED_AT_USEC", at.to_string()));
    }
    e.extra.push(("PAM_LINE", message.to_string()));
    Some(e)
}

/// The value after ` KEY` up to the next space (pam_jit writes `user=… ruser=… rhost=…`).
fn field(message: &str, key: &str) -> Option<String> {
    let start = message.find(&format!(" {key}"))? + key.len() + 1;
    let value: String = message[start..]
        .chars()
        .take_while(|c| *c != ' ' && *c != ':')
        .collect();
    Some(value).filter(|v| !v.is_empty() && v != "-")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn exempt_and_fail_open_passes_become_events_and_forgeries_do_not() {
        let exempt = json!({"_UID": "0", "MESSAGE": "pam_jit(sshd:account): user=carol ruser=- rhost=10.0.0.9 tty=ssh kind=ssh: allowed without a grant: member of exempt group jit-breakglass", "__REALTIME_TIMESTAMP": "1"});
        let e = event_from(&exempt).unwrap();
        assert_eq!(e.kind(), EventKind::BreakGlass);
        assert_eq!(e.user.as_deref(), Some("carol"));
        assert!(e.extra.contains(&("RHOST", "10.0.0.9".to_string())));
        assert!(e.extra.contains(&("SERVICE", "sshd".to_string())));

        let open = json!({"_UID": "0", "MESSAGE": "pam_jit(sudo:account): user=dave ruser=- rhost=- tty=pts/1 kind=sudo: ALLOWED WITHOUT A GRANT (fail=open): jitd unreachable"});
        let e = event_from(&open).unwrap();
        assert_eq!(e.kind(), EventKind::FailOpen);
        assert_eq!(e.user.as_deref(), Some("dave"));

        let forged = json!({"_UID": "1000", "MESSAGE": exempt["MESSAGE"]});
        assert!(event_from(&forged).is_none(), "only root's lines count");
        let other = json!({"_UID": "0", "MESSAGE": "pam_unix(sshd:session): session opened"});
        assert!(event_from(&other).is_none());
    }
}
