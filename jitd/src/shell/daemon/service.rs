//! The daemon's request handling: authorises the caller, applies the lifecycle, persists the
//! result before answering, then carries out the effects and logs every step.

use std::collections::{HashMap, HashSet};
use std::sync::{mpsc, Arc, Condvar, Mutex, OnceLock, RwLock};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use jit_proto::{
    ErrorCode, GrantKind, NewRequest, PamContext, Request as Wire, Response, SessionInfo, State,
};

use crate::config::config_file::Config;
use crate::core::approval_token::approval_token;
use crate::core::authz::{self, Actor};
use crate::core::events::{Event, EventKind};
use crate::core::fleet::records::FleetEnd;
use crate::core::lifecycle::{Approval, By, Denial, Submission};
use crate::core::metrics::{Gauges, Metrics};
use crate::core::model::{display_command, End, GrantId, Request, Session};
use crate::core::policy::{Ask, Policy, Refusal, Requester, Route};
use crate::core::registry::Registry;
use crate::core::sudo_invocation::Invocation;
use crate::core::timestamp::rfc3339;
use crate::core::unstored_change::{NOT_STORED, STORED_AFTER};
use crate::core::user_manager;
use crate::shell::audit::event_log::{event_for, EventLog};
use crate::shell::daemon::clock::Clock;
use crate::shell::daemon::identity;
use crate::shell::daemon::rate_limit::RateLimiter;
use crate::shell::daemon::registry_lock::{SharedRegistry, WriterTurn};
use crate::shell::daemon::store::Store;
use crate::shell::daemon::submission;
use crate::shell::daemon::view::{fit_to_frame, list_view, view};
use crate::shell::failpoint;
use crate::shell::host::enforcement_port::{Enforcement, Withdrawal};
use crate::shell::host::sudo_command;

mod extend;
mod fleet;
mod fleet_gc;
mod fleet_offline;
mod logins;
pub mod passes;
mod quarantine;
mod recorder;
use recorder::Deferred;
mod recheck;
mod reload;
mod replay;
mod retention;
mod review;
mod unrecorded;
mod unstored;
pub use unstored::LastChangeTrail;

pub use quarantine::ApprovalTrail;

/// Pending requests one user may have open at once: enough for real work, too few to flood
/// approvers or the state directory.
pub const MAX_PENDING_PER_USER: usize = 20;

/// A refusal, turned into `Response::Error`.
#[derive(Debug)]
pub struct Failure {
    pub code: ErrorCode,
    pub message: String,
}

impl Failure {
    fn new(code: ErrorCode, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }
}

impl From<authz::Denial> for Failure {
    fn from(d: authz::Denial) -> Failure {
        Failure::new(ErrorCode::Forbidden, d.to_string())
    }
}

impl From<Refusal> for Failure {
    fn from(r: Refusal) -> Failure {
        match r {
            Refusal::NotCovered(m) => Failure::new(ErrorCode::PolicyDenied, m),
            Refusal::Invalid(m) => Failure::new(ErrorCode::BadRequest, m),
        }
    }
}

impl From<crate::core::lifecycle::LifecycleError> for Failure {
    fn from(e: crate::core::lifecycle::LifecycleError) -> Failure {
        Failure::new(ErrorCode::InvalidState, e.to_string())
    }
}

/// A request the scheduler ended, still to be persisted and logged.
struct Ended {
    id: GrantId,
    end: End,
    context: &'static str,
}

/// The answer that shows a request to its caller.
pub(crate) fn shown(r: &Request) -> Response {
    Response::Request {
        request: Box::new(view(r)),
    }
}

/// Puts `session` on active grant `r` (replacing one of the same pid).
fn add_session(r: &mut Request, session: Session) -> Result<(), Failure> {
    if r.state() != State::Active {
        return Err(Failure::new(
            ErrorCode::InvalidState,
            format!("grant {} has ended", r.id),
        ));
    }
    r.sessions.retain(|old| old.pid != session.pid);
    r.sessions.push(session);
    Ok(())
}

pub struct Service {
    config: Config,
    /// The policy in force; replaced as a whole by a reload.
    policy: RwLock<Arc<Policy>>,
    clock: Arc<dyn Clock>,
    store: Box<dyn Store>,
    /// Read by checks without waiting on writers' disks; see [`SharedRegistry`].
    registry: SharedRegistry,
    events: Arc<EventLog>,
    enforcement: Box<dyn Enforcement>,
    /// Bumped on every change that may move the next deadline; wakes the scheduler.
    wake: (Mutex<u64>, Condvar),
    /// Grants whose expiry warning went out (in memory: after a restart a warning may repeat).
    warned: Mutex<HashSet<GrantId>>,
    /// pam_jit's keys of the passes on record, so a pass reported at once and read back from
    /// the log is recorded once.
    pass_keys: Mutex<HashSet<String>>,
    /// Counters for Prometheus (`jitd metrics`); also an event sink, for audit records.
    metrics: Arc<Metrics>,
    /// The recorder thread's queue, once the scheduler started it.
    recorder: Mutex<Option<mpsc::Sender<Deferred>>>,
    /// Ends applied but not yet stored (a full disk): stored again until it works.
    unstored: Mutex<HashSet<GrantId>>,
    /// The SSH logins waiting for approval, one per user ([`logins`]).
    logins: Mutex<logins::Waiters>,
    /// Requests made by logins, per user: root (sshd) asks for them, so the server's limit
    /// for users does not apply, and a user looping login-and-disconnect would otherwise have
    /// approvers notified a few times a second.
    login_rate: RateLimiter,
    /// Fleet mode's link to the shared store, once attached ([`Service::attach_fleet`]).
    fleet: OnceLock<Arc<crate::shell::fleet::link::FleetLink>>,
}

/// What startup reads back from the audit log.
pub struct StartupTrail<'a> {
    /// The approvals of the loaded active grants ([`Service::set_aside_unaccounted`]).
    pub approvals: ApprovalTrail<'a>,
    /// The last change logged ([`Service::say_unstored_change`]).
    pub last_change: LastChangeTrail<'a>,
}

impl Service {
    /// Loads every stored request, sets aside the active grants that the policy or the audit
    /// trail (`trail`) cannot account for, ends what passed its deadline while jitd was down,
    /// and reconciles the host with the result.
    pub fn start(
        config: Config,
        clock: Arc<dyn Clock>,
        store: Box<dyn Store>,
        events: Arc<EventLog>,
        enforcement: Box<dyn Enforcement>,
        trail: StartupTrail,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Arc<Service>> {
        let history_since = clock.now() - retention::as_chrono(config.retention);
        let (mut requests, problems) = store.load_all(history_since)?;
        // The first day read may hold history a little older than `retention`.
        requests.retain(|r| r.history_since().is_none_or(|at| at >= history_since));
        let service = Service {
            policy: RwLock::new(Arc::new(config.policy.clone())),
            config,
            clock,
            store,
            registry: SharedRegistry::new(Registry::default()),
            events,
            enforcement,
            wake: (Mutex::new(0), Condvar::new()),
            warned: Mutex::new(HashSet::new()),
            pass_keys: Mutex::new(HashSet::new()),
            metrics,
            recorder: Mutex::new(None),
            unstored: Mutex::new(HashSet::new()),
            logins: Mutex::new(logins::Waiters::new()),
            login_rate: RateLimiter::default(),
            fleet: OnceLock::new(),
        };
        for p in problems {
            service.events.emit(&Event::new(
                EventKind::InternalError,
                format!("state file {p}"),
            ));
        }
        // Before anything is set aside: a record set aside was stored.
        service.say_unstored_change(&requests, trail.last_change, history_since);
        service.set_aside_unaccounted(&mut requests, trail.approvals)?;
        service.cap_remaining_time(&mut requests);
        {
            let turn = service.registry.turn();
            turn.put_all(requests);
            *service.pass_keys.lock().unwrap_or_else(|e| e.into_inner()) =
                turn.view(passes::known_keys);
            *service.logins.lock().unwrap_or_else(|e| e.into_inner()) =
                turn.view(|reg| logins::waiting_at_start(reg.iter()));
        }
        service.apply_deadlines(" while jitd was not running", &mut |e| {
            service.record_end(e)
        });
        service.reconcile();
        Ok(Arc::new(service))
    }

    /// No active grant keeps more time than was approved, whatever the wall clock did while
    /// jitd was down (see [`Request::cap_remaining`]); a moved end is stored and logged, and
    /// the drop-in's NOTAFTER follows at the reconciliation that comes next.
    fn cap_remaining_time(&self, requests: &mut [Request]) {
        let now = self.clock.now();
        for r in requests.iter_mut() {
            let Some(ends) = r.cap_remaining(now) else {
                continue;
            };
            let mut ev = event_for(
                EventKind::Reconciled,
                r,
                format!(
                    "the clock is earlier than grant {}'s approval (set back while jitd was down): it now ends at {}, its approved length from now",
                    r.id,
                    rfc3339(ends)
                ),
            );
            ev.extra.push(("CAPPED_AT", rfc3339(ends)));
            self.events.emit(&ev);
            if let Err(e) = self.store.put(r) {
                self.events.emit(&event_for(
                    EventKind::InternalError,
                    r,
                    format!("cannot persist the capped end: {e}; it is capped in memory"),
                ));
            }
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The policy in force now (a reload never changes it under a running decision).
    fn policy(&self) -> Arc<Policy> {
        Arc::clone(&self.policy.read().unwrap_or_else(|e| e.into_inner()))
    }

    fn read_registry(&self) -> std::sync::RwLockReadGuard<'_, Registry> {
        self.registry.read()
    }

    /// Answers one request. `peer_pid` is the caller's process from SO_PEERCRED: for PAM's
    /// requests it is the sudo or sshd process the module runs in.
    pub fn handle(&self, actor: &Actor, peer_pid: u32, request: Wire) -> Response {
        let result = match request {
            Wire::Check(ctx) => self.check(actor, peer_pid, &ctx),
            Wire::OpenSession(info) => self.open_session(actor, peer_pid, info),
            Wire::CloseSession(info) => self.close_session(actor, &info),
            Wire::Submit(new) => match &new.hosts {
                Some(hosts) => self.fleet_submit(actor, &new, hosts),
                None => self.submit(actor, &new),
            },
            Wire::Grant { user, request } => self.grant(actor, &user, &request),
            Wire::Approve {
                id,
                comment,
                expect,
            } => self.approve(actor, &id, comment, expect.as_deref()),
            Wire::Deny { id, reason } => self
                .fleet_end_of(actor, &id, FleetEnd::Denied, Some(reason.clone()))
                .unwrap_or_else(|| self.deny(actor, &id, reason)),
            Wire::Revoke { id, reason } => self
                .fleet_end_of(actor, &id, FleetEnd::Revoked, Some(reason.clone()))
                .unwrap_or_else(|| self.revoke(actor, &id, reason)),
            Wire::Cancel { id } => self
                .fleet_end_of(actor, &id, FleetEnd::Cancelled, None)
                .unwrap_or_else(|| self.cancel(actor, &id)),
            Wire::Done { id } => self
                .fleet_end_of(actor, &id, FleetEnd::Completed, None)
                .unwrap_or_else(|| self.done(actor, &id)),
            Wire::Show { id } => self.show(actor, &id),
            Wire::List {
                all,
                unreviewed,
                page,
            } => Ok(self.list(actor, all, unreviewed, page.unwrap_or(1))),
            Wire::Extend { id, duration_secs } => self.extend(actor, &id, duration_secs),
            Wire::Review { id, comment } => self.review(actor, &id, comment),
            Wire::Reload => self.reload(actor),
            Wire::Passed(report) => self.passed(actor, report),
            Wire::Metrics => self.metrics(actor),
            Wire::Replay { id, session } => self.replay(actor, &id, session),
            Wire::LoginWait(ask) => self.login_wait(actor, peer_pid, ask),
            Wire::LoginStatus { id } => self.login_status(actor, &id),
            Wire::LoginAbandon { id, why } => self.login_abandon(actor, &id, why),
            Wire::FleetApprove {
                id,
                request_sha256,
                approved_at,
                signature,
            } => self.fleet_approve(actor, &id, &request_sha256, &approved_at, &signature),
            Wire::FleetStatus => self.fleet_status(actor),
            Wire::FleetGc {
                older_than_secs,
                dry_run,
            } => self.fleet_gc(actor, older_than_secs, dry_run),
        };
        result.unwrap_or_else(|f| Response::Error {
            code: f.code,
            message: f.message,
        })
    }

    // ---- PAM ----------------------------------------------------------------------------

    fn check(&self, actor: &Actor, peer_pid: u32, ctx: &PamContext) -> Result<Response, Failure> {
        authz::may_query_grants(actor)?;
        let holder = Self::grant_holder(ctx);
        // Read before the lock: /proc of the caller, never under what other checks wait on.
        let invocation = match Self::invocation(ctx, peer_pid) {
            Ok(i) => i,
            Err(reason) => return Ok(Response::Denied { reason }),
        };
        let now = self.clock.now();
        let reg = self.read_registry();
        let found = reg
            .active_for(holder, ctx.kind, now)
            .find(|r| Self::covers(r, invocation.as_ref()));
        self.metrics.count_check(ctx.kind, found.is_some());
        Ok(match found {
            Some(r) => Response::Allowed {
                grant_id: r.id.to_string(),
            },
            None => Response::Denied {
                reason: Self::no_grant(holder, ctx.kind, invocation.as_ref()),
            },
        })
    }

    /// Who must hold the grant. Under sudo that is the invoking user, PAM_RUSER, which sudo
    /// sets in every phase: PAM_USER is the target in the session phase, and already in the
    /// account phase with `Defaults rootpw`, `targetpw` or `runaspw`.
    fn grant_holder(ctx: &PamContext) -> &str {
        match (ctx.kind, &ctx.ruser) {
            (GrantKind::Sudo, Some(ruser)) if !ruser.is_empty() => ruser,
            _ => &ctx.user,
        }
    }

    /// For sudo, what the sudo process asking will run (`Err` is the denial's reason); for
    /// SSH, nothing to bind to.
    fn invocation(ctx: &PamContext, peer_pid: u32) -> Result<Option<Invocation>, String> {
        match ctx.kind {
            GrantKind::Ssh => Ok(None),
            GrantKind::Sudo => sudo_command::invocation_of(peer_pid)
                .map(Some)
                .map_err(|r| format!("{}: {}", Self::grant_holder(ctx), r.0)),
        }
    }

    fn covers(grant: &Request, invocation: Option<&Invocation>) -> bool {
        match invocation {
            None => true,
            Some(i) => grant.command().is_some_and(|c| i.covered_by(c)),
        }
    }

    fn no_grant(holder: &str, kind: GrantKind, invocation: Option<&Invocation>) -> String {
        match invocation {
            Some(Invocation::Run(argv)) => format!(
                "{holder} holds no active sudo grant for {}",
                display_command(argv)
            ),
            _ => format!("{holder} holds no active {} grant", kind.as_str()),
        }
    }

    /// Registers a session under the grant that covers it; a session no grant covers is
    /// refused (pam_jit lets break-glass members through on its own), so skipping the account
    /// check (`Defaults !pam_acct_mgmt`, a `sufficient` module before pam_jit) gains nothing.
    fn open_session(
        &self,
        actor: &Actor,
        peer_pid: u32,
        info: SessionInfo,
    ) -> Result<Response, Failure> {
        authz::may_query_grants(actor)?;
        let holder = Self::grant_holder(&info.pam).to_string();
        let invocation = match Self::invocation(&info.pam, peer_pid) {
            Ok(i) => i,
            Err(reason) => return Ok(Response::Denied { reason }),
        };
        let now = self.clock.now();
        let found = {
            let reg = self.read_registry();
            let found = reg
                .active_for(&holder, info.pam.kind, now)
                .find(|r| Self::covers(r, invocation.as_ref()));
            found.cloned()
        };
        let Some(found) = found else {
            return Ok(Response::Denied {
                reason: Self::no_grant(&holder, info.pam.kind, invocation.as_ref()),
            });
        };
        // A recorded SSH session that cannot be recorded does not run.
        let tlog_conf = match self.enforcement.session_recording(&found) {
            Ok(conf) => conf,
            Err(e) => {
                let ev = event_for(
                    EventKind::InternalError,
                    &found,
                    format!("SSH session refused: it cannot be recorded: {e}"),
                );
                self.events.emit(&ev);
                return Ok(Response::Denied {
                    reason: format!(
                        "grant {} records SSH sessions, and this one cannot be: {e}",
                        found.id
                    ),
                });
            }
        };
        let mut session = Session {
            pid: info.pid,
            service: info.pam.service.clone(),
            user: info.pam.user.clone(),
            ruser: info.pam.ruser.clone(),
            tty: info.pam.tty.clone(),
            rhost: info.pam.rhost.clone(),
            audit_session: info.audit_session,
            opened_at: now,
            process: None,
        };
        // Into the grant's cgroup first, so the record can say whether it got there (a
        // restarted jitd relies on it). If the grant ends meanwhile, the cgroup is ended with
        // it and the registration below is refused.
        let adopted = self.enforcement.adopt_session(&found, &mut session);
        // What the holder has scheduled before anything of the grant runs: its end reports
        // what was added since.
        let jobs = (found.kind() == GrantKind::Ssh && found.jobs_at_start.is_none())
            .then(|| self.enforcement.user_jobs(&found));
        // In the grant's cgroup and nothing for the record alone to keep: answered from memory.
        let stored_later = adopted.is_ok() && jobs.is_none();
        let registered = if stored_later {
            self.register_session_in_memory(&found.id, &session)
        } else {
            self.register_session_durably(&found.id, &session, jobs)
        };
        // A grant that ended a moment ago is a refusal, not a failure of jitd: with
        // fail=open an error would let the session run.
        let grant = match registered {
            Ok(g) => g,
            Err(f) => return Ok(Response::Denied { reason: f.message }),
        };
        if let Err(e) = adopted {
            let mut ev = event_for(
                EventKind::InternalError,
                &grant,
                format!("cannot track session pid {}: {e}", session.pid),
            );
            ev.extra.push(("PID", session.pid.to_string()));
            self.events.emit(&ev);
        }
        // The grant may have ended right after the registration, its processes ended before
        // this one started any. Refused, the session never runs (sudo exits without running
        // the command).
        if !self.is_active(&grant.id) {
            return Ok(Response::Denied {
                reason: format!("grant {} ended while the session opened", grant.id),
            });
        }
        let mut ev = event_for(
            EventKind::SessionOpened,
            &grant,
            format!("{} session opened", info.pam.service),
        );
        ev.extra.push(("PID", session.pid.to_string()));
        ev.extra.push(("SERVICE", info.pam.service.clone()));
        if let Some(rhost) = &info.pam.rhost {
            ev.extra.push(("RHOST", rhost.clone()));
        }
        if let Some(tty) = &info.pam.tty {
            ev.extra.push(("TTY", tty.clone()));
        }
        if stored_later {
            self.defer(Deferred::SessionOpened {
                id: grant.id.clone(),
                event: Box::new(ev),
            });
        } else {
            self.events.emit(&ev);
        }
        Ok(Response::SessionRegistered {
            grant_id: Some(grant.id.to_string()),
            tlog_conf,
        })
    }

    /// Registers `session` in memory and answers at once; the recorder thread stores the
    /// record and logs the open afterwards ([`Deferred::SessionOpened`]). Only for a session
    /// already in the grant's cgroup, which is what a restarted jitd ends with the grant if
    /// the record never reached the disk (docs/faults.md, "Sessions: answered before they
    /// are stored").
    fn register_session_in_memory(
        &self,
        id: &GrantId,
        session: &Session,
    ) -> Result<Request, Failure> {
        let turn = self.registry.turn();
        let mut next = turn.get(id).ok_or_else(|| self.not_found(id))?;
        if next.next_deadline().is_some_and(|d| d <= self.clock.now()) {
            return Err(Failure::new(
                ErrorCode::InvalidState,
                format!("grant {id} has ended"),
            ));
        }
        add_session(&mut next, session.clone())?;
        turn.put(next.clone());
        Ok(next)
    }

    /// Registers `session` and stores it before answering: for a session outside any cgroup
    /// (only its record lets a restarted jitd find it) and for an SSH grant's first session,
    /// whose record of the holder's scheduled jobs decides what its end stops.
    fn register_session_durably(
        &self,
        id: &GrantId,
        session: &Session,
        jobs: Option<crate::core::left_behind::UserJobs>,
    ) -> Result<Request, Failure> {
        let s = session.clone();
        self.transition(id, move |r, _now| {
            add_session(r, s)?;
            if r.jobs_at_start.is_none() {
                r.jobs_at_start = jobs.map(Box::new);
            }
            Ok(None)
        })
    }

    fn is_active(&self, id: &GrantId) -> bool {
        let now = self.clock.now();
        self.read_registry().get(id).is_some_and(|r| {
            r.state() == State::Active && r.window().is_some_and(|w| now < w.expires_at)
        })
    }

    fn close_session(&self, actor: &Actor, info: &SessionInfo) -> Result<Response, Failure> {
        authz::may_query_grants(actor)?;
        let holder = Self::grant_holder(&info.pam);
        let id = {
            let reg = self.read_registry();
            let found = reg
                .with_session(info.pid)
                .find(|r| *r.user == *holder && r.sessions.iter().any(|s| s.pid == info.pid));
            found.map(|r| r.id.clone())
        };
        let Some(id) = id else {
            return Ok(Response::SessionRegistered {
                grant_id: None,
                tlog_conf: None,
            });
        };
        let pid = info.pid;
        // In memory at once; stored and logged after the answer (see `Deferred`).
        {
            let turn = self.registry.turn();
            let Some(mut next) = turn.get(&id) else {
                return Ok(Response::SessionRegistered {
                    grant_id: None,
                    tlog_conf: None,
                });
            };
            next.sessions.retain(|s| s.pid != pid);
            turn.put(next);
        }
        self.defer(Deferred::SessionClosed {
            id: id.clone(),
            pid,
            service: info.pam.service.clone(),
        });
        Ok(Response::SessionRegistered {
            grant_id: Some(id.to_string()),
            tlog_conf: None,
        })
    }

    // ---- requests -----------------------------------------------------------------------

    fn new_id(&self, reg: &Registry) -> Result<GrantId, Failure> {
        for _ in 0..8 {
            let id = GrantId::random()
                .map_err(|e| Failure::new(ErrorCode::Internal, format!("no randomness: {e}")))?;
            if reg.get(&id).is_none() {
                return Ok(id);
            }
        }
        Err(Failure::new(
            ErrorCode::Internal,
            "cannot allocate a request id",
        ))
    }

    /// Validates the request and matches it against the policy: which role, who approves,
    /// and whether it is decided at once.
    fn submission(&self, who: &Actor, new: &NewRequest) -> Result<(Submission, Route), Failure> {
        let checked = submission::check(new).map_err(|m| Failure::new(ErrorCode::BadRequest, m))?;
        let ask = Ask {
            who: Requester {
                user: &who.name,
                groups: &who.groups,
            },
            target: &checked.target,
            role: new.role.as_deref(),
            duration: checked.duration,
        };
        let plan = self.policy().decide(
            &ask,
            &checked.reason,
            checked.ticket.as_deref(),
            self.clock.now(),
        )?;
        let sub = Submission {
            uid: who.uid,
            user: who.name.clone(),
            target: checked.target,
            duration: Duration::seconds(plan.duration.as_secs() as i64),
            reason: checked.reason,
            ticket: checked.ticket,
            role: plan.role,
            approvals_required: plan.approvals_required,
            approver_groups: plan.approver_groups,
            record: plan.record,
        };
        Ok((sub, plan.route))
    }

    /// Records a brand-new request: audit first (refused if it cannot be logged), then the
    /// store, then the registry.
    fn create(
        &self,
        sub: Submission,
        decide: impl FnOnce(&mut Request, DateTime<Utc>) -> Result<(), Failure>,
    ) -> Result<Request, Failure> {
        let turn = self.registry.turn();
        let pending = turn.view(|reg| reg.pending_of(sub.uid));
        if pending >= MAX_PENDING_PER_USER {
            return Err(Failure::new(
                ErrorCode::PolicyDenied,
                format!("{} already has {pending} pending requests: cancel some first (jit-elevate list)", sub.user),
            ));
        }
        let id = turn.view(|reg| self.new_id(reg))?;
        let now = self.clock.now();
        let pending_ttl = Duration::seconds(self.config.pending_ttl.as_secs() as i64);
        let mut r = Request::open(id, sub, now, pending_ttl);
        decide(&mut r, now)?;
        let kind = if r.break_glass.is_some() {
            EventKind::BreakGlass
        } else if r.state() == State::Active {
            EventKind::Approved
        } else {
            EventKind::Requested
        };
        let mut ev = event_for(
            EventKind::Requested,
            &r,
            format!(
                "{} asked for {} for {}",
                r.user,
                r.command_display(),
                jit_proto::duration::format(StdDuration::from_secs(r.duration_secs))
            ),
        );
        if kind == EventKind::Approved {
            ev.approver = r.decisions.first().map(|d| d.by.to_string());
            ev.message = format!(
                "{} granted {} to {}",
                ev.approver.clone().unwrap_or_default(),
                r.command_display(),
                r.user
            );
            ev.kind = Some(EventKind::Approved);
        }
        if let Some(login) = &r.login {
            // A login waits minutes, not the hour a request may: approvers must know.
            let from = login.rhost.as_deref().unwrap_or("an unknown host");
            ev.message
                .push_str(&format!(", waiting at an SSH login from {from}"));
            if let (State::Pending, Some(until)) = (r.state(), r.next_deadline()) {
                ev.message.push_str(&format!(" until {}", rfc3339(until)));
            }
            ev.extra.push(("RHOST", from.to_string()));
        }
        if kind == EventKind::BreakGlass {
            ev.message = format!(
                "BREAK-GLASS: {} took {} through role {} without approval; review it with `jitd review {}`",
                r.user,
                r.command_display(),
                r.role.as_deref().unwrap_or("?"),
                r.id
            );
            ev.kind = Some(EventKind::BreakGlass);
        }
        self.log_ahead(&mut ev, &mut r).map_err(|e| {
            Failure::new(
                ErrorCode::Unavailable,
                format!("refused: the audit log cannot be written ({e}); nothing was recorded"),
            )
        })?;
        failpoint::hit("create_after_audit");
        let installed = self.install_if_opened(None, &mut r, now);
        failpoint::hit("create_after_install");
        self.commit(&turn, &r, installed.as_ref())?;
        failpoint::hit("create_after_persist");
        drop(turn);
        self.metrics.count_outcome(State::Pending);
        if r.state() != State::Pending {
            self.count_decided(&r, now);
        }
        self.events.publish(&ev);
        self.announce_install(&r, installed);
        self.poke();
        Ok(r)
    }

    /// When `next` opens or moves a window (approval, extension), installs it on the host
    /// before anyone can see it active: `jit-elevate` runs sudo as soon as it sees `active`,
    /// so the drop-in must already be there. On failure the grant fails with the reason,
    /// recorded in the audit log. Returns the install's outcome, if one was made.
    ///
    /// Runs in the writer's turn, which PAM checks do not wait on. A crash after the install
    /// and before the record is stored leaves a drop-in without an active grant, which startup
    /// reconciliation removes.
    fn install_if_opened(
        &self,
        before: Option<&Request>,
        next: &mut Request,
        now: DateTime<Utc>,
    ) -> Option<Result<(), String>> {
        let opened = next.state() == State::Active
            && before.is_none_or(|b| b.state() != State::Active || b.window() != next.window());
        if !opened {
            return None;
        }
        let outcome = self.enforcement.install(next);
        if let Err(why) = &outcome {
            if next.fail(why.clone(), now).is_ok() {
                let ev = event_for(
                    EventKind::GrantFailed,
                    next,
                    format!("grant could not be installed: {why}"),
                );
                // The grant fails whether or not that can be logged; emit reports a
                // failing audit log to the other sinks.
                self.events.emit(&ev);
            }
        }
        Some(outcome)
    }

    /// Stores `r` and publishes it in the registry. If it cannot be stored, an install made
    /// for it is taken back at once rather than left to reconciliation.
    fn commit(
        &self,
        turn: &WriterTurn,
        r: &Request,
        installed: Option<&Result<(), String>>,
    ) -> Result<(), Failure> {
        // The audit record this change was logged with, if it was ([`Service::log_ahead`]).
        let logged = turn
            .view(|reg| reg.get(&r.id).map(|c| c.audit_seq))
            .is_none_or(|before| before != r.audit_seq)
            .then_some(r.audit_seq)
            .filter(|&seq| seq != 0);
        if let Err(f) = turn.write(|| self.persist(r, logged)) {
            if matches!(installed, Some(Ok(()))) {
                let how = turn.view(|reg| Self::withdrawal(reg, r, self.clock.now()));
                self.enforcement.withdraw(r, how);
            }
            return Err(f);
        }
        turn.put(r.clone());
        Ok(())
    }

    /// Takes away what ended grant `r` gave ([`Enforcement::withdraw`]). Call it without
    /// holding the registry lock.
    fn withdraw(&self, r: &Request) {
        let how = Self::withdrawal(&self.read_registry(), r, self.clock.now());
        self.enforcement.withdraw(r, how);
    }

    /// How to withdraw `r`: an SSH grant that was its holder's last login also stops their
    /// systemd user manager.
    fn withdrawal(reg: &Registry, r: &Request, now: DateTime<Utc>) -> Withdrawal {
        Withdrawal {
            stop_user_manager: user_manager::stops_user_manager(
                r,
                reg.active_for(&r.user, GrantKind::Ssh, now),
            ),
        }
    }

    /// Logs a successful install (after the lock is released).
    fn announce_install(&self, r: &Request, installed: Option<Result<(), String>>) {
        if let Some(Ok(())) = installed {
            self.events
                .emit(&event_for(EventKind::GrantInstalled, r, "grant installed"));
        }
    }

    /// Logs `event`, the change about to be stored as `r`, ahead of storing it, and stamps `r`
    /// with the record's `seq` ([`Request::audit_seq`]): a restarted jitd can then tell a
    /// change that was logged and never stored (`core::unstored_change`).
    fn log_ahead(&self, event: &mut Event, r: &mut Request) -> std::io::Result<()> {
        event.extra.push((STORED_AFTER, "yes".into()));
        self.events.audit(event)?;
        if let Some(at) = &event.audit {
            r.audit_seq = at.seq;
        }
        Ok(())
    }

    /// Stores `r`. `logged`: the `seq` of the audit record of the change being stored, if it
    /// was logged ahead; a failure says that record did not take effect.
    fn persist(&self, r: &Request, logged: Option<u64>) -> Result<(), Failure> {
        self.store.put(r).map_err(|e| {
            let mut ev = event_for(
                EventKind::InternalError,
                r,
                match logged {
                    Some(seq) => format!(
                        "cannot persist state: {e}. The change was refused and not made: audit \
                         record {seq}, written just before, did not take effect"
                    ),
                    None => {
                        format!("cannot persist state: {e}. The change was refused and not made")
                    }
                },
            );
            if let Some(seq) = logged {
                ev.extra.push((NOT_STORED, seq.to_string()));
            }
            self.events.emit(&ev);
            Failure::new(
                ErrorCode::Unavailable,
                format!("the state directory cannot be written ({e}); nothing was changed"),
            )
        })
    }

    fn submit(&self, actor: &Actor, new: &NewRequest) -> Result<Response, Failure> {
        let (sub, route) = self.submission(actor, new)?;
        let role = sub.role.clone().unwrap_or_default();
        let r = self.create(sub, |r, now| Self::route(r, &route, &role, now))?;
        Ok(shown(&r))
    }

    /// Sends a new request `route`'s way: to the approvers (it stays pending), or granted at
    /// once by an automatic rule or a break-glass role of `role`.
    fn route(
        r: &mut Request,
        route: &Route,
        role: &str,
        now: DateTime<Utc>,
    ) -> Result<(), Failure> {
        match route {
            Route::Approvers => {}
            Route::Rule(rule) => r.grant_at_once(
                &By::rule(rule),
                format!("approved automatically by rule {rule} of role {role}"),
                false,
                now,
            )?,
            Route::BreakGlass => r.grant_at_once(
                &By::break_glass(),
                format!("break-glass role {role}: no approval; flagged for review"),
                true,
                now,
            )?,
        }
        Ok(())
    }

    fn grant(&self, actor: &Actor, user: &str, new: &NewRequest) -> Result<Response, Failure> {
        // Only approvers learn anything about other users' roles.
        let approver_groups = self.policy().all_approver_groups();
        if !authz::is_approver(actor, &approver_groups) {
            return Err(authz::Denial::NotAnApprover {
                groups: approver_groups,
            }
            .into());
        }
        let uid = identity::uid_of(user).map_err(|m| Failure::new(ErrorCode::BadRequest, m))?;
        let grantee =
            identity::actor_for_uid(uid).map_err(|m| Failure::new(ErrorCode::BadRequest, m))?;
        // The grantee must be covered by a role; the granting approver counts as one
        // approval of it (a role needing two still waits for a second approver).
        let (sub, _) = self.submission(&grantee, new)?;
        authz::may_grant(actor, &sub.approver_groups, uid)?;
        let by = By::user(&actor.name, actor.uid);
        let r = self.create(sub, |r, now| {
            r.approve(&by, Some("granted directly".into()), now)?;
            Ok(())
        })?;
        Ok(shown(&r))
    }

    /// Applies `step` to the current record in the writer's turn, records `event` (refusing if
    /// the audit log fails), persists, and only then publishes the new version.
    fn transition(
        &self,
        id: &GrantId,
        step: impl FnOnce(&mut Request, DateTime<Utc>) -> Result<Option<Event>, Failure>,
    ) -> Result<Request, Failure> {
        let turn = self.registry.turn();
        let current = turn.get(id).ok_or_else(|| self.not_found(id))?;
        let now = self.clock.now();
        if current.next_deadline().is_some_and(|d| d <= now) {
            return Err(Failure::new(
                ErrorCode::InvalidState,
                format!("request {id} has reached its deadline and is being closed"),
            ));
        }
        let mut next = current.clone();
        let before = current;
        let mut event = step(&mut next, now)?;
        if let Some(event) = &mut event {
            self.log_ahead(event, &mut next).map_err(|e| {
                Failure::new(
                    ErrorCode::Unavailable,
                    format!("refused: the audit log cannot be written ({e}); nothing was changed"),
                )
            })?;
        }
        failpoint::hit("transition_after_audit");
        let installed = self.install_if_opened(Some(&before), &mut next, now);
        failpoint::hit("transition_after_install");
        self.commit(&turn, &next, installed.as_ref())?;
        failpoint::hit("transition_after_persist");
        drop(turn);
        if next.state() != before.state() {
            if before.state() == State::Pending {
                self.count_decided(&next, now);
            } else {
                self.metrics.count_outcome(next.state());
            }
        }
        // journald and syslog hear of it outside the lock, so PAM checks never wait on them.
        if let Some(event) = &event {
            self.events.publish(event);
        }
        self.announce_install(&next, installed);
        if next.state() == State::Failed && before.state() != State::Failed {
            self.withdraw(&next);
        }
        self.poke();
        Ok(next)
    }

    /// What an unknown id gets: where else to look, since history leaves after `retention`.
    fn not_found(&self, id: &GrantId) -> Failure {
        Failure::new(
            ErrorCode::NotFound,
            format!(
                "no request {id} (see `jitd list --all`; a request that ended more than {} ago is forgotten, and `jitd audit --id {id}` shows its trail)",
                jit_proto::duration::format(self.config.retention)
            ),
        )
    }

    /// A pending request left `pending` (approved, denied, cancelled, timed out, failed to
    /// install): counted by outcome, and when people or rules decided it, how long it waited.
    fn count_decided(&self, r: &Request, now: DateTime<Utc>) {
        self.metrics.count_outcome(r.state());
        if matches!(r.state(), State::Active | State::Denied | State::Failed) {
            let waited = (now - r.requested_at).num_milliseconds().max(0) as f64 / 1e3;
            self.metrics.decision_seconds.observe(waited);
        }
    }

    /// Counters and gauges for Prometheus; as global as `jitd list` of an approver, so for
    /// root and approvers only.
    fn metrics(&self, actor: &Actor) -> Result<Response, Failure> {
        let approver_groups = self.policy().all_approver_groups();
        if !authz::is_approver(actor, &approver_groups) {
            return Err(authz::Denial::NotAnApprover {
                groups: approver_groups,
            }
            .into());
        }
        Ok(Response::Metrics {
            text: self.metrics_text(),
        })
    }

    /// Logs an event of jitd's own (best effort, as [`EventLog::emit`]).
    pub fn report(&self, event: &Event) {
        self.events.emit(event);
    }

    /// The Prometheus exposition of jitd's counters and of the registry as it is now.
    pub fn metrics_text(&self) -> String {
        let mut gauges = Gauges::default();
        {
            // Only what has a deadline, i.e. what is pending or active: the walk holds the
            // registry's lock, and history (up to `retention` of it) would make it many times
            // longer for nothing.
            let reg = self.read_registry();
            for (_, r) in reg.by_deadline() {
                match r.state() {
                    State::Active => {
                        *gauges
                            .active
                            .entry((r.kind().as_str(), r.role.as_deref().unwrap_or("").into()))
                            .or_default() += 1;
                    }
                    State::Pending => gauges.pending += 1,
                    _ => {}
                }
            }
        }
        self.metrics.render(&gauges)
    }

    fn parse_id(id: &str) -> Result<GrantId, Failure> {
        GrantId::try_from(id.to_string()).map_err(|m| Failure::new(ErrorCode::BadRequest, m))
    }

    fn lookup(&self, id: &GrantId) -> Result<Request, Failure> {
        self.read_registry()
            .get(id)
            .cloned()
            .ok_or_else(|| self.not_found(id))
    }

    fn approve(
        &self,
        actor: &Actor,
        id: &str,
        comment: Option<String>,
        expect: Option<&str>,
    ) -> Result<Response, Failure> {
        let id = Self::parse_id(id)?;
        let policy = self.policy();
        let by = By::user(&actor.name, actor.uid);
        let approver = actor.name.clone();
        // The requester and the earlier approvers as they are now: looked up before the lock.
        let people = self.people_now(&id);
        let mut done = None;
        let r = self.transition(&id, |r, now| {
            let self_approval = policy.self_approval(r.role.as_deref());
            authz::may_decide(actor, r, self_approval)?;
            if expect.is_some_and(|t| t != approval_token(r)) {
                return Err(Failure::new(
                    ErrorCode::InvalidState,
                    format!(
                        "{} changed since it was shown to you: nothing was approved; look again (jitd show {}) and approve again",
                        r.id, r.id
                    ),
                ));
            }
            recheck::requester_still_allowed(&policy, r, &people, now)?;
            let stale = authz::stale_approvals(r, &r.approver_groups, self_approval, |d| {
                people.approver(d)
            });
            let voided: Vec<usize> = stale.iter().map(|(i, _)| *i).collect();
            r.void_approvals(&voided);
            let outcome = r.approve(&by, comment, now)?;
            done = Some(outcome);
            let mut ev = event_for(EventKind::Approved, r, "");
            ev.approver = Some(approver.clone());
            ev.message = match outcome {
                Approval::Granted => format!("{approver} approved; the grant is active"),
                Approval::Recorded { missing } => {
                    format!("{approver} approved; {missing} more approval(s) needed")
                }
                Approval::Extended => {
                    ev.kind = Some(EventKind::Extended);
                    ev.extra.push(("EXTENSION", "granted".into()));
                    format!("{approver} approved the extension; the grant now lasts longer")
                }
                Approval::AlreadyCounted { .. } if stale.is_empty() => return Ok(None),
                Approval::AlreadyCounted { missing } => {
                    format!("{approver} had approved already; {missing} more approval(s) needed")
                }
            };
            if !stale.is_empty() {
                let why: Vec<&str> = stale.iter().map(|(_, w)| w.as_str()).collect();
                ev.message.push_str(&format!(" ({})", why.join("; ")));
            }
            Ok(Some(ev))
        })?;
        if let Some(Approval::Extended) = done {
            self.extended(&r);
        }
        Ok(shown(&r))
    }

    fn deny(&self, actor: &Actor, id: &str, reason: String) -> Result<Response, Failure> {
        let id = Self::parse_id(id)?;
        let by = By::user(&actor.name, actor.uid);
        let policy = self.policy();
        let r = self.transition(&id, |r, now| {
            authz::may_decide(actor, r, policy.self_approval(r.role.as_deref()))?;
            let ends = policy.deny_ends(r.role.as_deref());
            let what = match r.deny(&by, reason.clone(), ends, now)? {
                Denial::Ended => "denied the request",
                Denial::Recorded => "denied; the role lets other approvers still approve",
                Denial::ExtensionRefused => "refused the extension; the grant goes on as it was",
            };
            let mut ev = event_for(
                EventKind::Denied,
                r,
                format!("{} {what}: {reason}", actor.name),
            );
            ev.approver = Some(actor.name.clone());
            Ok(Some(ev))
        })?;
        Ok(shown(&r))
    }

    fn revoke(&self, actor: &Actor, id: &str, reason: String) -> Result<Response, Failure> {
        let id = Self::parse_id(id)?;
        let by = By::user(&actor.name, actor.uid);
        let r = self.transition(&id, |r, now| {
            // Revoking only ever takes access away, so an approver may revoke their own grant.
            authz::may_decide(actor, r, true)?;
            r.revoke(&by, reason.clone(), now)?;
            let mut ev = event_for(
                EventKind::Revoked,
                r,
                format!("{} revoked the grant: {reason}", actor.name),
            );
            ev.approver = Some(actor.name.clone());
            Ok(Some(ev))
        })?;
        self.withdraw(&r);
        Ok(shown(&r))
    }

    fn cancel(&self, actor: &Actor, id: &str) -> Result<Response, Failure> {
        let id = Self::parse_id(id)?;
        let by = By::user(&actor.name, actor.uid);
        let r = self.transition(&id, |r, now| {
            authz::may_act_as_requester(actor, r)?;
            r.cancel(&by, now)?;
            Ok(Some(event_for(
                EventKind::Cancelled,
                r,
                format!("{} cancelled the request", actor.name),
            )))
        })?;
        Ok(shown(&r))
    }

    fn done(&self, actor: &Actor, id: &str) -> Result<Response, Failure> {
        let id = Self::parse_id(id)?;
        let by = By::user(&actor.name, actor.uid);
        let r = self.transition(&id, |r, now| {
            authz::may_act_as_requester(actor, r)?;
            r.complete(&by, now)?;
            Ok(Some(event_for(
                EventKind::Completed,
                r,
                format!("{} finished; the grant ended early", actor.name),
            )))
        })?;
        self.withdraw(&r);
        Ok(shown(&r))
    }

    fn show(&self, actor: &Actor, id: &str) -> Result<Response, Failure> {
        let id = Self::parse_id(id)?;
        let r = match self.lookup(&id) {
            Ok(r) => r,
            Err(f) => return self.fleet_view(actor, &id).unwrap_or(Err(f)),
        };
        if !authz::may_view(actor, &r, &self.policy().defaults.approver_groups) {
            return Err(authz::Denial::NotYours.into());
        }
        Ok(self.shown_with_hosts(&r))
    }

    /// Deny, revoke, cancel or done of a fleet request (written to the store for every host);
    /// `None` when `id` is a local request.
    fn fleet_end_of(
        &self,
        actor: &Actor,
        id: &str,
        end: FleetEnd,
        note: Option<String>,
    ) -> Option<Result<Response, Failure>> {
        let id = GrantId::try_from(id.to_string()).ok()?;
        if self
            .read_registry()
            .get(&id)
            .is_some_and(|r| r.fleet.is_none())
        {
            return None;
        }
        self.fleet_end(actor, &id, end, note)
    }

    fn list(&self, actor: &Actor, all: bool, unreviewed: bool, page: u32) -> Response {
        let policy = self.policy();
        let reg = self.read_registry();
        let mut found: Vec<&Request> = reg
            .iter()
            .filter(|r| {
                if unreviewed {
                    r.awaits_review()
                } else {
                    all || !r.state().is_terminal()
                }
            })
            .filter(|r| authz::may_view(actor, r, &policy.defaults.approver_groups))
            .collect();
        found.sort_by(|a, b| (a.requested_at, &a.id).cmp(&(b.requested_at, &b.id)));
        // Keep the answer within one frame: a hundred (the newest, or the hundred before the
        // newest `page - 1` hundreds), long texts clipped, and fewer if even that is too large;
        // the answer says how many older ones were left out.
        const MAX_LISTED: usize = 100;
        let newer = (page.max(1) as usize - 1).saturating_mul(MAX_LISTED);
        let end = found.len().saturating_sub(newer);
        let skip = end.saturating_sub(MAX_LISTED);
        let mut requests: Vec<_> = found[skip..end].iter().map(|r| list_view(r)).collect();
        drop(reg);
        if page <= 1 && !unreviewed {
            // Fleet requests waiting for a decision, as the store holds them (each host still
            // judges for itself).
            requests.extend(self.fleet_pending(actor));
        }
        let omitted = skip + fit_to_frame(&mut requests);
        Response::Requests { requests, omitted }
    }

    // ---- deadlines ----------------------------------------------------------------------

    fn poke(&self) {
        let (lock, cvar) = &self.wake;
        let mut generation = lock.lock().unwrap_or_else(|e| e.into_inner());
        *generation += 1;
        cvar.notify_all();
    }

    /// Ends every request whose deadline has passed, handing each to `record` for the slow
    /// part. `context` is appended to log messages.
    ///
    /// Access goes first and in memory: the registry stops answering for the grant and its
    /// drop-in is removed before anything is written. Persisting and logging an end costs
    /// about four fsyncs, so doing it in line made every later grant in a burst wait for the
    /// disk (1,000 grants ending over 10 s ended up to 2 s late); the scheduler hands it to
    /// a recorder thread instead. A crash before the end is recorded is safe: at startup the
    /// grant is still past its deadline and is ended again.
    fn apply_deadlines(&self, context: &'static str, record: &mut dyn FnMut(Ended)) {
        let now = self.clock.now();
        let due = self.read_registry().due(now);
        for id in due {
            let turn = self.registry.turn();
            let Some(mut next) = turn.get(&id) else {
                continue;
            };
            let Some(end) = next.tick(now) else { continue };
            turn.put(next.clone());
            drop(turn);
            self.metrics.count_outcome(end.state());
            if end == End::Expired {
                self.withdraw(&next);
                if let Some(w) = next.window() {
                    let late = (self.clock.now() - w.expires_at).num_microseconds();
                    self.metrics
                        .revocation_lateness_seconds
                        .observe(late.unwrap_or(0).max(0) as f64 / 1e6);
                }
            }
            failpoint::hit("expiry_after_withdraw");
            record(Ended { id, end, context });
        }
    }

    /// Warns the sessions of grants that end within `warn_before`.
    fn send_warnings(&self) {
        let now = self.clock.now();
        let horizon = now + Duration::seconds(self.config.warn_before.as_secs() as i64);
        let due: Vec<Request> = {
            let reg = self.read_registry();
            let warned = self.warned.lock().unwrap_or_else(|e| e.into_inner());
            // In deadline order, so only requests ending within the horizon are looked at,
            // not every request on every wake.
            reg.by_deadline()
                .take_while(|(at, _)| *at <= horizon)
                .map(|(_, r)| r)
                .filter(|r| r.state() == State::Active && !warned.contains(&r.id))
                .cloned()
                .collect()
        };
        for r in due {
            self.warned
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(r.id.clone());
            let Some(w) = r.window() else { continue };
            let left = (w.expires_at - now).num_seconds().max(0) as u64;
            let msg = format!(
                "jit: your grant {} ({}) ends in {} at {}; ask again with jit-elevate if you need more time",
                r.id,
                r.command_display(),
                jit_proto::duration::format(StdDuration::from_secs(left.max(1))),
                rfc3339(w.expires_at)
            );
            self.enforcement.warn(&r, &msg);
            self.events
                .emit(&event_for(EventKind::ExpiryWarning, &r, msg));
        }
    }

    /// When the scheduler must next wake: the earliest deadline or warning.
    fn next_wake(&self) -> Option<DateTime<Utc>> {
        let reg = self.read_registry();
        let warn = Duration::seconds(self.config.warn_before.as_secs() as i64);
        let warned = self.warned.lock().unwrap_or_else(|e| e.into_inner());
        // An active request's deadline is its expiry, so the first one not yet warned in
        // deadline order is the next to warn: this looks past the warned ones only.
        let next_warning = reg
            .by_deadline()
            .map(|(_, r)| r)
            .find(|r| r.state() == State::Active && !warned.contains(&r.id))
            .and_then(|r| r.window().map(|w| w.expires_at - warn));
        [reg.next_deadline(), next_warning]
            .into_iter()
            .flatten()
            .min()
    }

    /// Converges the host with the records (startup, and periodically from the scheduler).
    pub fn reconcile(&self) {
        // Copies only the records the host can hold something for (reconciling runs visudo
        // and must not hold the registry lock): with 100,000 SSH grants and no sessions, none.
        // When the host cannot say what it holds, every active grant is copied, so that no
        // active grant's processes are taken for leftovers.
        let present: Option<HashSet<String>> = self
            .enforcement
            .present()
            .ok()
            .map(|ids| ids.into_iter().collect());
        let (mut active, mut ended) = (Vec::new(), Vec::new());
        {
            let reg = self.read_registry();
            for r in reg.iter() {
                let on_host = present.as_ref().is_none_or(|p| p.contains(r.id.as_str()));
                match r.state() {
                    State::Active if on_host || r.kind() == GrantKind::Sudo => {
                        active.push(r.clone())
                    }
                    State::Active => {}
                    _ if on_host && r.window().is_some() => ended.push(r.clone()),
                    _ => {}
                }
            }
        }
        let mut verdicts = HashMap::new();
        active.retain(|r| self.still_trusted(r, &mut verdicts));
        let ended: Vec<&Request> = ended.iter().collect();
        let active_refs: Vec<&Request> = active.iter().collect();
        for line in self.enforcement.reconcile(&active_refs, &ended) {
            self.events.emit(&Event::new(EventKind::Reconciled, line));
        }
    }

    /// Whether active grant `r` may stay: a sudo grant whose program someone other than root
    /// can now change (a chmod, a chown, a swapped directory or link) fails and is withdrawn at
    /// once, and the audit log says why. `verdicts` caches the check per program for one pass.
    fn still_trusted(
        &self,
        r: &Request,
        verdicts: &mut HashMap<String, Result<(), String>>,
    ) -> bool {
        let Some(program) = r.command().and_then(|c| c.first()) else {
            return true;
        };
        let verdict = verdicts
            .entry(program.clone())
            .or_insert_with(|| self.enforcement.check_program(program));
        let Err(why) = verdict else {
            return true;
        };
        // Access first, as for an expiry: the registry stops answering for the grant and its
        // drop-in goes before anything is written.
        let failed = {
            let turn = self.registry.turn();
            let Some(mut next) = turn.get(&r.id) else {
                return false;
            };
            if next.fail(why.clone(), self.clock.now()).is_err() {
                // It ended meanwhile; whatever ended it withdrew it.
                return false;
            }
            turn.put(next.clone());
            next
        };
        self.metrics.count_outcome(State::Failed);
        self.withdraw(&failed);
        // As in `record_end`: logged, then stored (a crash between the two leaves the grant
        // active on disk, and the restart's reconciliation fails it again and logs it again;
        // the other way round it would be failed and never logged), and stored again every
        // second while the disk refuses.
        self.events.emit(&event_for(
            EventKind::GrantFailed,
            &failed,
            format!("grant withdrawn at reconciliation: {why}"),
        ));
        self.store_or_retry(&failed, "the failure");
        self.poke();
        false
    }

    /// The expiry scheduler: sleeps until the next deadline (or a change), then applies it.
    /// The sleep is capped at a second so a suspended host or a wall-clock jump is noticed
    /// promptly; deadlines themselves are exact.
    pub fn run_scheduler(&self, reconcile_every: StdDuration) {
        let (to_recorder, deferred) = mpsc::channel::<Deferred>();
        std::thread::scope(|scope| {
            let recorder = std::thread::Builder::new()
                .name("recorder".into())
                .spawn_scoped(scope, move || self.run_recorder(deferred));
            match recorder {
                Ok(_) => {
                    *self.recorder.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some(to_recorder.clone())
                }
                Err(e) => eprintln!(
                    "jitd: cannot start the recorder thread, ends are recorded in line: {e}"
                ),
            }
            // Forgetting old history may remove many files: never in the scheduler's way.
            let sweeper = std::thread::Builder::new()
                .name("history".into())
                .spawn_scoped(scope, || self.run_history_sweeper());
            if let Err(e) = sweeper {
                eprintln!("jitd: cannot start the history thread, history is kept: {e}");
            }
            let mut record = |e: Ended| {
                // Only if the recorder is gone: then record here rather than not at all.
                if let Err(mpsc::SendError(work)) = to_recorder.send(Deferred::End(e)) {
                    self.record(vec![work]);
                }
            };
            self.schedule(reconcile_every, &mut record);
        });
    }

    fn schedule(&self, reconcile_every: StdDuration, record: &mut dyn FnMut(Ended)) {
        let mut last_reconcile = std::time::Instant::now();
        loop {
            self.apply_deadlines("", record);
            self.send_warnings();
            self.record_again();
            self.watch_logins();
            self.end_fleet_grants_while_offline();
            if last_reconcile.elapsed() >= reconcile_every {
                self.reconcile();
                last_reconcile = std::time::Instant::now();
            }
            let (lock, cvar) = &self.wake;
            let generation = lock.lock().unwrap_or_else(|e| e.into_inner());
            let wait = self
                .next_wake()
                .map(|at| {
                    (at - self.clock.now())
                        .to_std()
                        .unwrap_or(StdDuration::ZERO)
                })
                .unwrap_or(StdDuration::MAX)
                .min(StdDuration::from_secs(1));
            if wait.is_zero() {
                continue;
            }
            let start = *generation;
            let _unused = cvar
                .wait_timeout_while(generation, wait, |g| *g == start)
                .unwrap_or_else(|e| e.into_inner());
        }
    }
}
