//! Making grants real on the host and taking them away again: the sudoers drop-in and the
//! sessions of each grant, plus the reconciliation that makes the host match the records after
//! a crash or a reboot.
#![allow(dead_code)] // Until the daemon wires the enforcer in; the lead removes this.

use super::sessions::{EndReport, SessionRef, Sessions};
use super::sudoers::{SudoersDir, SudoersError};
use chrono::{DateTime, Utc};
use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

/// What the enforcer needs to know of an active grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantSpec {
    /// `[a-z0-9]+`.
    pub id: String,
    pub user: String,
    /// The exact command line (`[0]` absolute) of a sudo grant; `None` for an SSH grant, which
    /// has no drop-in.
    pub command: Option<Vec<String>>,
    pub expires_at: DateTime<Utc>,
}

/// One correction reconciliation made (or could not make); each is worth a log line.
#[derive(Debug)]
pub enum ReconcileAction {
    RemovedTempFile(String),
    /// A jit-owned drop-in no active grant accounts for.
    RemovedStaleDropIn(String),
    /// An active grant's drop-in was missing or differed.
    InstalledDropIn(String),
    /// A grant that is not active still had a cgroup.
    EndedSessions {
        grant_id: String,
        report: EndReport,
    },
    Failed {
        grant_id: String,
        error: String,
    },
}

impl fmt::Display for ReconcileAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReconcileAction::RemovedTempFile(id) => {
                write!(
                    f,
                    "removed the temp file of an interrupted install of grant {id}"
                )
            }
            ReconcileAction::RemovedStaleDropIn(id) => {
                write!(
                    f,
                    "removed the sudoers drop-in of grant {id}, which is not active"
                )
            }
            ReconcileAction::InstalledDropIn(id) => write!(
                f,
                "installed the missing or altered sudoers drop-in of active grant {id}"
            ),
            ReconcileAction::EndedSessions { grant_id, report } => write!(
                f,
                "ended the leftover processes of grant {grant_id}: {report:?}"
            ),
            ReconcileAction::Failed { grant_id, error } => {
                write!(f, "could not reconcile grant {grant_id}: {error}")
            }
        }
    }
}

/// What withdrawing a grant did; the daemon logs each part.
#[derive(Debug)]
pub struct WithdrawReport {
    /// Whether a drop-in was removed (`Ok(false)`: there was none, e.g. an SSH grant).
    pub drop_in: Result<bool, SudoersError>,
    pub timestamps: Result<(), SudoersError>,
    pub sessions: EndReport,
}

pub struct Enforcer {
    pub sudoers: SudoersDir,
    pub sessions: Sessions,
    /// Between SIGTERM and SIGKILL (config `kill_grace`, default 10 s).
    pub kill_grace: Duration,
}

impl Enforcer {
    /// Installs the drop-in of a sudo grant; nothing to install for an SSH grant.
    pub fn install_grant(&self, grant: &GrantSpec) -> Result<(), SudoersError> {
        match &grant.command {
            Some(command) => {
                self.sudoers
                    .install(&grant.id, &grant.user, command, grant.expires_at)
            }
            None => Ok(()),
        }
    }

    /// Takes away everything grant `id` gave: the drop-in first (so nothing new can start),
    /// then the cached sudo authentication, then the processes. Blocks for up to `kill_grace`
    /// + 1 s: call it on a worker thread.
    pub fn withdraw_grant(&self, id: &str, user: &str, sessions: &[SessionRef]) -> WithdrawReport {
        let drop_in = self.sudoers.remove(id);
        let timestamps = self.sudoers.clear_timestamps(user);
        let sessions = self.sessions.end_grant(id, sessions, self.kill_grace);
        WithdrawReport {
            drop_in,
            timestamps,
            sessions,
        }
    }

    /// Makes the host match `active`: temp files of interrupted installs go, drop-ins no active
    /// grant accounts for go, missing or altered drop-ins of active sudo grants come back, and
    /// processes left in the cgroups of grants that are not active are ended. Idempotent; run
    /// it at startup and periodically. Blocks up to `kill_grace` + 1 s per leftover cgroup.
    pub fn reconcile(&self, active: &[GrantSpec]) -> Vec<ReconcileAction> {
        let mut actions = Vec::new();
        let failed = |grant_id: &str, error: String| ReconcileAction::Failed {
            grant_id: grant_id.to_owned(),
            error,
        };

        match self.sudoers.remove_temp_files() {
            Ok(ids) => actions.extend(ids.into_iter().map(ReconcileAction::RemovedTempFile)),
            Err(e) => actions.push(failed("*", format!("cannot clean temp files: {e}"))),
        }

        let active_ids: HashSet<&str> = active.iter().map(|g| g.id.as_str()).collect();
        let sudo_ids: HashSet<&str> = active
            .iter()
            .filter(|g| g.command.is_some())
            .map(|g| g.id.as_str())
            .collect();
        match self.sudoers.installed() {
            Ok(installed) => {
                for id in installed
                    .iter()
                    .filter(|id| !sudo_ids.contains(id.as_str()))
                {
                    match self.sudoers.remove(id) {
                        Ok(_) => actions.push(ReconcileAction::RemovedStaleDropIn(id.clone())),
                        Err(e) => actions.push(failed(id, e.to_string())),
                    }
                }
            }
            Err(e) => actions.push(failed("*", format!("cannot list drop-ins: {e}"))),
        }

        for grant in active {
            let Some(command) = &grant.command else {
                continue;
            };
            let wanted = self
                .sudoers
                .render(&grant.id, &grant.user, command, grant.expires_at);
            let current = self.sudoers.installed_content(&grant.id);
            match (wanted, current) {
                (Ok(wanted), Ok(Some(current))) if wanted == current => {}
                (Ok(_), Ok(_)) => match self.install_grant(grant) {
                    Ok(()) => actions.push(ReconcileAction::InstalledDropIn(grant.id.clone())),
                    Err(e) => actions.push(failed(&grant.id, e.to_string())),
                },
                (Err(e), _) | (_, Err(e)) => actions.push(failed(&grant.id, e.to_string())),
            }
        }

        match self.sessions.grant_cgroups() {
            Ok(ids) => {
                for id in ids.iter().filter(|id| !active_ids.contains(id.as_str())) {
                    let report = self.sessions.end_grant(id, &[], self.kill_grace);
                    actions.push(ReconcileAction::EndedSessions {
                        grant_id: id.clone(),
                        report,
                    });
                }
            }
            Err(e) => actions.push(failed("*", format!("cannot list grant cgroups: {e}"))),
        }
        actions
    }
}

#[cfg(test)]
mod tests;
