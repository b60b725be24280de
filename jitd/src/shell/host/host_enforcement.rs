//! The daemon's [`Enforcement`] port carried out on the real host by an [`Enforcer`]: sudoers
//! drop-ins, cgroups, signals and terminal warnings. Slow work (waiting out `kill_grace`) runs
//! on worker threads; its results are reported as events through `report`.

use super::drop_ins_and_cgroups::{Enforcer, GrantSpec, ReconcileAction};
use super::enforcement_port::Enforcement;
use super::sessions::{self, EndReport, SessionRef};
use crate::core::events::{Event, EventKind};
use crate::core::model::{Request, Session};
use jit_proto::message::GrantKind;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Where results of background work go (the daemon's event log).
pub type Report = Arc<dyn Fn(Event) + Send + Sync>;

/// What is known of a session beyond the daemon's record: its start time and whether it got
/// into the grant's cgroup. Kept in memory; after a restart, sessions fall back to their cgroup
/// (which survives) and audit session.
#[derive(Debug, Clone, Copy)]
struct Tracked {
    start_ticks: Option<u64>,
    adopted: bool,
}

pub struct HostEnforcement {
    enforcer: Arc<Enforcer>,
    report: Report,
    tracked: Mutex<HashMap<(String, u32), Tracked>>,
    /// Grants whose processes a worker thread is ending right now; reconcile leaves them be.
    ending: Arc<Mutex<HashSet<String>>>,
    /// Serialises drop-in changes: install, withdraw and reconcile's file phase. With the two
    /// sets below it keeps a reconcile working from an older snapshot of the records from
    /// removing a grant installed since, or restoring one withdrawn since.
    ops: Mutex<Changes>,
}

#[derive(Default)]
struct Changes {
    /// Installed or adopted by this process and not withdrawn.
    live: HashSet<String>,
    /// Withdrawn by this process; forgotten once a reconcile no longer lists them as active
    /// (an ended grant never becomes active again).
    withdrawn: HashSet<String>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded maps stay consistent even if a holder panicked: every update is one insert
    // or remove.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl HostEnforcement {
    /// Reports at once when the installed sudo cannot carry the `NOTAFTER` backstop.
    pub fn new(enforcer: Enforcer, report: Report) -> HostEnforcement {
        let flavour = enforcer.sudoers.flavour();
        if !flavour.supports_notafter() {
            report(Event::new(
                EventKind::InternalError,
                format!(
                    "the installed sudo ({flavour:?}) does not support NOTAFTER: sudo rules \
                     have no backstop of their own and end only when jitd removes them"
                ),
            ));
        }
        HostEnforcement {
            enforcer: Arc::new(enforcer),
            report,
            tracked: Mutex::new(HashMap::new()),
            ending: Arc::new(Mutex::new(HashSet::new())),
            ops: Mutex::new(Changes::default()),
        }
    }

    fn session_refs(&self, grant: &Request) -> Vec<SessionRef> {
        let tracked = lock(&self.tracked);
        grant
            .sessions
            .iter()
            .map(|s| {
                let t = tracked
                    .get(&(grant.id.as_str().to_owned(), s.pid))
                    .copied()
                    .unwrap_or(Tracked {
                        start_ticks: None,
                        adopted: false,
                    });
                SessionRef {
                    pid: s.pid,
                    start_ticks: t.start_ticks,
                    audit_session: s.audit_session,
                    tty: s.tty.clone(),
                    adopted: t.adopted,
                    elevated_only: grant.kind() == GrantKind::Sudo,
                }
            })
            .collect()
    }

    /// Ends grant `id`'s processes on a worker thread and reports the outcome.
    fn end_in_background(&self, id: String, sessions: Vec<SessionRef>) {
        if !lock(&self.ending).insert(id.clone()) {
            return; // already being ended
        }
        let enforcer = Arc::clone(&self.enforcer);
        let report = Arc::clone(&self.report);
        let ending = Arc::clone(&self.ending);
        let worker_id = id.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("end-{id}"))
            .spawn(move || {
                let outcome =
                    enforcer
                        .sessions
                        .end_grant(&worker_id, &sessions, enforcer.kill_grace);
                report(end_event(&worker_id, &outcome));
                lock(&ending).remove(&worker_id);
            });
        if let Err(e) = spawned {
            lock(&self.ending).remove(&id);
            (self.report)(Event::new(
                EventKind::InternalError,
                format!("cannot start a thread to end the sessions of grant {id}: {e}"),
            ));
        }
    }
}

fn end_event(id: &str, outcome: &EndReport) -> Event {
    let (kind, message) = if outcome.complete() {
        (
            EventKind::SessionEnded,
            format!(
                "ended the processes of grant {id}: {} sent SIGTERM{}",
                outcome.terminated,
                if outcome.killed {
                    ", the rest SIGKILLed after the grace period"
                } else {
                    ""
                }
            ),
        )
    } else {
        (
            EventKind::InternalError,
            format!(
                "could not end every process of grant {id}: still running {:?}; {}",
                outcome.survivors,
                outcome.errors.join("; ")
            ),
        )
    };
    let mut event = Event::new(kind, message);
    event.request_id = Some(id.to_owned());
    event
}

fn spec(grant: &Request) -> Option<GrantSpec> {
    Some(GrantSpec {
        id: grant.id.as_str().to_owned(),
        uid: grant.uid,
        user: grant.user.to_string(),
        command: grant.command().map(<[String]>::to_vec),
        expires_at: grant.window()?.expires_at,
    })
}

impl Enforcement for HostEnforcement {
    fn install(&self, grant: &Request) -> Result<(), String> {
        let spec = spec(grant).ok_or("the grant has no approved window")?;
        let mut changes = lock(&self.ops);
        changes.live.insert(spec.id.clone());
        let installed = self.enforcer.install_grant(&spec);
        if installed.is_err() {
            // Nothing of it is on the host (install cleans up after itself).
            changes.live.remove(&spec.id);
        }
        installed.map_err(|e| e.to_string())
    }

    fn withdraw(&self, grant: &Request) {
        let id = grant.id.as_str().to_owned();
        let sessions = self.session_refs(grant);
        let mut changes = lock(&self.ops);
        changes.live.remove(&id);
        changes.withdrawn.insert(id.clone());
        // Fast and first: nothing new can start once the rule and the cached credentials go.
        if grant.command().is_some() {
            if let Err(e) = self.enforcer.sudoers.remove(&id) {
                let mut ev = Event::new(
                    EventKind::InternalError,
                    format!("cannot remove the sudoers drop-in of grant {id}: {e}"),
                );
                ev.request_id = Some(id.clone());
                (self.report)(ev);
            }
            if let Err(e) = self
                .enforcer
                .sudoers
                .clear_timestamps(&grant.user, grant.uid)
            {
                let mut ev = Event::new(EventKind::InternalError, e.to_string());
                ev.request_id = Some(id.clone());
                (self.report)(ev);
            }
        }
        drop(changes);
        lock(&self.tracked).retain(|(g, _), _| *g != id);
        self.end_in_background(id, sessions);
    }

    fn adopt_session(&self, grant: &Request, session: &Session) -> Result<(), String> {
        let start_ticks = sessions::start_ticks(session.pid);
        let mut changes = lock(&self.ops);
        changes.live.insert(grant.id.as_str().to_owned());
        drop(changes);
        let adopted = self.enforcer.sessions.adopt(grant.id.as_str(), session.pid);
        lock(&self.tracked).insert(
            (grant.id.as_str().to_owned(), session.pid),
            Tracked {
                start_ticks,
                adopted: adopted.is_ok(),
            },
        );
        adopted.map_err(|e| e.to_string())
    }

    fn warn(&self, grant: &Request, message: &str) {
        let outcome = sessions::warn(&self.session_refs(grant), message);
        for (tty, error) in outcome.failed {
            let mut ev = Event::new(
                EventKind::InternalError,
                format!("cannot write the expiry warning to {tty}: {error}"),
            );
            ev.request_id = Some(grant.id.as_str().to_owned());
            (self.report)(ev);
        }
    }

    fn present(&self) -> std::io::Result<Vec<String>> {
        let mut ids = self.enforcer.sudoers.installed()?;
        ids.extend(self.enforcer.sessions.grant_cgroups()?);
        Ok(ids)
    }

    fn reconcile(&self, active: &[&Request], ended: &[&Request]) -> Vec<String> {
        let mut changes = lock(&self.ops);
        let Changes { live, withdrawn } = &mut *changes;
        withdrawn.retain(|id| active.iter().any(|r| r.id.as_str() == id));
        let specs: Vec<GrantSpec> = active
            .iter()
            .filter(|r| !withdrawn.contains(r.id.as_str()))
            .filter_map(|r| spec(r))
            .collect();
        let actions = self.enforcer.reconcile_drop_ins(&specs, live);
        let mut lines: Vec<String> = actions.iter().map(ReconcileAction::to_string).collect();
        // A stale drop-in means the grant ended while jitd was not looking: clear its user's
        // cached credentials too.
        for action in &actions {
            if let ReconcileAction::RemovedStaleDropIn(id) = action {
                if let Some(r) = ended.iter().find(|r| r.id.as_str() == id) {
                    if let Err(e) = self.enforcer.sudoers.clear_timestamps(&r.user, r.uid) {
                        lines.push(format!("grant {id}: {e}"));
                    }
                }
            }
        }
        let leftovers = self.enforcer.leftover_cgroups(&specs, live);
        drop(changes);
        match leftovers {
            Ok(ids) => {
                for id in ids {
                    let sessions = ended
                        .iter()
                        .find(|r| r.id.as_str() == id)
                        .map(|r| self.session_refs(r))
                        .unwrap_or_default();
                    lines.push(format!(
                        "ending the leftover processes of grant {id}, which is not active"
                    ));
                    self.end_in_background(id, sessions);
                }
            }
            Err(e) => lines.push(format!("cannot list grant cgroups: {e}")),
        }
        lines
    }
}

#[cfg(test)]
mod tests;
