//! Ending everything a grant started. See docs/enforcement.md for the mechanism and its limits.
//!
//! Primary: when a session registers, the daemon calls [`Sessions::adopt`], which moves the
//! session's process into the grant's cgroup v2 leaf; every descendant stays there whatever it
//! does to detach. At the end, [`Sessions::end_grant`] sends SIGTERM to the leaf's members,
//! waits up to the grace period, then `cgroup.kill`s the rest and removes the leaf.
//! Fallback, for sessions that could not be adopted (no cgroup2, or the write failed): the
//! session's process tree and the members of its audit session (`/proc/<pid>/sessionid`) that
//! started after it registered, signalled through pidfds so a reused pid is never hit. What
//! identifies them (start time, boot, adoption) is kept in the record ([`process_facts`]), so
//! a restarted jitd acts on the same processes and no others.

use super::boot::{self, Boot};
use super::cgroup::{self, GrantCgroups};
use super::pidfd::{self, PidFd};
use super::process_scan::{self, ProcInfo};
use super::sudoers_rule::{GrantFileId, RuleError};
use super::terminal::{self, Notice};
use crate::core::model::{Session, SessionProcess};
use std::collections::HashMap;
use std::fmt;
use std::io;
use std::time::{Duration, Instant};

/// How long to wait for SIGKILLed processes to be gone before reporting them.
const KILL_WAIT: Duration = Duration::from_secs(1);
const POLL: Duration = Duration::from_millis(25);
/// How often to rescan /proc for stragglers after SIGKILL (a scan reads every process).
const RESCAN: Duration = Duration::from_millis(100);

/// What jitd needs to know of one registered session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRef {
    /// The process pam_jit registered (sudo's or sshd's session process).
    pub pid: u32,
    /// Its start time ([`start_ticks`]) read at registration, so a reused pid is not hit.
    /// Without it the process-tree fallback is not used (the pid might name another process).
    pub start_ticks: Option<u64>,
    /// The audit session id (`/proc/<pid>/sessionid`), if pam_loginuid set one.
    pub audit_session: Option<u32>,
    /// When the session registered, in clock ticks since boot: members of the audit session
    /// that started earlier were not started by it and are never ended with it. Without it
    /// the audit session is not used.
    pub since_ticks: Option<u64>,
    /// PAM_TTY as registered (`pts/3`, `/dev/pts/3`, `ssh`, ...).
    pub tty: Option<String>,
    /// Whether [`Sessions::adopt`] succeeded for this session. If not, the fallbacks apply.
    pub adopted: bool,
    /// For sudo sessions: the audit session is the user's own login, so the fallback ends only
    /// its root processes (what sudo started), not the login itself. False for SSH sessions,
    /// whose whole audit session belongs to the grant.
    pub elevated_only: bool,
}

/// The start time of `pid`, to record in [`SessionRef::start_ticks`] at registration.
pub fn start_ticks(pid: u32) -> Option<u64> {
    pidfd::start_ticks(pid)
}

/// Whether the process recorded as `pid` started at `start_ticks` in boot `boot_id` still
/// runs: false once it has exited (a zombie included), or when the pid now names another
/// process or the boot is another one.
pub fn still_running(pid: u32, start_ticks: u64, boot_id: &str) -> bool {
    boot::boot_id().is_some_and(|b| b == boot_id)
        && pidfd::proc_stat(pid).is_some_and(|s| s.start_ticks == start_ticks && !s.zombie)
}

/// What to record of session process `pid` as it registers, `adopted` saying whether
/// [`Sessions::adopt`] succeeded. `None` if this boot's id cannot be read (then nothing
/// recorded could later be told apart from a previous boot's).
pub fn process_facts(pid: u32, adopted: bool) -> Option<SessionProcess> {
    Some(SessionProcess {
        boot_id: boot::boot_id()?.into(),
        start_ticks: start_ticks(pid),
        registered_ticks: boot::ticks_now(),
        adopted,
    })
}

/// How to find the processes of recorded session `s` in `boot`. Facts recorded in another
/// boot name nothing now: neither its pid nor its audit session id (both are reused after a
/// reboot) is acted on. A record older than [`SessionProcess`] has no start time (so no
/// process tree) and is bounded in its audit session by the wall-clock time it opened.
pub fn session_ref(s: &Session, elevated_only: bool, boot: &Boot) -> SessionRef {
    let (start_ticks, since_ticks, adopted) = match &s.process {
        Some(p) if boot.is(&p.boot_id) => (p.start_ticks, Some(p.registered_ticks), p.adopted),
        Some(_) => (None, None, false),
        None => (None, boot.ticks_at(s.opened_at), false),
    };
    SessionRef {
        pid: s.pid,
        start_ticks,
        audit_session: s.audit_session.filter(|_| since_ticks.is_some()),
        since_ticks,
        tty: s.tty.clone(),
        adopted,
        elevated_only,
    }
}

#[derive(Debug)]
pub enum SessionError {
    BadGrantId(RuleError),
    /// There is no cgroup2 hierarchy: the session is covered by the fallbacks only.
    NoCgroup,
    Adopt {
        pid: u32,
        source: io::Error,
    },
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionError::BadGrantId(e) => write!(f, "{e}"),
            SessionError::NoCgroup => write!(
                f,
                "no cgroup v2 hierarchy is mounted; sessions will be ended through their \
                 process tree and audit session only"
            ),
            SessionError::Adopt { pid, source } => write!(
                f,
                "cannot move process {pid} into the grant's cgroup ({source}); it will be \
                 ended through its process tree and audit session only"
            ),
        }
    }
}

impl std::error::Error for SessionError {}

/// What [`Sessions::end_grant`] did. The daemon logs it; `survivors` non-empty is an error.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct EndReport {
    /// Processes sent SIGTERM.
    pub terminated: usize,
    /// Whether anything was still alive after the grace period and had to be SIGKILLed.
    pub killed: bool,
    /// Pids still alive at the end.
    pub survivors: Vec<u32>,
    /// Problems on the way (e.g. the leaf could not be removed).
    pub errors: Vec<String>,
}

impl EndReport {
    pub fn complete(&self) -> bool {
        self.survivors.is_empty() && self.errors.is_empty()
    }
}

pub struct Sessions {
    cgroups: Option<GrantCgroups>,
}

impl Sessions {
    /// Uses `<cgroup2 mount>/<base>/<grant id>` when a cgroup2 hierarchy is mounted (the
    /// config key `cgroup` names `base`, `jit` by default).
    pub fn detect_with_base(base: &str) -> Sessions {
        Sessions {
            cgroups: cgroup::cgroup2_mount().map(|m| GrantCgroups::new(&m, base)),
        }
    }

    /// Fallbacks only: process trees and audit sessions.
    #[cfg(test)]
    pub fn without_cgroups() -> Sessions {
        Sessions { cgroups: None }
    }

    #[cfg(test)]
    pub fn cgroups(&self) -> Option<&GrantCgroups> {
        self.cgroups.as_ref()
    }

    /// Moves `pid` into the grant's cgroup so everything it starts can be ended with the grant.
    /// Call it while the session is being opened, before the session starts user code.
    pub fn adopt(&self, grant_id: &str, pid: u32) -> Result<(), SessionError> {
        let id = GrantFileId::parse(grant_id).map_err(SessionError::BadGrantId)?;
        let cgroups = self.cgroups.as_ref().ok_or(SessionError::NoCgroup)?;
        cgroups
            .adopt(&id, pid)
            .map_err(|source| SessionError::Adopt { pid, source })
    }

    /// Grant ids that still have a cgroup leaf (for reconciliation).
    pub fn grant_cgroups(&self) -> io::Result<Vec<String>> {
        match &self.cgroups {
            Some(c) => c.ids(),
            None => Ok(Vec::new()),
        }
    }

    /// Ends every process of grant `grant_id`: SIGTERM, up to `grace` to exit, then SIGKILL,
    /// then the leaf is removed. Blocks for up to `grace` + about 1 s: run it on a worker
    /// thread (`std::thread::spawn(move || sessions.end_grant(..))`), not on the request loop.
    pub fn end_grant(&self, grant_id: &str, sessions: &[SessionRef], grace: Duration) -> EndReport {
        let mut report = EndReport::default();
        let id = match GrantFileId::parse(grant_id) {
            Ok(id) => id,
            Err(e) => {
                report.errors.push(e.to_string());
                return report;
            }
        };
        let deadline = Instant::now() + grace;

        let targets = self.targets(&id, sessions, &mut report);
        for t in targets.values() {
            if matches!(t.signal(libc::SIGTERM), Ok(true)) {
                report.terminated += 1;
            }
        }
        while Instant::now() < deadline && !self.all_gone(&id, targets.values()) {
            std::thread::sleep(POLL);
        }

        if !self.all_gone(&id, targets.values()) {
            report.killed = true;
            self.kill_everything(&id, sessions, &targets, &mut report);
            let kill_deadline = Instant::now() + KILL_WAIT;
            while Instant::now() < kill_deadline && !self.all_gone(&id, targets.values()) {
                std::thread::sleep(RESCAN);
                // Anything forked between the scan and the kill.
                self.kill_everything(&id, sessions, &targets, &mut report);
            }
        }

        report.survivors = targets
            .values()
            .filter(|t| !t.has_exited())
            .map(|t| t.pid())
            .collect();
        if let Some(cg) = &self.cgroups {
            match cg.procs(&id) {
                Ok(pids) => report.survivors.extend(pids),
                Err(e) => report
                    .errors
                    .push(format!("cannot read the grant's cgroup: {e}")),
            }
            report.survivors.sort_unstable();
            report.survivors.dedup();
            if report.survivors.is_empty() {
                if let Err(e) = cg.remove(&id) {
                    report
                        .errors
                        .push(format!("cannot remove the grant's cgroup: {e}"));
                }
            }
        }
        report
    }

    /// Handles on every process of the grant: the cgroup leaf's members, plus, for each
    /// session, its process tree, plus, for sessions that were not adopted, its audit session.
    fn targets(
        &self,
        id: &GrantFileId,
        sessions: &[SessionRef],
        report: &mut EndReport,
    ) -> HashMap<u32, PidFd> {
        let mut targets = HashMap::new();
        if let Some(cg) = &self.cgroups {
            match cg.procs(id) {
                Ok(pids) => {
                    for pid in pids {
                        // Open first, then check membership: a handle on a reused pid would
                        // fail the check, a handle on the exited member only gets ESRCH.
                        if let Ok(fd) = PidFd::open(pid) {
                            if cg.contains(id, pid) {
                                targets.insert(pid, fd);
                            }
                        }
                    }
                }
                Err(e) => report
                    .errors
                    .push(format!("cannot read the grant's cgroup: {e}")),
            }
        }
        let procs = process_scan::scan();
        for s in sessions {
            let mut found = match s.start_ticks {
                Some(ticks) => process_scan::tree(&procs, s.pid, ticks),
                None => Vec::new(),
            };
            if !s.adopted {
                if let (Some(sid), Some(since)) = (s.audit_session, s.since_ticks) {
                    found.extend(process_scan::audit_members(
                        &procs,
                        sid,
                        since,
                        s.elevated_only,
                    ));
                }
            }
            for p in found {
                let other_grants = self
                    .cgroups
                    .as_ref()
                    .is_some_and(|cg| cg.belongs_to_other_grant(id, p.pid));
                if other_grants || targets.contains_key(&p.pid) {
                    continue;
                }
                if let Some(fd) = open_verified(&p) {
                    targets.insert(p.pid, fd);
                }
            }
        }
        targets
    }

    fn all_gone<'a>(&self, id: &GrantFileId, mut targets: impl Iterator<Item = &'a PidFd>) -> bool {
        let cgroup_empty = match &self.cgroups {
            Some(cg) => !cg.populated(id).unwrap_or(true),
            None => true,
        };
        cgroup_empty && targets.all(|t| t.has_exited())
    }

    fn kill_everything(
        &self,
        id: &GrantFileId,
        sessions: &[SessionRef],
        known: &HashMap<u32, PidFd>,
        report: &mut EndReport,
    ) {
        if let Some(cg) = &self.cgroups {
            if cg.exists(id) {
                match cg.kill_all(id) {
                    Ok(true) => {}
                    Ok(false) => {} // no cgroup.kill: the members are among the targets below
                    Err(e) => report.errors.push(format!("cgroup.kill failed: {e}")),
                }
            }
        }
        for t in known.values() {
            let _ = t.signal(libc::SIGKILL);
        }
        // Processes that appeared since the first scan (forked during the grace period).
        let mut scratch = EndReport::default();
        for t in self.targets(id, sessions, &mut scratch).values() {
            let _ = t.signal(libc::SIGKILL);
        }
    }
}

/// A pidfd on `p`, if `p.pid` still is the process the scan saw.
fn open_verified(p: &ProcInfo) -> Option<PidFd> {
    let fd = PidFd::open(p.pid).ok()?;
    (pidfd::start_ticks(p.pid) == Some(p.stat.start_ticks)).then_some(fd)
}

/// Outcome of [`warn`]: how many terminals got the notice, and why the others did not.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WarnReport {
    pub written: usize,
    /// Terminals that belong to someone else now (tty, why): not written to.
    pub skipped: Vec<(String, String)>,
    pub failed: Vec<(String, String)>,
}

/// Writes `message` on its own line to each distinct terminal of `sessions` that uid `holder`
/// (the grant's holder) still owns: a session's terminal may have gone to another user's
/// login since. Sessions without a terminal device (`ssh`, none) are skipped silently; never
/// blocks.
pub fn warn(sessions: &[SessionRef], holder: u32, message: &str) -> WarnReport {
    let mut report = WarnReport::default();
    let mut done = Vec::new();
    for tty in sessions.iter().filter_map(|s| s.tty.as_deref()) {
        let Some(device) = terminal::tty_device(tty) else {
            continue;
        };
        if done.contains(&device) {
            continue;
        }
        match terminal::write_notice(tty, holder, message) {
            Ok(Notice::Written) => report.written += 1,
            Ok(Notice::NotOwned { owner }) => report.skipped.push((
                tty.to_owned(),
                format!(
                    "{} belongs to uid {owner} now, not to the grant's holder (uid {holder})",
                    device.display()
                ),
            )),
            Err(e) => report.failed.push((tty.to_owned(), e.to_string())),
        }
        done.push(device);
    }
    report
}

#[cfg(test)]
mod tests;
