//! Terminal notices for approvers: when a request arrives, every approver logged in on the
//! host (a USER_PROCESS entry in utmp, on a terminal the approver owns) gets one line on that
//! terminal. Login records and group lookups (NSS: possibly LDAP) are read on a worker thread,
//! never while jitd holds its registry.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use nix::unistd::{getgrouplist, Group, User};

use crate::core::events::{Event, EventKind, EventSink};
use crate::shell::host::terminal::{write_notice, Notice};
use crate::shell::notify::payload::terminal_line;
use crate::shell::notify::queue::{self, Attempt, Backoff, Queue, Report};

/// Requests waiting for their notices; a flood beyond this loses the oldest notices.
const QUEUE_CAPACITY: usize = 100;
/// A notice is written once: a terminal that cannot take it now is not worth retrying.
const ONCE: Backoff = Backoff {
    max_attempts: 1,
    first_wait: std::time::Duration::ZERO,
    give_up_after: std::time::Duration::ZERO,
};

/// One login from utmp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    pub user: String,
    /// As utmp has it: `pts/3`, `tty1`.
    pub line: String,
}

/// glibc's utmp functions keep one cursor per process.
static UTMP: Mutex<()> = Mutex::new(());

fn field(chars: &[libc::c_char]) -> String {
    let bytes: Vec<u8> = chars
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| *c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The user sessions recorded in the utmp file at `path`.
pub fn logged_in(path: &Path) -> io::Result<Vec<Login>> {
    let name = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in the utmp path"))?;
    let _guard = UTMP.lock().unwrap_or_else(|e| e.into_inner());
    let mut logins = Vec::new();
    // SAFETY: `name` is a valid C string that outlives the call; utmpxname copies it. The
    // cursor functions are serialised by UTMP, and each entry is copied out before the next
    // getutxent call reuses glibc's static buffer.
    unsafe {
        if libc::utmpxname(name.as_ptr()) != 0 {
            return Err(io::Error::last_os_error());
        }
        libc::setutxent();
        loop {
            let entry = libc::getutxent();
            let Some(entry) = entry.as_ref() else { break };
            if entry.ut_type == libc::USER_PROCESS {
                logins.push(Login {
                    user: field(&entry.ut_user),
                    line: field(&entry.ut_line),
                });
            }
        }
        libc::endutxent();
    }
    Ok(logins)
}

/// Whether `user` belongs to one of `groups` (by name), primary group included.
fn in_groups(user: &str, groups: &[String]) -> bool {
    let Ok(Some(account)) = User::from_name(user) else {
        return false;
    };
    let Ok(name) = CString::new(user) else {
        return false;
    };
    let Ok(member_of) = getgrouplist(name.as_c_str(), account.gid) else {
        return false;
    };
    groups
        .iter()
        .any(|g| matches!(Group::from_name(g), Ok(Some(group)) if member_of.contains(&group.gid)))
}

/// Writes the notice for `event` to the terminals of its approvers; returns how many got it.
fn notify_approvers(utmp: &Path, event: &Event) -> io::Result<usize> {
    let line = terminal_line(event);
    let requester = event.user.as_deref().unwrap_or_default();
    let mut told = 0;
    let mut checked: Vec<(String, bool)> = Vec::new();
    for login in logged_in(utmp)? {
        // One cannot approve one's own request.
        if login.user == requester || login.user.is_empty() {
            continue;
        }
        let approver = match checked.iter().find(|(u, _)| *u == login.user) {
            Some((_, yes)) => *yes,
            None => {
                let yes = in_groups(&login.user, &event.approver_groups);
                checked.push((login.user.clone(), yes));
                yes
            }
        };
        if !approver {
            continue;
        }
        // A stale utmp entry may name a terminal someone else now uses: only the approver's
        // own terminal gets the notice (write_notice checks the owner of what it opened).
        let Some(owner) = User::from_name(&login.user).ok().flatten().map(|u| u.uid) else {
            continue;
        };
        if let Ok(Notice::Written) = write_notice(&login.line, owner.as_raw(), &line) {
            told += 1;
        }
    }
    Ok(told)
}

/// The sink: new requests go to the worker's queue.
pub struct TerminalNotices {
    queue: Arc<Queue<Event>>,
}

impl TerminalNotices {
    pub fn start(utmp: PathBuf, report: Report) -> Result<TerminalNotices, String> {
        let queue = Arc::new(Queue::new(QUEUE_CAPACITY));
        queue::spawn_worker(
            "terminal-notices",
            Arc::clone(&queue),
            ONCE,
            move |event: &Event| match notify_approvers(&utmp, event) {
                Ok(_) => Attempt::Delivered,
                Err(e) => Attempt::Refused(format!("cannot read {}: {e}", utmp.display())),
            },
            move |event: &Event, why| {
                let mut e = Event::new(
                    EventKind::InternalError,
                    format!("approvers' terminals not told: {}", why.last_error),
                );
                e.request_id = event.request_id.clone();
                report(e);
            },
        )
        .map_err(|e| format!("cannot start the terminal notice thread: {e}"))?;
        Ok(TerminalNotices { queue })
    }
}

impl EventSink for TerminalNotices {
    fn record(&self, event: &Event) -> io::Result<()> {
        if event.kind() == EventKind::Requested && !event.approver_groups.is_empty() {
            self.queue.push(event.clone(), false);
        }
        Ok(())
    }
}

/// A utmp record, as login or sshd writes it (tests build utmp files with it).
#[cfg(test)]
pub fn utmp_record(ut_type: libc::c_short, user: &str, line: &str, pid: i32) -> Vec<u8> {
    // SAFETY: utmpx is plain old data; all zeroes is a valid (empty) record.
    let mut u: libc::utmpx = unsafe { std::mem::zeroed() };
    u.ut_type = ut_type;
    u.ut_pid = pid;
    for (dst, src) in u.ut_user.iter_mut().zip(user.bytes()) {
        *dst = src as libc::c_char;
    }
    for (dst, src) in u.ut_line.iter_mut().zip(line.bytes()) {
        *dst = src as libc::c_char;
    }
    let id = line.rsplit('/').next().unwrap_or(line);
    for (dst, src) in u.ut_id.iter_mut().zip(id.bytes()) {
        *dst = src as libc::c_char;
    }
    let size = std::mem::size_of::<libc::utmpx>();
    // SAFETY: reading the bytes of a fully initialised, repr(C) value we own.
    unsafe { std::slice::from_raw_parts((&u as *const libc::utmpx).cast::<u8>(), size) }.to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logins_are_the_user_processes_of_the_utmp_file() {
        let path = std::env::temp_dir().join(format!("jitd-utmp-{}", std::process::id()));
        let mut bytes = utmp_record(libc::USER_PROCESS, "alice", "pts/7", 100);
        bytes.extend(utmp_record(libc::USER_PROCESS, "bob", "tty2", 101));
        // A dead process's record: not a login.
        bytes.extend(utmp_record(libc::DEAD_PROCESS, "carol", "pts/9", 102));
        std::fs::write(&path, bytes).unwrap();
        let logins = logged_in(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(
            logins,
            vec![
                Login {
                    user: "alice".into(),
                    line: "pts/7".into()
                },
                Login {
                    user: "bob".into(),
                    line: "tty2".into()
                }
            ]
        );
    }

    #[test]
    fn a_missing_utmp_file_means_nobody_is_logged_in() {
        let none = logged_in(Path::new("/nonexistent/utmp")).unwrap_or_default();
        assert!(none.is_empty());
    }

    #[test]
    fn root_belongs_to_its_primary_group_and_not_to_a_missing_one() {
        assert!(in_groups("root", &["root".into()]));
        assert!(!in_groups("root", &["no-such-group-jit".into()]));
        assert!(!in_groups("no-such-user-jit", &["root".into()]));
    }

    #[test]
    fn fields_stop_at_the_first_nul() {
        let raw: Vec<libc::c_char> = b"ab\0cd".iter().map(|b| *b as libc::c_char).collect();
        assert_eq!(field(&raw), "ab");
    }
}
