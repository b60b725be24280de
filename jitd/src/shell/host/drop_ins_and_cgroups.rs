//! Making grants real on the host, and the reconciliation that makes the host match the
//! records after a crash or a reboot: the sudoers drop-in and the cgroups of each grant.

use super::sessions::Sessions;
use super::sudoers::{SudoersDir, SudoersError};
use crate::core::recording::Record;
use chrono::{DateTime, Utc};
use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

/// What the enforcer needs to know of an active grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantSpec {
    /// `[a-z0-9]+`.
    pub id: String,
    /// The requester's uid (from peer credentials when it asked) and the name it asked under.
    pub uid: u32,
    pub user: String,
    /// The exact command line (`[0]` absolute) of a sudo grant; `None` for an SSH grant, which
    /// has no drop-in.
    pub command: Option<Vec<String>>,
    /// The grant's end as the wall clock will show it: sudo's `NOTAFTER`.
    pub expires_at: DateTime<Utc>,
    /// What the drop-in tells sudo to record of its sessions.
    pub record: Record,
}

/// One correction reconciliation made (or could not make); each is worth a log line.
#[derive(Debug)]
pub enum ReconcileAction {
    RemovedTempFile(String),
    /// A jit-owned drop-in no active grant accounts for.
    RemovedStaleDropIn(String),
    /// An active grant's drop-in was missing or differed.
    InstalledDropIn(String),
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
            ReconcileAction::Failed { grant_id, error } => {
                write!(f, "could not reconcile grant {grant_id}: {error}")
            }
        }
    }
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
            Some(command) => self.sudoers.install(
                &grant.id,
                grant.uid,
                &grant.user,
                command,
                grant.expires_at,
                grant.record,
            ),
            None => Ok(()),
        }
    }

    /// Makes the drop-ins match `active`: temp files of interrupted installs go, drop-ins no
    /// active grant accounts for go, missing or altered drop-ins of active sudo grants come
    /// back. Idempotent; run it at startup and periodically. `in_flight` are grants the caller
    /// is installing right now (not yet in `active`): their drop-ins are left alone.
    pub fn reconcile_drop_ins(
        &self,
        active: &[GrantSpec],
        in_flight: &HashSet<String>,
    ) -> Vec<ReconcileAction> {
        let mut actions = Vec::new();
        let failed = |grant_id: &str, error: String| ReconcileAction::Failed {
            grant_id: grant_id.to_owned(),
            error,
        };

        match self.sudoers.remove_temp_files() {
            Ok(ids) => actions.extend(ids.into_iter().map(ReconcileAction::RemovedTempFile)),
            Err(e) => actions.push(failed("*", format!("cannot clean temp files: {e}"))),
        }

        let sudo: HashSet<&str> = active
            .iter()
            .filter(|g| g.command.is_some())
            .map(|g| g.id.as_str())
            .collect();
        let keep = |id: &str| in_flight.contains(id) || sudo.contains(id);
        match self.sudoers.installed() {
            Ok(installed) => {
                for id in installed.iter().filter(|id| !keep(id)) {
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
            let wanted = self.sudoers.render(
                &grant.id,
                grant.uid,
                &grant.user,
                command,
                grant.expires_at,
                grant.record,
            );
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
        actions
    }

    /// Grants that still have a cgroup but are neither in `active` nor `in_flight`: their
    /// processes are to be ended ([`Sessions::end_grant`]).
    pub fn leftover_cgroups(
        &self,
        active: &[GrantSpec],
        in_flight: &HashSet<String>,
    ) -> std::io::Result<Vec<String>> {
        let ids = self.sessions.grant_cgroups()?;
        let active: HashSet<&str> = active.iter().map(|g| g.id.as_str()).collect();
        Ok(ids
            .into_iter()
            .filter(|id| !in_flight.contains(id) && !active.contains(id.as_str()))
            .collect())
    }
}

#[cfg(test)]
mod tests;
