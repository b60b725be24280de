//! The grant lifecycle: `pending` → `active` → `expired` | `revoked` | `completed` (| `failed`),
//! and `pending` → `denied` | `cancelled` | `timed_out`. Pure: every step takes `now`.

use std::fmt;

use chrono::{DateTime, Duration, Utc};
use jit_proto::{State, Target};

use super::model::{
    Action, BreakGlass, Decision, End, Extension, GrantId, Login, Pass, Phase, Request, Review,
    Window,
};

/// Who performs a step, as far as the record is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct By {
    pub name: String,
    pub uid: Option<u32>,
}

impl By {
    pub fn user(name: &str, uid: u32) -> By {
        By {
            name: name.to_string(),
            uid: Some(uid),
        }
    }

    /// An automatic-approval rule, recorded as `rule:NAME`.
    pub fn rule(name: &str) -> By {
        By {
            name: format!("rule:{name}"),
            uid: None,
        }
    }

    /// A break-glass role's own "approval".
    pub fn break_glass() -> By {
        By {
            name: "break-glass".into(),
            uid: None,
        }
    }

    /// jitd itself: expiry, time-outs, failures.
    pub fn daemon() -> By {
        By {
            name: "jitd".into(),
            uid: None,
        }
    }
}

/// Everything needed to open a request; identity has already been established by the caller.
#[derive(Debug, Clone)]
pub struct Submission {
    pub uid: u32,
    pub user: String,
    pub target: Target,
    pub duration: Duration,
    pub reason: String,
    pub ticket: Option<String>,
    pub role: Option<String>,
    pub approvals_required: u32,
    pub approver_groups: Vec<String>,
    /// What of the grant's sessions is recorded (from its role, else the global `record`).
    pub record: crate::core::recording::Record,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LifecycleError {
    /// The step needs another state; carries the current one.
    WrongState {
        action: Action,
        state: State,
    },
    /// An extension is already waiting for approval.
    ExtensionPending,
    /// Only break-glass grants are reviewed.
    NotBreakGlass,
    AlreadyReviewed {
        by: String,
    },
}

impl fmt::Display for LifecycleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LifecycleError::WrongState { action, state } => {
                let needs = match action {
                    Action::Approve | Action::Deny | Action::Cancel | Action::TimeOut => "pending",
                    _ => "active",
                };
                write!(
                    f,
                    "cannot {} a request that is {} (only a {needs} one)",
                    action.as_str().replace('_', " "),
                    state.as_str()
                )
            }
            LifecycleError::ExtensionPending => write!(
                f,
                "an extension of this grant is already waiting for approval"
            ),
            LifecycleError::NotBreakGlass => {
                write!(f, "only break-glass grants are reviewed")
            }
            LifecycleError::AlreadyReviewed { by } => {
                write!(f, "this break-glass grant was already reviewed by {by}")
            }
        }
    }
}

impl std::error::Error for LifecycleError {}

/// What an approval did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Approval {
    /// Enough distinct approvals: the window starts now.
    Granted,
    /// Recorded; this many more are needed.
    Recorded { missing: u32 },
    /// This approver had already approved; counts once.
    AlreadyCounted { missing: u32 },
    /// The pending extension of an active grant got its last approval: the window grew.
    Extended,
}

/// What a deny did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    /// The request ended.
    Ended,
    /// Recorded only (the role's `deny_ends = false`): others may still approve.
    Recorded,
    /// The pending extension was refused; the grant goes on as it was.
    ExtensionRefused,
}

impl Request {
    /// A new pending request, waiting `pending_ttl` at most for its decision.
    pub fn open(id: GrantId, s: Submission, now: DateTime<Utc>, pending_ttl: Duration) -> Request {
        Request {
            id,
            uid: s.uid,
            user: s.user.into(),
            target: s.target,
            duration_secs: s.duration.num_seconds().max(0) as u64,
            reason: s.reason.into(),
            ticket: s.ticket.map(Into::into),
            role: s.role.map(Into::into),
            approvals_required: s.approvals_required.max(1),
            approver_groups: s.approver_groups.into(),
            record: s.record,
            requested_at: now,
            phase: Phase::Pending {
                until: now + pending_ttl,
            },
            decisions: Vec::new(),
            sessions: Vec::new(),
            failure: None,
            break_glass: None,
            jobs_at_start: None,
            login: None,
            fleet: None,
            audit_seq: 0,
        }
    }

    /// Marks a new pending request as the one `login` waits on, for `wait` at most: it times
    /// out when the login stops waiting (or at the usual pending deadline, if that is sooner).
    pub fn wait_at_login(&mut self, login: Login, wait: Duration) {
        if let Phase::Pending { until } = &mut self.phase {
            *until = (*until).min(self.requested_at + wait);
        }
        self.login = Some(Box::new(login));
    }

    /// The record of a pass pam_jit made without a grant: not a request (nothing was asked,
    /// nothing installed), ended at once as `passed`, and on the review backlog.
    pub fn passed(id: GrantId, s: Submission, pass: Pass, now: DateTime<Utc>) -> Request {
        let mut r = Request::open(id, s, now, Duration::zero());
        r.phase = Phase::Ended {
            end: End::Passed,
            at: now,
            window: None,
        };
        r.break_glass = Some(Box::new(BreakGlass {
            review: None,
            pass: Some(Box::new(pass)),
        }));
        r
    }

    fn step(&mut self, action: Action, by: &By, note: Option<String>, now: DateTime<Utc>) {
        self.decisions.push(Decision {
            action,
            by: by.name.as_str().into(),
            by_uid: by.uid,
            at: now,
            note: note.map(Into::into),
            voided: false,
        });
    }

    fn wrong(&self, action: Action) -> LifecycleError {
        LifecycleError::WrongState {
            action,
            state: self.state(),
        }
    }

    fn duration(&self) -> Duration {
        Duration::seconds(self.duration_secs as i64)
    }

    /// Counts one approval per distinct approver; the window starts when enough are in.
    pub fn approve(
        &mut self,
        by: &By,
        note: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<Approval, LifecycleError> {
        if let Phase::Active {
            extension: Some(ext),
            ..
        } = &mut self.phase
        {
            if ext.approvers.contains(&by.name) {
                return Ok(Approval::AlreadyCounted {
                    missing: ext.missing(),
                });
            }
            ext.approvers.push(by.name.clone());
            let (missing, secs) = (ext.missing(), ext.secs);
            self.step(Action::Approve, by, note.or(Some("extension".into())), now);
            if missing > 0 {
                return Ok(Approval::Recorded { missing });
            }
            self.lengthen(secs);
            return Ok(Approval::Extended);
        }
        if !matches!(self.phase, Phase::Pending { .. }) {
            return Err(self.wrong(Action::Approve));
        }
        if self.approvers().contains(&by.name.as_str()) {
            return Ok(Approval::AlreadyCounted {
                missing: self.approvals_missing(),
            });
        }
        self.step(Action::Approve, by, note, now);
        let missing = self.approvals_missing();
        if missing > 0 {
            return Ok(Approval::Recorded { missing });
        }
        self.start_window(now);
        Ok(Approval::Granted)
    }

    fn start_window(&mut self, now: DateTime<Utc>) {
        self.phase = Phase::Active {
            window: Window {
                approved_at: now,
                expires_at: now + self.duration(),
            },
            extension: None,
        };
    }

    /// Granted without counting approvals: by an automatic rule, or through break-glass
    /// (`break_glass` puts it on the review backlog).
    pub fn grant_at_once(
        &mut self,
        by: &By,
        note: String,
        break_glass: bool,
        now: DateTime<Utc>,
    ) -> Result<(), LifecycleError> {
        if !matches!(self.phase, Phase::Pending { .. }) {
            return Err(self.wrong(Action::Approve));
        }
        self.step(Action::Approve, by, Some(note), now);
        self.start_window(now);
        if break_glass {
            self.break_glass = Some(Box::default());
        }
        Ok(())
    }

    /// The approvals at these indices of `decisions` no longer count (see
    /// [`crate::core::authz::stale_approvals`]). Only a pending request's approvals are voided:
    /// an open window is ended by revoking it, not by recounting.
    pub fn void_approvals(&mut self, indices: &[usize]) {
        if !matches!(self.phase, Phase::Pending { .. }) {
            return;
        }
        for &i in indices {
            if let Some(d) = self.decisions.get_mut(i) {
                if d.action == Action::Approve {
                    d.voided = true;
                }
            }
        }
    }

    /// The policy changed under a pending request (reload): new approvers and count. Returns
    /// true when the approvals already given now suffice and the window started.
    pub fn reassign(
        &mut self,
        role: Option<String>,
        approvals_required: u32,
        approver_groups: Vec<String>,
        now: DateTime<Utc>,
    ) -> bool {
        if !matches!(self.phase, Phase::Pending { .. }) {
            return false;
        }
        self.role = role.map(Into::into);
        self.approvals_required = approvals_required.max(1);
        self.approver_groups = approver_groups.into();
        if self.approvals_missing() == 0 {
            self.start_window(now);
            return true;
        }
        false
    }

    /// The requester asks for `secs` more on an active grant; approvers decide with
    /// `approve`/`deny` as for a request.
    pub fn ask_extension(
        &mut self,
        by: &By,
        secs: u64,
        approvals_required: u32,
        now: DateTime<Utc>,
    ) -> Result<(), LifecycleError> {
        let Phase::Active { extension, .. } = &mut self.phase else {
            return Err(self.wrong(Action::Extend));
        };
        if extension.is_some() {
            return Err(LifecycleError::ExtensionPending);
        }
        *extension = Some(Box::new(Extension {
            secs,
            asked_at: now,
            approvals_required: approvals_required.max(1),
            approvers: Vec::new(),
        }));
        let note = format!(
            "asks for {} more",
            jit_proto::duration::format(std::time::Duration::from_secs(secs))
        );
        self.step(Action::Extend, by, Some(note), now);
        Ok(())
    }

    /// An extension approved at once by a rule or break-glass.
    pub fn extend_at_once(
        &mut self,
        requester: &By,
        approver: &By,
        secs: u64,
        now: DateTime<Utc>,
    ) -> Result<(), LifecycleError> {
        self.ask_extension(requester, secs, 1, now)?;
        self.approve(approver, Some("extension".into()), now)?;
        Ok(())
    }

    /// Moves the window's end. A break-glass grant that was reviewed goes back on the review
    /// backlog: the review covered the time it had, not the time added after it.
    fn lengthen(&mut self, secs: u64) {
        if let Phase::Active { window, extension } = &mut self.phase {
            window.expires_at += Duration::seconds(secs as i64);
            *extension = None;
            self.duration_secs += secs;
            if let Some(bg) = self.break_glass.as_mut() {
                if let Some(old) = bg.review.take() {
                    // Kept on the record as a step, since the review itself is reopened.
                    self.decisions.push(Decision {
                        action: Action::Reviewed,
                        by: old.by.as_str().into(),
                        by_uid: None,
                        at: old.at,
                        note: Some(
                            format!(
                                "reviewed before this extension: {}; to be reviewed again",
                                old.comment
                            )
                            .into(),
                        ),
                        voided: false,
                    });
                }
            }
        }
    }

    /// Keeps an active grant's remaining time within what was approved when "now" is earlier
    /// than its approval: the wall clock was set back while jitd was not running (across a
    /// reboot nothing else remembers the time). Without this the grant would run for the
    /// step on top of its window. Returns the new end when it moved.
    pub fn cap_remaining(&mut self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // The length approved in all (extensions included), not the window as it stands: a
        // capped window is shorter than its `approved_at` says.
        let approved_length = Duration::seconds(self.duration_secs as i64);
        let Phase::Active { window, .. } = &mut self.phase else {
            return None;
        };
        if window.expires_at - now <= approved_length {
            return None;
        }
        window.expires_at = now + approved_length;
        Some(window.expires_at)
    }

    /// An approver marks a break-glass grant reviewed (in any state).
    pub fn review(
        &mut self,
        by: &By,
        comment: String,
        now: DateTime<Utc>,
    ) -> Result<(), LifecycleError> {
        let bg = self
            .break_glass
            .as_mut()
            .ok_or(LifecycleError::NotBreakGlass)?;
        if let Some(r) = &bg.review {
            return Err(LifecycleError::AlreadyReviewed { by: r.by.clone() });
        }
        bg.review = Some(Review {
            by: by.name.clone(),
            at: now,
            comment,
        });
        Ok(())
    }

    fn end(&mut self, end: End, now: DateTime<Utc>) {
        let window = self.window();
        self.phase = Phase::Ended {
            end,
            at: now,
            window,
        };
    }

    /// Ends the request from `from` (pending or active) with `end`, recording the step.
    fn end_from(
        &mut self,
        from: State,
        action: Action,
        end: End,
        by: &By,
        note: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<(), LifecycleError> {
        if self.state() != from {
            return Err(self.wrong(action));
        }
        self.step(action, by, note, now);
        self.end(end, now);
        Ok(())
    }

    /// Denies a pending request (ending it when `ends`, else only recording the deny), or
    /// refuses the pending extension of an active grant.
    pub fn deny(
        &mut self,
        by: &By,
        reason: String,
        ends: bool,
        now: DateTime<Utc>,
    ) -> Result<Denial, LifecycleError> {
        if let Phase::Active { extension, .. } = &mut self.phase {
            if extension.take().is_some() {
                self.step(Action::Deny, by, Some(reason), now);
                return Ok(Denial::ExtensionRefused);
            }
        }
        if !ends && matches!(self.phase, Phase::Pending { .. }) {
            self.step(Action::Deny, by, Some(reason), now);
            return Ok(Denial::Recorded);
        }
        self.end_from(
            State::Pending,
            Action::Deny,
            End::Denied,
            by,
            Some(reason),
            now,
        )?;
        Ok(Denial::Ended)
    }

    pub fn cancel(&mut self, by: &By, now: DateTime<Utc>) -> Result<(), LifecycleError> {
        self.end_from(
            State::Pending,
            Action::Cancel,
            End::Cancelled,
            by,
            None,
            now,
        )
    }

    /// The login waiting on this pending request stopped waiting before a decision: it is
    /// `cancelled` (the client went away) or `timed_out` (the login's wait ran out), `why`
    /// saying so on the record.
    pub fn abandon_login(
        &mut self,
        timed_out: bool,
        why: String,
        now: DateTime<Utc>,
    ) -> Result<(), LifecycleError> {
        let (action, end) = match timed_out {
            true => (Action::TimeOut, End::TimedOut),
            false => (Action::Cancel, End::Cancelled),
        };
        self.end_from(State::Pending, action, end, &By::daemon(), Some(why), now)
    }

    pub fn revoke(
        &mut self,
        by: &By,
        reason: String,
        now: DateTime<Utc>,
    ) -> Result<(), LifecycleError> {
        self.end_from(
            State::Active,
            Action::Revoke,
            End::Revoked,
            by,
            Some(reason),
            now,
        )
    }

    /// The requester's task is finished: the grant ends early.
    pub fn complete(&mut self, by: &By, now: DateTime<Utc>) -> Result<(), LifecycleError> {
        self.end_from(State::Active, Action::Done, End::Completed, by, None, now)
    }

    /// The host could not install the grant, or can no longer carry it (its program became
    /// changeable by others); `why` is shown to the requester and approvers.
    pub fn fail(&mut self, why: String, now: DateTime<Utc>) -> Result<(), LifecycleError> {
        self.end_from(
            State::Active,
            Action::Fail,
            End::Failed,
            &By::daemon(),
            Some(why.clone()),
            now,
        )?;
        self.failure = Some(why.into());
        Ok(())
    }

    /// Applies whatever deadline has passed: a pending request times out, an active grant
    /// expires. Returns how it ended, if it did.
    pub fn tick(&mut self, now: DateTime<Utc>) -> Option<End> {
        let (action, end) = match self.phase {
            Phase::Pending { until } if now >= until => (Action::TimeOut, End::TimedOut),
            Phase::Active { window, .. } if now >= window.expires_at => {
                (Action::Expire, End::Expired)
            }
            _ => return None,
        };
        self.step(action, &By::daemon(), None, now);
        self.end(end, now);
        Some(end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + secs, 0).unwrap()
    }

    fn request(approvals: u32) -> Request {
        Request::open(
            GrantId::try_from("abcdefghij".to_string()).unwrap(),
            Submission {
                uid: 1001,
                user: "alice".into(),
                target: Target::Sudo {
                    command: vec![
                        "/usr/bin/systemctl".into(),
                        "restart".into(),
                        "nginx".into(),
                    ],
                },
                duration: Duration::minutes(15),
                reason: "deploy".into(),
                ticket: None,
                role: None,
                approvals_required: approvals,
                record: crate::core::recording::Record::Off,
                approver_groups: vec!["ops-leads".into()],
            },
            t(0),
            Duration::hours(1),
        )
    }

    fn bob() -> By {
        By::user("bob", 1002)
    }

    #[test]
    fn the_window_starts_at_approval_and_expires_on_its_deadline() {
        let mut r = request(1);
        assert_eq!(r.state(), State::Pending);
        assert_eq!(r.approve(&bob(), None, t(600)), Ok(Approval::Granted));
        assert_eq!(r.state(), State::Active);
        assert_eq!(r.window().unwrap().expires_at, t(600 + 900));
        assert_eq!(r.tick(t(1499)), None);
        assert_eq!(r.tick(t(1500)), Some(End::Expired));
        assert_eq!(r.state(), State::Expired);
        assert_eq!(&*r.decisions.last().unwrap().by, "jitd");
        // The ended record still says what window it had.
        assert_eq!(r.window().unwrap().approved_at, t(600));
    }

    #[test]
    fn a_pending_request_times_out() {
        let mut r = request(1);
        assert_eq!(r.tick(t(3599)), None);
        assert_eq!(r.tick(t(3600)), Some(End::TimedOut));
        assert_eq!(r.state(), State::TimedOut);
        assert!(r.approve(&bob(), None, t(3601)).is_err());
    }

    #[test]
    fn two_approvals_need_two_distinct_approvers() {
        let mut r = request(2);
        assert_eq!(
            r.approve(&bob(), None, t(1)),
            Ok(Approval::Recorded { missing: 1 })
        );
        assert_eq!(
            r.approve(&bob(), None, t(2)),
            Ok(Approval::AlreadyCounted { missing: 1 })
        );
        assert_eq!(r.state(), State::Pending);
        assert_eq!(
            r.approve(&By::user("carol", 1003), None, t(3)),
            Ok(Approval::Granted)
        );
        assert_eq!(r.approvers(), vec!["bob", "carol"]);
    }

    #[test]
    fn steps_only_apply_in_their_state() {
        let mut r = request(1);
        assert!(r.revoke(&bob(), "x".into(), t(1)).is_err());
        assert!(r.complete(&bob(), t(1)).is_err());
        assert_eq!(
            r.deny(&bob(), "not now".into(), true, t(2)),
            Ok(Denial::Ended)
        );
        assert_eq!(r.state(), State::Denied);
        let err = r.cancel(&By::user("alice", 1001), t(3)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot cancel a request that is denied (only a pending one)"
        );
        assert_eq!(
            r.tick(t(99_999)),
            None,
            "an ended request never changes again"
        );
    }

    #[test]
    fn revoke_done_and_failure_end_an_active_grant() {
        for (f, state) in [
            (
                Box::new(|r: &mut Request| r.revoke(&bob(), "incident over".into(), t(5)))
                    as Box<dyn Fn(&mut Request) -> Result<(), LifecycleError>>,
                State::Revoked,
            ),
            (
                Box::new(|r: &mut Request| r.complete(&By::user("alice", 1001), t(5))),
                State::Completed,
            ),
            (
                Box::new(|r: &mut Request| r.fail("visudo: syntax error".into(), t(5))),
                State::Failed,
            ),
        ] {
            let mut r = request(1);
            r.approve(&bob(), None, t(1)).unwrap();
            f(&mut r).unwrap();
            assert_eq!(r.state(), state);
            assert!(r.next_deadline().is_none());
        }
    }

    #[test]
    fn cancel_withdraws_a_pending_request() {
        let mut r = request(1);
        r.cancel(&By::user("alice", 1001), t(1)).unwrap();
        assert_eq!(r.state(), State::Cancelled);
        assert!(r.approve(&bob(), None, t(2)).is_err());
    }

    fn login() -> Login {
        Login {
            rhost: Some("10.0.0.2".into()),
            service: "sshd".into(),
            pid: 4242,
            start_ticks: Some(7),
            boot_id: None,
        }
    }

    #[test]
    fn a_login_times_out_with_its_wait_and_never_later_than_the_pending_deadline() {
        let mut r = request(1);
        r.wait_at_login(login(), Duration::seconds(30));
        assert_eq!(r.next_deadline(), Some(t(30)));
        assert_eq!(r.tick(t(30)), Some(End::TimedOut));
        // A wait longer than the pending deadline (1 h here) does not stretch it.
        let mut r = request(1);
        r.wait_at_login(login(), Duration::hours(2));
        assert_eq!(r.next_deadline(), Some(t(3600)));
    }

    #[test]
    fn a_login_that_stops_waiting_ends_its_pending_request_and_only_that() {
        let mut r = request(1);
        r.wait_at_login(login(), Duration::seconds(30));
        r.abandon_login(false, "the client went away".into(), t(5))
            .unwrap();
        assert_eq!(r.state(), State::Cancelled);
        let last = r.decisions.last().unwrap();
        assert_eq!(
            (&*last.by, last.note.as_deref()),
            ("jitd", Some("the client went away"))
        );
        let mut r = request(1);
        r.abandon_login(true, "the login stopped waiting".into(), t(5))
            .unwrap();
        assert_eq!(r.state(), State::TimedOut);
        // Approved meanwhile: the grant stands.
        let mut r = request(1);
        r.approve(&bob(), None, t(4)).unwrap();
        assert!(r.abandon_login(false, "gone".into(), t(5)).is_err());
        assert_eq!(r.state(), State::Active);
    }

    #[test]
    fn an_extension_needs_its_own_approvals_and_moves_the_deadline() {
        let mut r = request(2);
        let alice = By::user("alice", 1001);
        let carol = By::user("carol", 1003);
        r.approve(&bob(), None, t(0)).unwrap();
        r.approve(&carol, None, t(0)).unwrap();
        assert!(r.ask_extension(&alice, 600, 2, t(100)).is_ok());
        assert_eq!(
            r.ask_extension(&alice, 600, 2, t(101)),
            Err(LifecycleError::ExtensionPending)
        );
        assert_eq!(
            r.approve(&bob(), None, t(102)),
            Ok(Approval::Recorded { missing: 1 })
        );
        assert_eq!(
            r.approve(&bob(), None, t(103)),
            Ok(Approval::AlreadyCounted { missing: 1 })
        );
        assert_eq!(r.window().unwrap().expires_at, t(900));
        assert_eq!(r.approve(&carol, None, t(104)), Ok(Approval::Extended));
        assert_eq!(r.window().unwrap().expires_at, t(1500));
        assert_eq!(r.duration_secs, 1500);
        assert!(r.extension().is_none());
        // A refused extension leaves the grant as it was.
        r.ask_extension(&alice, 60, 1, t(200)).unwrap();
        assert_eq!(
            r.deny(&bob(), "enough".into(), true, t(201)),
            Ok(Denial::ExtensionRefused)
        );
        assert_eq!(r.state(), State::Active);
        assert_eq!(r.window().unwrap().expires_at, t(1500));
        // Only an active grant is extended.
        let mut pending = request(1);
        assert!(pending.ask_extension(&alice, 60, 1, t(1)).is_err());
    }

    #[test]
    fn a_deny_that_does_not_end_is_recorded_and_others_may_still_approve() {
        let mut r = request(1);
        assert_eq!(
            r.deny(&bob(), "not sure".into(), false, t(1)),
            Ok(Denial::Recorded)
        );
        assert_eq!(r.state(), State::Pending);
        assert_eq!(
            r.approve(&By::user("carol", 1003), None, t(2)),
            Ok(Approval::Granted)
        );
    }

    #[test]
    fn break_glass_is_granted_at_once_and_reviewed_once() {
        let mut r = request(2);
        r.grant_at_once(&By::daemon(), "break-glass".into(), true, t(0))
            .unwrap();
        assert_eq!(r.state(), State::Active);
        assert!(r.awaits_review());
        r.review(&bob(), "ok, incident 7".into(), t(5)).unwrap();
        assert!(!r.awaits_review());
        assert_eq!(
            r.review(&bob(), "again".into(), t(6)),
            Err(LifecycleError::AlreadyReviewed { by: "bob".into() })
        );
        let mut plain = request(1);
        assert_eq!(
            plain.review(&bob(), "x".into(), t(1)),
            Err(LifecycleError::NotBreakGlass)
        );
    }

    /// The wall clock set back 3 h while jitd was down: the grant keeps at most its approved
    /// 15 minutes from now, not 3 h 15 m.
    #[test]
    fn a_clock_behind_the_approval_leaves_a_grant_no_more_than_its_approved_length() {
        let mut r = request(1);
        r.approve(&bob(), None, t(0)).unwrap();
        let ends = r.window().unwrap().expires_at;
        assert_eq!(
            r.cap_remaining(t(60)),
            None,
            "a clock after the approval changes nothing"
        );
        let three_hours_back = t(0) - Duration::hours(3);
        let capped = r.cap_remaining(three_hours_back).unwrap();
        assert_eq!(capped - three_hours_back, ends - t(0));
        assert_eq!(r.cap_remaining(three_hours_back), None, "once");
    }

    /// The review covered the time the grant had; time added after it is reviewed again.
    #[test]
    fn extending_a_reviewed_break_glass_grant_puts_it_back_on_the_review_backlog() {
        let mut r = request(2);
        r.grant_at_once(&By::daemon(), "break-glass".into(), true, t(0))
            .unwrap();
        r.review(&bob(), "ok, incident 7".into(), t(5)).unwrap();
        r.extend_at_once(&By::user("alice", 1001), &By::break_glass(), 600, t(10))
            .unwrap();
        assert!(r.awaits_review(), "the extension went unreviewed");
        let kept = r.decisions.last().unwrap();
        assert_eq!((kept.action, &*kept.by), (Action::Reviewed, "bob"));
        assert!(kept.note.as_deref().unwrap().contains("ok, incident 7"));
        r.review(&bob(), "extension ok too".into(), t(20)).unwrap();
        assert!(!r.awaits_review());
    }

    #[test]
    fn an_approver_who_left_the_approver_groups_no_longer_counts() {
        use crate::core::authz::{stale_approvals, Actor};
        let actor = |name: &str, uid: u32, groups: &[&str]| -> Result<Actor, String> {
            Ok(Actor {
                uid,
                name: name.into(),
                groups: groups.iter().map(|g| g.to_string()).collect(),
            })
        };
        let mut r = request(3);
        r.approve(&bob(), None, t(1)).unwrap();
        r.approve(&By::user("alice", 1001), None, t(2)).unwrap();
        // Bob left ops-leads; alice (the requester) may not count where self-approval is off.
        let now = [
            (1002, actor("bob", 1002, &["staff"])),
            (1001, actor("alice", 1001, &["ops-leads"])),
        ];
        let lookup = |d: &Decision| {
            now.iter()
                .find(|(u, _)| Some(*u) == d.by_uid)
                .map(|(_, a)| a)
        };
        let stale = stale_approvals(&r, &r.approver_groups, false, lookup);
        assert_eq!(stale.len(), 2, "{stale:?}");
        assert!(
            stale[0].1.contains("bob's approval no longer counts"),
            "{stale:?}"
        );
        assert!(stale[1].1.contains("their own request"), "{stale:?}");
        // With self-approval allowed, only bob's goes.
        assert_eq!(
            stale_approvals(&r, &r.approver_groups, true, lookup).len(),
            1
        );
        r.void_approvals(&[stale[0].0]);
        assert_eq!(r.approvers(), vec!["alice"]);
        assert_eq!(r.approvals_missing(), 2);
        // Carol's approval then leaves one missing instead of opening the window.
        assert_eq!(
            r.approve(&By::user("carol", 1003), None, t(3)),
            Ok(Approval::Recorded { missing: 1 })
        );
        // Voided approvals stay in the record, marked, and are not judged again; carol was not
        // looked up (she approved just now), so hers stands.
        assert!(r.decisions[0].voided);
        let left = stale_approvals(&r, &r.approver_groups, false, lookup);
        assert_eq!(left.iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![1]);
    }

    #[test]
    fn a_reload_may_lower_the_approvals_needed_and_start_the_window() {
        let mut r = request(2);
        r.approve(&bob(), None, t(1)).unwrap();
        assert!(!r.reassign(Some("web".into()), 2, vec!["leads".into()], t(2)));
        assert_eq!(r.approver_groups[..], ["leads".to_string()]);
        assert!(r.reassign(Some("web".into()), 1, vec!["leads".into()], t(3)));
        assert_eq!(r.state(), State::Active);
    }
}
