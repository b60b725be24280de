//! SSH logins that wait for approval (pam_jit's `wait=`). sshd's PAM stack asks jitd (as root)
//! to create an SSH request on behalf of the user logging in, then polls it with short
//! `LoginStatus` exchanges until it is decided, so a waiting login holds none of jitd's
//! connection threads. The request is judged exactly as the user's own `jit-elevate --ssh`
//! would be (roles, automatic approval, the pending cap); its pending deadline is the login's
//! wait, so jitd times it out itself if nobody polls any more.
//!
//! One waiting login per user: a second one is refused while the first still waits. A login
//! whose process is gone (sshd ended it when the client left, or at LoginGraceTime) is noticed
//! within a second by the scheduler and its request cancelled: never left for an approver to
//! grant to nobody.

use std::collections::HashMap;

use chrono::Duration;
use jit_proto::{
    ErrorCode, GrantKind, LoginEnd, LoginWait, NewRequest, Response, State, Target,
    MAX_LOGIN_WAIT_SECS,
};

use super::{shown, Failure, Service};
use crate::core::authz::{self, Actor};
use crate::core::events::EventKind;
use crate::core::model::{GrantId, Login};
use crate::core::policy::{Ask, Requester};
use crate::shell::audit::event_log::event_for;
use crate::shell::daemon::{identity, rate_limit};
use crate::shell::host::{boot, sessions};

/// The login of one user that waits, by uid. `id` is `None` while its request is being
/// created, so that a second login of the same user arriving meanwhile is refused too.
pub(super) struct Waiting {
    id: Option<GrantId>,
}

pub(super) type Waiters = HashMap<u32, Waiting>;

/// The waiting logins among the records loaded at startup.
pub(super) fn waiting_at_start<'a>(
    requests: impl Iterator<Item = &'a crate::core::model::Request>,
) -> Waiters {
    requests
        .filter(|r| r.state() == State::Pending && r.login.is_some())
        .map(|r| {
            (
                r.uid,
                Waiting {
                    id: Some(r.id.clone()),
                },
            )
        })
        .collect()
}

/// What a login's LoginWait led to.
enum Made {
    Request(Box<crate::core::model::Request>),
    /// Nothing recorded: the role wants the user's reason; `default` is what Enter gives.
    ReasonWanted {
        default: String,
    },
}

/// The reason a login gets when the user gives none.
fn default_reason(rhost: Option<&str>) -> String {
    format!("login from {}", rhost.unwrap_or("an unknown host"))
}

/// Whether the process `login` waits in still runs; `true` when that cannot be told (its start
/// time or the boot were not readable), leaving the request's deadline to end it.
fn still_waiting(login: &Login) -> bool {
    match (login.start_ticks, login.boot_id.as_deref()) {
        (Some(ticks), Some(boot)) => sessions::still_running(login.pid, ticks, boot),
        _ => true,
    }
}

fn bad(message: impl Into<String>) -> Failure {
    Failure::new(ErrorCode::BadRequest, message)
}

impl Service {
    /// An SSH login of `ask.pam.user` without a grant asks for one and will wait for it.
    /// `peer_pid` is the sshd process the login waits in.
    pub(super) fn login_wait(
        &self,
        actor: &Actor,
        peer_pid: u32,
        ask: LoginWait,
    ) -> Result<Response, Failure> {
        authz::may_query_grants(actor)?;
        let LoginWait {
            pam,
            reason,
            wait_secs,
        } = ask;
        if pam.kind != GrantKind::Ssh {
            return Err(bad(
                "only an SSH login waits for approval (for sudo, ask with jit-elevate)",
            ));
        }
        if wait_secs == 0 || wait_secs > MAX_LOGIN_WAIT_SECS {
            return Err(bad(format!(
                "a login waits between 1 s and {MAX_LOGIN_WAIT_SECS} s, not {wait_secs} s"
            )));
        }
        // Who asks is sshd's PAM_USER, looked up as for `jitd grant`: off the path of PAM
        // checks, which never touch the user database.
        let uid = identity::uid_of(&pam.user).map_err(bad)?;
        let who = identity::actor_for_uid(uid).map_err(bad)?;
        // Granted since pam_jit looked (an approver was quick, or another login's request
        // was approved): nothing to ask for.
        let now = self.clock.now();
        let held = self
            .read_registry()
            .active_for(&pam.user, GrantKind::Ssh, now)
            .next()
            .cloned();
        if let Some(grant) = held {
            return Ok(shown(&grant));
        }
        self.reserve_login(uid, &pam.user)?;
        let made = self.create_login(&who, peer_pid, pam, reason, wait_secs);
        let mut waiters = self.logins.lock().unwrap_or_else(|e| e.into_inner());
        match &made {
            Ok(Made::Request(r)) if r.state() == State::Pending => {
                waiters.insert(
                    uid,
                    Waiting {
                        id: Some(r.id.clone()),
                    },
                );
            }
            _ => {
                waiters.remove(&uid);
            }
        }
        drop(waiters);
        Ok(match made? {
            Made::Request(r) => shown(&r),
            Made::ReasonWanted { default } => Response::ReasonWanted {
                message: format!("a reason is asked for this SSH login (Enter for \"{default}\")"),
            },
        })
    }

    /// Holds the user's one place for a waiting login, or says which login has it. A place
    /// whose request is no longer pending is free; one whose login process is gone is freed
    /// by cancelling its request first.
    fn reserve_login(&self, uid: u32, user: &str) -> Result<(), Failure> {
        loop {
            let mut waiters = self.logins.lock().unwrap_or_else(|e| e.into_inner());
            let Some(waiting) = waiters.get(&uid) else {
                waiters.insert(uid, Waiting { id: None });
                return Ok(());
            };
            let Some(id) = waiting.id.clone() else {
                return Err(Failure::new(
                    ErrorCode::PolicyDenied,
                    format!("{user} already has a login asking for approval: wait for it, or try again in a moment"),
                ));
            };
            let pending = self
                .read_registry()
                .get(&id)
                .filter(|r| r.state() == State::Pending)
                .and_then(|r| r.login.as_deref().cloned());
            match pending {
                None => {
                    waiters.remove(&uid);
                }
                Some(login) if still_waiting(&login) => {
                    return Err(Failure::new(
                        ErrorCode::PolicyDenied,
                        format!(
                            "{user} is already waiting for approval of {id} at another login: \
                             finish or abandon that login first (one waiting login per user)"
                        ),
                    ));
                }
                Some(_) => {
                    drop(waiters);
                    self.end_login(&id, LoginEnd::ClientGone, GONE);
                    self.logins
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&uid);
                }
            }
        }
    }

    /// Creates the login's request, unless the role wants a reason and none was given (the
    /// module asks the user, where it can, and comes back).
    fn create_login(
        &self,
        who: &Actor,
        peer_pid: u32,
        pam: jit_proto::PamContext,
        reason: Option<String>,
        wait_secs: u64,
    ) -> Result<Made, Failure> {
        let policy = self.policy();
        let ask = Ask {
            who: Requester {
                user: &who.name,
                groups: &who.groups,
            },
            target: &Target::Ssh,
            role: None,
            duration: None,
        };
        // A login nothing covers is refused here, before the user is asked anything.
        let wants_reason = policy.wants_reason(&ask)?;
        let default = default_reason(pam.rhost.as_deref());
        let reason = match reason {
            None if wants_reason => return Ok(Made::ReasonWanted { default }),
            Some(r) if !r.trim().is_empty() => r,
            _ => default,
        };
        let new = NewRequest {
            target: Target::Ssh,
            duration_secs: None,
            reason: Some(reason),
            ticket: None,
            role: None,
            hosts: None,
        };
        let (sub, route) = self.submission(who, &new)?;
        // As many new requests as a user's own submissions: a burst, then one a second.
        if let Err(wait) = self.login_rate.take(who.uid, std::time::Instant::now()) {
            return Err(Failure::new(
                ErrorCode::PolicyDenied,
                format!(
                    "{} asked for approval at too many logins: {}",
                    who.name,
                    rate_limit::too_many(wait)
                ),
            ));
        }
        let login = Login {
            rhost: pam.rhost,
            service: pam.service,
            pid: peer_pid,
            start_ticks: sessions::start_ticks(peer_pid),
            boot_id: boot::boot_id().map(Into::into),
        };
        let role = sub.role.clone().unwrap_or_default();
        let r = self.create(sub, |r, now| {
            r.wait_at_login(login, Duration::seconds(wait_secs as i64));
            Self::route(r, &route, &role, now)
        })?;
        Ok(Made::Request(Box::new(r)))
    }

    /// How the request a login waits on stands: a cheap, read-only answer for its polls.
    pub(super) fn login_status(&self, actor: &Actor, id: &str) -> Result<Response, Failure> {
        authz::may_query_grants(actor)?;
        let id = Self::parse_id(id)?;
        Ok(shown(&self.lookup(&id)?))
    }

    /// The login waiting on `id` stopped waiting: a still pending request ends with it. A
    /// request decided meanwhile is answered as it is (approved a moment ago, it lets the
    /// login in).
    pub(super) fn login_abandon(
        &self,
        actor: &Actor,
        id: &str,
        why: LoginEnd,
    ) -> Result<Response, Failure> {
        authz::may_query_grants(actor)?;
        let id = Self::parse_id(id)?;
        let r = self.lookup(&id)?;
        if r.login.is_none() {
            return Err(Failure::new(
                ErrorCode::InvalidState,
                format!("request {id} was not made by a waiting login"),
            ));
        }
        let note = match why {
            LoginEnd::ClientGone => "the client went away while the login waited",
            LoginEnd::TimedOut => "the login stopped waiting: its wait ran out",
        };
        let r = self.end_login(&id, why, note).unwrap_or(r);
        Ok(shown(&r))
    }

    /// Ends the pending request a login waited on; `None` if it is no longer pending (then
    /// whatever ended it stands).
    fn end_login(
        &self,
        id: &GrantId,
        why: LoginEnd,
        note: &str,
    ) -> Option<crate::core::model::Request> {
        let timed_out = why == LoginEnd::TimedOut;
        let ended = self.transition(id, |r, now| {
            r.abandon_login(timed_out, note.to_string(), now)?;
            let from = r
                .login
                .as_ref()
                .and_then(|l| l.rhost.clone())
                .unwrap_or_else(|| "an unknown host".into());
            let (kind, what) = match timed_out {
                true => (EventKind::TimedOut, "timed out"),
                false => (EventKind::Cancelled, "cancelled"),
            };
            let mut ev = event_for(
                kind,
                r,
                format!("{}'s login from {from} {what} the request: {note}", r.user),
            );
            ev.extra.push(("RHOST", from));
            Ok(Some(ev))
        });
        let ended = ended.ok()?;
        let mut waiters = self.logins.lock().unwrap_or_else(|e| e.into_inner());
        if waiters.get(&ended.uid).and_then(|w| w.id.as_ref()) == Some(id) {
            waiters.remove(&ended.uid);
        }
        Some(ended)
    }

    /// From the scheduler: cancels the requests of logins whose process is gone, and forgets
    /// the logins whose request was decided. A few /proc reads per waiting login.
    pub(super) fn watch_logins(&self) {
        let ids: Vec<(u32, GrantId)> = self
            .logins
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter_map(|(uid, w)| Some((*uid, w.id.clone()?)))
            .collect();
        for (uid, id) in ids {
            let pending = self
                .read_registry()
                .get(&id)
                .filter(|r| r.state() == State::Pending)
                .and_then(|r| r.login.as_deref().cloned());
            match pending {
                Some(login) if still_waiting(&login) => {}
                Some(_) => {
                    self.end_login(&id, LoginEnd::ClientGone, GONE);
                }
                None => {
                    let mut waiters = self.logins.lock().unwrap_or_else(|e| e.into_inner());
                    if waiters.get(&uid).and_then(|w| w.id.as_ref()) == Some(&id) {
                        waiters.remove(&uid);
                    }
                }
            }
        }
    }
}

/// Why jitd cancels the request of a login whose process it saw end.
const GONE: &str = "the login's sshd process ended before a decision (the client went away, or sshd's LoginGraceTime ran out)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_reason_names_where_the_login_comes_from() {
        assert_eq!(default_reason(Some("10.0.0.2")), "login from 10.0.0.2");
        assert_eq!(default_reason(None), "login from an unknown host");
    }
}
