//! The daemon's [`Enforcement`] port carried out on the real host by an [`Enforcer`]: sudoers
//! drop-ins, cgroups, signals, terminal warnings, and at the end of an SSH grant its holder's
//! systemd user manager and what they scheduled. Slow work (waiting out `kill_grace`) runs on
//! worker threads; its results are reported as events through `report`.

use super::boot::Boot;
use super::drop_ins_and_cgroups::{Enforcer, GrantSpec, ReconcileAction};
use super::enforcement_port::{Enforcement, Withdrawal};
use super::program_trust;
use super::sessions::{self, EndReport, SessionRef};
use super::ssh_recording::SshRecorder;
use super::user_jobs::{Spools, UserManager};
use crate::core::events::{Event, EventKind};
use crate::core::left_behind::{Added, CrontabChange, UserJobs};
use crate::core::model::{Request, Session};
use jit_proto::message::GrantKind;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Where results of background work go (the daemon's event log).
pub type Report = Arc<dyn Fn(Event) + Send + Sync>;

/// Where users' scheduling is read, and how their systemd user manager is stopped, at the end
/// of an SSH grant.
pub struct UserScheduling {
    pub spools: Spools,
    pub manager: UserManager,
}

impl UserScheduling {
    /// This host's spools and systemd.
    pub fn host() -> UserScheduling {
        UserScheduling {
            spools: Spools::debian(),
            manager: UserManager::system(),
        }
    }
}

/// What is left to do once an SSH grant's processes are ended.
struct SshEnd {
    user: String,
    uid: u32,
    jobs_at_start: Option<UserJobs>,
    stop_manager: bool,
}

pub struct HostEnforcement {
    enforcer: Arc<Enforcer>,
    report: Report,
    scheduling: Arc<UserScheduling>,
    /// Grants whose processes a worker thread is ending right now, with what is left to do
    /// for an SSH grant once it has: a withdrawal that comes while a reconcile is ending the
    /// same grant's leftovers hands its part to that worker.
    ending: Arc<Mutex<HashMap<String, Option<SshEnd>>>>,
    /// Serialises drop-in changes: install, withdraw and reconcile's file phase. With the two
    /// sets below it keeps a reconcile working from an older snapshot of the records from
    /// removing a grant installed since, or restoring one withdrawn since.
    ops: Mutex<Changes>,
    /// How far the wall clock lags the daemon's "now" ([`HostEnforcement::with_wall_lag`]).
    wall_lag: WallLag,
    /// SSH grants of recording roles, recorded with tlog where it is installed.
    ssh_recorder: Option<Arc<SshRecorder>>,
}

/// How far the wall clock is behind the daemon's clock (zero unless it was set back).
pub type WallLag = Arc<dyn Fn() -> chrono::Duration + Send + Sync>;

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
            scheduling: Arc::new(UserScheduling::host()),
            ending: Arc::new(Mutex::new(HashMap::new())),
            ops: Mutex::new(Changes::default()),
            wall_lag: Arc::new(chrono::Duration::zero),
            ssh_recorder: None,
        }
    }

    /// Records SSH grants of recording roles with tlog (where it is installed).
    pub fn with_ssh_recorder(mut self, recorder: SshRecorder) -> HostEnforcement {
        self.ssh_recorder = Some(Arc::new(recorder));
        self
    }

    /// The recorder, when `grant` is an SSH grant that asks for recording and tlog is there.
    fn recorder_for(&self, grant: &Request) -> Option<&SshRecorder> {
        let recorder = self.ssh_recorder.as_deref()?;
        (grant.kind() == GrantKind::Ssh && !grant.record.is_off() && recorder.available())
            .then_some(recorder)
    }

    fn report_line(&self, grant: &Request, kind: EventKind, line: String) {
        let mut ev = Event::new(kind, line);
        ev.request_id = Some(grant.id.as_str().to_owned());
        (self.report)(ev);
    }

    /// sudo reads `NOTAFTER` against the wall clock; when that was set back, a grant's end as
    /// the daemon counts it is that much later on the wall clock. Each drop-in's `NOTAFTER` is
    /// moved back by `lag` (whole seconds), so the backstop never outlasts the grant; a step
    /// back while a grant runs is carried into its drop-in at the next reconcile.
    pub fn with_wall_lag(mut self, lag: WallLag) -> HostEnforcement {
        self.wall_lag = lag;
        self
    }

    /// What to install for `grant`: its end as the wall clock will read it.
    fn spec(&self, grant: &Request) -> Option<GrantSpec> {
        // To the nearest second: a lag that sits just under a whole second (the wall clock is
        // read a moment after "now") must not flip between two renderings.
        let lag = (self.wall_lag)() + chrono::Duration::milliseconds(500);
        let lag = chrono::Duration::seconds(lag.num_seconds().max(0));
        spec(grant).map(|mut s| {
            s.expires_at -= lag;
            s
        })
    }

    /// Reads and stops users' scheduling through `scheduling` instead of this host's.
    #[cfg(test)]
    pub fn with_user_scheduling(mut self, scheduling: UserScheduling) -> HostEnforcement {
        self.scheduling = Arc::new(scheduling);
        self
    }

    /// How to find the processes of `grant`'s sessions, from what its record holds (which a
    /// restart keeps).
    fn session_refs(&self, grant: &Request) -> Vec<SessionRef> {
        let boot = Boot::current();
        let elevated_only = grant.kind() == GrantKind::Sudo;
        grant
            .sessions
            .iter()
            .map(|s| sessions::session_ref(s, elevated_only, &boot))
            .collect()
    }

    /// Ends grant `id`'s processes on a worker thread and reports the outcome; then, for an
    /// SSH grant, does what `ssh` says.
    fn end_in_background(&self, id: String, sessions: Vec<SessionRef>, ssh: Option<SshEnd>) {
        {
            let mut ending = lock(&self.ending);
            if let Some(pending) = ending.get_mut(&id) {
                // Already being ended: that worker does the rest.
                if ssh.is_some() {
                    *pending = ssh;
                }
                return;
            }
            ending.insert(id.clone(), ssh);
        }
        let enforcer = Arc::clone(&self.enforcer);
        let scheduling = Arc::clone(&self.scheduling);
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
                let mut event = end_event(&worker_id, &outcome);
                let mut left = None;
                let ssh = lock(&ending).remove(&worker_id).flatten();
                if let Some(ssh) = ssh {
                    if ssh.stop_manager {
                        let stopped = scheduling.manager.stop(ssh.uid);
                        event.message.push_str(&format!("; {stopped}"));
                        event
                            .extra
                            .push(("USER_MANAGER", stopped.field().to_owned()));
                    }
                    // Read once the processes are gone: nothing of the grant adds more.
                    if let Some(start) = &ssh.jobs_at_start {
                        let added = scheduling
                            .spools
                            .read(&ssh.user, ssh.uid)
                            .added_since(start);
                        if !added.is_empty() {
                            left = Some(left_behind_event(
                                &worker_id,
                                &ssh.user,
                                &scheduling.spools,
                                &added,
                            ));
                        }
                    }
                }
                report(event);
                if let Some(left) = left {
                    report(left);
                }
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

/// The `left_behind` event: what `user` scheduled during SSH grant `id` that runs without a
/// session, each named so it can be found and reviewed.
fn left_behind_event(id: &str, user: &str, spools: &Spools, added: &Added) -> Event {
    let mut parts = Vec::new();
    let mut extra = Vec::new();
    if let Some(change) = added.crontab {
        let path = spools
            .crontab_of(user)
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let what = match change {
            CrontabChange::Created => "a new crontab",
            CrontabChange::Changed => "a changed crontab",
        };
        parts.push(format!("{what} ({path}; `crontab -u {user} -l`)"));
        extra.push(("CRONTAB", path));
    }
    if !added.at_jobs.is_empty() {
        let jobs = added.at_jobs.join(", ");
        let unsure = if added.at_jobs_unsure {
            " (the at jobs at the start are not known: some may be older)"
        } else {
            ""
        };
        parts.push(format!("at jobs {jobs}{unsure} (`atq`)"));
        extra.push(("AT_JOBS", jobs));
    }
    if added.linger {
        let path = spools
            .linger_of(user)
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        parts.push(format!(
            "lingering ({path}; `loginctl disable-linger {user}`)"
        ));
        extra.push(("LINGER", path));
    }
    let mut event = Event::new(
        EventKind::LeftBehind,
        format!(
            "{user} scheduled during SSH grant {id} what runs without a session, still there              after it ended: {}",
            parts.join("; ")
        ),
    );
    event.request_id = Some(id.to_owned());
    event.user = Some(user.to_owned());
    event.command = Some("ssh".to_owned());
    event.extra = extra;
    event
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
        record: grant.record,
    })
}

impl Enforcement for HostEnforcement {
    fn install(&self, grant: &Request) -> Result<(), String> {
        let spec = self.spec(grant).ok_or("the grant has no approved window")?;
        let mut changes = lock(&self.ops);
        changes.live.insert(spec.id.clone());
        let mut installed = self
            .enforcer
            .install_grant(&spec)
            .map_err(|e| e.to_string());
        if let (Ok(()), Some(recorder)) = (&installed, self.recorder_for(grant)) {
            installed = recorder.install(&spec.id, &spec.user, spec.uid);
        }
        if installed.is_err() {
            // Nothing of it is on the host (install cleans up after itself).
            changes.live.remove(&spec.id);
        }
        installed
    }

    fn check_program(&self, program: &str) -> Result<(), String> {
        program_trust::check(program)
            .map(|_| ())
            .map_err(|e| format!("refused: {e}"))
    }

    fn withdraw(&self, grant: &Request, how: Withdrawal) {
        let id = grant.id.as_str().to_owned();
        let sessions = self.session_refs(grant);
        let ssh = (grant.kind() == GrantKind::Ssh).then(|| SshEnd {
            user: grant.user.to_string(),
            uid: grant.uid,
            jobs_at_start: grant.jobs_at_start.as_deref().cloned(),
            stop_manager: how.stop_user_manager,
        });
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
        // The holder's login shell back, before their sessions are ended: a new login no
        // longer starts under the recorder (nor at all, without the grant).
        if let Some(recorder) = self.ssh_recorder.as_deref() {
            if grant.kind() == GrantKind::Ssh {
                match recorder.release(&id, &grant.user) {
                    Ok(Some(line)) => self.report_line(grant, EventKind::Reconciled, line),
                    Ok(None) => {}
                    Err(e) => self.report_line(
                        grant,
                        EventKind::InternalError,
                        format!("cannot put {}'s login shell back: {e}", grant.user),
                    ),
                }
            }
        }
        drop(changes);
        self.end_in_background(id, sessions, ssh);
    }

    fn adopt_session(&self, grant: &Request, session: &mut Session) -> Result<(), String> {
        let mut changes = lock(&self.ops);
        changes.live.insert(grant.id.as_str().to_owned());
        drop(changes);
        let adopted = self.enforcer.sessions.adopt(grant.id.as_str(), session.pid);
        session.process = sessions::process_facts(session.pid, adopted.is_ok());
        adopted.map_err(|e| e.to_string())
    }

    fn user_jobs(&self, grant: &Request) -> UserJobs {
        self.scheduling
            .spools
            .read(&grant.user, grant.uid)
            .for_record()
    }

    fn warn(&self, grant: &Request, message: &str) {
        let outcome = sessions::warn(&self.session_refs(grant), grant.uid, message);
        for (tty, why) in outcome.skipped {
            let mut ev = Event::new(
                EventKind::InternalError,
                format!("did not write the expiry warning to {tty}: {why}"),
            );
            ev.request_id = Some(grant.id.as_str().to_owned());
            (self.report)(ev);
        }
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
        if let Some(recorder) = self.ssh_recorder.as_deref() {
            ids.extend(recorder.grants()?.into_iter().map(|(id, _)| id));
        }
        Ok(ids)
    }

    fn session_recording(&self, grant: &Request) -> Result<Option<String>, String> {
        match self.recorder_for(grant) {
            Some(recorder) => recorder.session_conf(grant.id.as_str(), &grant.user, grant.record),
            None => Ok(None),
        }
    }

    fn reconcile(&self, active: &[&Request], ended: &[&Request]) -> Vec<String> {
        let mut changes = lock(&self.ops);
        let Changes { live, withdrawn } = &mut *changes;
        withdrawn.retain(|id| active.iter().any(|r| r.id.as_str() == id));
        let specs: Vec<GrantSpec> = active
            .iter()
            .filter(|r| !withdrawn.contains(r.id.as_str()))
            .filter_map(|r| self.spec(r))
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
        if let Some(recorder) = self.ssh_recorder.as_deref() {
            let keep = |id: &str| {
                live.contains(id)
                    || active
                        .iter()
                        .any(|r| r.id.as_str() == id && !withdrawn.contains(id))
            };
            lines.extend(recorder.reconcile(keep));
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
                    self.end_in_background(id, sessions, None);
                }
            }
            Err(e) => lines.push(format!("cannot list grant cgroups: {e}")),
        }
        lines
    }
}

#[cfg(test)]
mod tests;
