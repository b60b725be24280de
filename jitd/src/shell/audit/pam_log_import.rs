//! The fallback by which passes pam_jit made on its own reach jitd's records. A member of the
//! break-glass (`exempt_group`) group passes without asking, and `fail=open` lets users in
//! when jitd cannot answer. pam_jit tells jitd of an exempt pass at once when it can, and logs
//! both to syslog (authpriv) with a random `pass=` key; this reads the lines back from the
//! journal — at startup, so passes taken while jitd was down are recorded once it is back, and
//! then periodically — and hands each pass to the service, which records it for review unless
//! it heard of it already (same key).
//!
//! Only lines a process acting as root wrote count: sshd (`_UID` 0) and sudo (setuid: the
//! invoking user's `_UID`, but sudo's `_EXE` and root's capabilities), while any user could
//! write a forged "pam_jit(…)" line to /dev/log. A cursor file in the state dir keeps each
//! entry from being read twice. Without journald (syslog only) there is nothing to read back
//! and passes pam_jit could not report stay in syslog alone.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use jit_proto::{GrantKind, PamContext, PassKind, PassReport};

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

    /// Reads new authpriv journal entries and returns the passes they report. The cursor is
    /// saved by [`PamLogImport::commit`] once they are recorded.
    pub fn read(&self) -> (Vec<PassReport>, Option<String>) {
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
            if let Some(p) = pass_from(&entry) {
                events.push(p);
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

/// Programs whose pam_jit lines count although their `_UID` is not 0: sudo is setuid root, so
/// it runs PAM with the invoking user's real uid (journald's `_UID`) and root's effective
/// capabilities. `_EXE` and `_CAP_EFFECTIVE` are journald's own, trusted fields: a user can
/// write any text to /dev/log, but not from a process that is this program with these rights.
const SETUID_CALLERS: &[&str] = &["/usr/bin/sudo", "/usr/bin/sudoedit"];

/// Whether the entry was written by a process acting as root: sshd (uid 0) or sudo.
fn written_by_root(entry: &serde_json::Value) -> bool {
    if entry["_UID"].as_str() == Some("0") {
        return true;
    }
    let setuid = entry["_EXE"]
        .as_str()
        .is_some_and(|exe| SETUID_CALLERS.contains(&exe));
    let privileged = entry["_CAP_EFFECTIVE"]
        .as_str()
        .and_then(|c| u64::from_str_radix(c, 16).ok())
        .is_some_and(|caps| caps != 0);
    setuid && privileged
}

/// The pass one journal entry reports, if it is a pam_jit pass without a grant written by a
/// process acting as root.
fn pass_from(entry: &serde_json::Value) -> Option<PassReport> {
    if !written_by_root(entry) {
        return None;
    }
    let message = entry["MESSAGE"].as_str()?;
    let rest = message.strip_prefix("pam_jit(")?;
    let how = if message.contains("allowed without a grant: member of exempt group") {
        PassKind::Exempt
    } else if message.contains("ALLOWED WITHOUT A GRANT (fail=open)") {
        PassKind::FailOpen
    } else {
        return None;
    };
    let service = rest.split(':').next().unwrap_or_default().to_string();
    let kind = match field(message, "kind=").as_deref() {
        Some("sudo") => GrantKind::Sudo,
        Some("ssh") => GrantKind::Ssh,
        _ => return None,
    };
    // Lines of a pam_jit older than pass keys are named by their journal entry.
    let key = field(message, "pass=")
        .or_else(|| entry["__CURSOR"].as_str().map(|c| format!("journal:{c}")))?;
    Some(PassReport {
        pam: PamContext {
            user: field(message, "user=")?,
            kind,
            service,
            tty: field(message, "tty="),
            rhost: field(message, "rhost="),
            ruser: field(message, "ruser="),
        },
        how,
        key,
        command: None,
    })
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
    fn exempt_and_fail_open_passes_are_read_and_forgeries_are_not() {
        let exempt = json!({"_UID": "0", "__CURSOR": "c1", "MESSAGE": "pam_jit(sshd:account): user=carol ruser=- rhost=10.0.0.9 tty=ssh kind=ssh: pass=0a1b allowed without a grant: member of exempt group jit-breakglass"});
        let p = pass_from(&exempt).unwrap();
        assert_eq!(p.how, PassKind::Exempt);
        assert_eq!(p.key, "0a1b");
        assert_eq!(p.pam.user, "carol");
        assert_eq!(p.pam.kind, GrantKind::Ssh);
        assert_eq!(p.pam.service, "sshd");
        assert_eq!(p.pam.rhost.as_deref(), Some("10.0.0.9"));
        assert_eq!(p.pam.ruser, None);

        let open = json!({"_UID": "0", "__CURSOR": "c2", "MESSAGE": "pam_jit(sudo:account): user=root ruser=dave rhost=- tty=pts/1 kind=sudo: ALLOWED WITHOUT A GRANT (fail=open): jitd unreachable"});
        let p = pass_from(&open).unwrap();
        assert_eq!(p.how, PassKind::FailOpen);
        assert_eq!(p.pam.ruser.as_deref(), Some("dave"));
        assert_eq!(
            p.key, "journal:c2",
            "a line without a key is named by its entry"
        );

        let forged = json!({"_UID": "1000", "MESSAGE": exempt["MESSAGE"]});
        assert!(
            pass_from(&forged).is_none(),
            "an ordinary user's line counts"
        );
        let other = json!({"_UID": "0", "MESSAGE": "pam_unix(sshd:session): session opened"});
        assert!(pass_from(&other).is_none());
    }

    /// The review's hole: sudo runs PAM with the invoking user's uid, so its pam_jit lines
    /// carry `_UID=<user>` and were dropped. sudo's lines count; the same line from a user's
    /// own program, or from sudo without root's rights, does not.
    #[test]
    fn a_pass_through_sudo_counts_and_a_users_imitation_does_not() {
        let line = "pam_jit(sudo:account): user=root ruser=alice rhost=- tty=/dev/pts/1 kind=sudo: pass=77 allowed without a grant: member of exempt group jit-breakglass";
        let sudo = json!({"_UID": "1000", "_EXE": "/usr/bin/sudo", "_CAP_EFFECTIVE": "1ffffffffff", "MESSAGE": line});
        let p = pass_from(&sudo).unwrap();
        assert_eq!(p.pam.ruser.as_deref(), Some("alice"));
        assert_eq!(p.pam.kind, GrantKind::Sudo);
        for forged in [
            json!({"_UID": "1000", "_EXE": "/usr/bin/python3", "_CAP_EFFECTIVE": "0", "MESSAGE": line}),
            json!({"_UID": "1000", "_EXE": "/usr/bin/sudo", "_CAP_EFFECTIVE": "0", "MESSAGE": line}),
            json!({"_UID": "1000", "_EXE": "/usr/bin/sudo", "MESSAGE": line}),
            json!({"_UID": "1000", "_EXE": "/home/alice/usr/bin/sudo", "_CAP_EFFECTIVE": "1ff", "MESSAGE": line}),
        ] {
            assert!(pass_from(&forged).is_none(), "{forged}");
        }
    }
}
