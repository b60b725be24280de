//! The fallback view of "the grant's processes" when there is no cgroup: a scan of /proc for
//! the descendants of a session's process and for members of its audit session.

use super::pidfd::{proc_stat, ProcStat};
use std::collections::{HashMap, HashSet};
use std::fs;

/// The audit session id of a process outside any login (`AUDIT_SID_UNSET`).
pub const AUDIT_SESSION_UNSET: u32 = u32::MAX;

#[derive(Debug, Clone, Copy)]
pub struct ProcInfo {
    pub pid: u32,
    pub stat: ProcStat,
    pub audit_session: u32,
    /// Real or effective uid is 0.
    pub is_root: bool,
}

/// Every user-space process visible now, except pid 1 and this process.
pub fn scan() -> Vec<ProcInfo> {
    let me = std::process::id();
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid > 1 && pid != me)
        .filter_map(|pid| {
            let stat = proc_stat(pid)?;
            // Kernel threads are children of kthreadd (pid 2); never signal them.
            if pid == 2 || stat.ppid == 2 {
                return None;
            }
            let audit_session = fs::read_to_string(format!("/proc/{pid}/sessionid"))
                .ok()
                .and_then(|t| t.trim().parse().ok())
                .unwrap_or(AUDIT_SESSION_UNSET);
            let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            // "Uid:\treal\teffective\tsaved\tfs"
            let uids: Vec<&str> = status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))?
                .split_whitespace()
                .collect();
            let is_root = uids.first() == Some(&"0") || uids.get(1) == Some(&"0");
            Some(ProcInfo {
                pid,
                stat,
                audit_session,
                is_root,
            })
        })
        .collect()
}

/// `root` (if it still is the process started at `start_ticks`) and all its descendants.
pub fn tree(procs: &[ProcInfo], root: u32, start_ticks: u64) -> Vec<ProcInfo> {
    let Some(top) = procs.iter().find(|p| p.pid == root) else {
        return Vec::new();
    };
    if start_ticks != top.stat.start_ticks {
        return Vec::new(); // the pid now names a different process
    }
    let mut children: HashMap<u32, Vec<&ProcInfo>> = HashMap::new();
    for p in procs {
        children.entry(p.stat.ppid).or_default().push(p);
    }
    let mut seen = HashSet::from([root]);
    let mut out = vec![*top];
    let mut i = 0;
    while i < out.len() {
        for child in children.get(&out[i].pid).into_iter().flatten() {
            if seen.insert(child.pid) {
                out.push(**child);
            }
        }
        i += 1;
    }
    out
}

/// Members of audit session `session` that started at or after `since_ticks` (clock ticks
/// since boot); only root-owned ones when `elevated_only`. An older member (the login's own
/// shell, a root process started before the grant) is never among them.
pub fn audit_members(
    procs: &[ProcInfo],
    session: u32,
    since_ticks: u64,
    elevated_only: bool,
) -> Vec<ProcInfo> {
    if session == AUDIT_SESSION_UNSET {
        return Vec::new();
    }
    procs
        .iter()
        .filter(|p| {
            p.audit_session == session
                && p.stat.start_ticks >= since_ticks
                && (p.is_root || !elevated_only)
        })
        .copied()
        .collect()
}
