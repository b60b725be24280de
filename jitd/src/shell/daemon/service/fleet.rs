//! Fleet mode in the daemon: requests for other hosts written to the store, approvers'
//! signed approvals passed on, ends shared, and, for every change the sync thread reports, this
//! host's verdict carried out: a grant installed (recorded locally first, like any other), ended,
//! or refused, each step acknowledged to the store and written to the audit log.
//!
//! The store is never trusted to add access: `core::fleet::verdict` counts only approvals this
//! host's allowed_signers and policy accept. The local record is what is enforced, so expiry,
//! NOTAFTER, sessions and a restart without the network work exactly as for local grants.

use std::sync::Arc;

use chrono::{DateTime, Duration, SubsecRound, Utc};
use jit_proto::{ErrorCode, NewRequest, RequestView, Response, State};

use super::{shown, Failure, Service};
use crate::core::authz::{self, Actor};
use crate::core::events::{Event, EventKind};
use crate::core::fleet::allowed_signers;
use crate::core::fleet::book::Entry;
use crate::core::fleet::grant::local_grant;
use crate::core::fleet::host_pattern::{joined, HostPattern};
use crate::core::fleet::records::{
    approval_message, AckState, ApprovalRecord, EndRecord, FleetEnd, FleetRequest, StoredRequest,
    MAX_CLOCK_AHEAD_SECS, VERSION,
};
use crate::core::fleet::verdict::{verdict, Local, Signed, Verdict};
use crate::core::lifecycle::By;
use crate::core::model::{GrantId, Request};
use crate::core::policy::{Ask, Policy, Requester, Route};
use crate::core::timestamp::rfc3339;
use crate::shell::audit::event_log::event_for;
use crate::shell::daemon::identity;
use crate::shell::daemon::submission;
use crate::shell::daemon::view::view;
use crate::shell::fleet::link::FleetLink;
use crate::shell::fleet::sync::FleetSink;

impl FleetSink for Service {
    fn fleet_changed(&self, ids: &[GrantId]) {
        for id in ids {
            self.fleet_apply(id);
        }
    }

    fn fleet_relisted(&self) {
        let enforced: Vec<GrantId> = self
            .read_registry()
            .iter()
            .filter(|r| r.fleet.is_some() && r.state() == State::Active)
            .map(|r| r.id.clone())
            .collect();
        for id in enforced {
            self.fleet_apply(&id);
        }
    }
}

/// A user's groups on this host, or `None` when the name is unknown here.
fn groups_of(name: &str) -> Option<Vec<String>> {
    let uid = identity::uid_of(name).ok()?;
    identity::actor_for_uid(uid).ok().map(|a| a.groups)
}

pub(super) fn not_fleet() -> Failure {
    Failure::new(
        ErrorCode::BadRequest,
        "fleet mode is not configured on this host ([fleet] in jitd.toml): leave out --hosts to ask for this host",
    )
}

fn unreachable(e: impl std::fmt::Display, what: &str) -> Failure {
    Failure::new(
        ErrorCode::Unavailable,
        format!("the fleet store cannot be reached ({e}): {what}; `jitd fleet status` shows the members"),
    )
}

impl Service {
    /// Connects this daemon to the fleet; the sync and presence threads start after it.
    pub fn attach_fleet(&self, link: Arc<FleetLink>) {
        let _ = self.fleet.set(link);
    }

    pub(super) fn fleet_link(&self) -> Option<&Arc<FleetLink>> {
        self.fleet.get()
    }

    /// The verdict of this host's policy and trust anchors on `stored`.
    fn judge(
        &self,
        link: &FleetLink,
        policy: &Policy,
        stored: &StoredRequest,
        approvals: &[Signed],
        ends: &[EndRecord],
        any_host: bool,
    ) -> Verdict {
        let signers = link.signers();
        let now = self.clock.now();
        let verify = |principal: &str, message: &[u8], sig: &str| {
            allowed_signers::check(&signers, principal, message, sig, now)
                .map_err(|e| e.to_string())
        };
        let requester = groups_of(&stored.request.user);
        let local = Local {
            host: &link.host,
            policy,
            requester_groups: requester.as_deref(),
            approver_groups: &groups_of,
            verify: &verify,
            now,
            any_host,
        };
        verdict(stored, approvals, ends, &local)
    }

    /// Says once (to the audit log and the system log) why this host does not act on a fleet
    /// record.
    fn fleet_note(
        &self,
        link: &FleetLink,
        stored: Option<&StoredRequest>,
        id: &GrantId,
        what: String,
    ) {
        if !link.first_note(id, &what) {
            return;
        }
        let mut ev = Event::new(EventKind::FleetRefused, what);
        ev.request_id = Some(id.to_string());
        if let Some(s) = stored {
            ev.user = Some(s.request.user.clone());
            ev.role = Some(s.request.role.clone());
            ev.extra.push(("ORIGIN", s.request.origin.clone()));
        }
        ev.extra.push(("HOST", link.host.clone()));
        self.events.emit(&ev);
    }

    /// Carries out this host's verdict on fleet request `id` as the store holds it now.
    pub fn fleet_apply(&self, id: &GrantId) {
        let Some(link) = self.fleet_link().cloned() else {
            return;
        };
        let entry: Option<Entry> = link
            .book
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned();
        let local = self.read_registry().get(id).cloned();
        if let Some(l) = &local {
            if l.fleet.is_none() {
                // Never let the store touch a local request, whatever id it writes.
                self.fleet_note(
                    &link,
                    None,
                    id,
                    format!("a fleet record uses the id of local request {id}: ignored"),
                );
                return;
            }
        }
        let active_here = local.as_ref().is_some_and(|l| l.state() == State::Active);
        let stored = match entry.as_ref().and_then(|e| e.request.clone()) {
            Some(Ok(s)) => s,
            Some(Err(why)) => {
                self.fleet_note(
                    &link,
                    None,
                    id,
                    format!("unreadable fleet request {id}: {why}"),
                );
                if active_here {
                    self.fleet_end_here(
                        &link,
                        id,
                        None,
                        "its request record in the fleet store is unreadable",
                    );
                }
                return;
            }
            None => {
                if active_here {
                    self.fleet_end_here(
                        &link,
                        id,
                        None,
                        "its request was removed from the fleet store",
                    );
                }
                return;
            }
        };
        // The command came from another host: it must pass the checks a local request's does,
        // exactly as written (a record the store made up must not reach sudoers half-checked).
        if let Some(why) = command_refused(&stored) {
            self.fleet_refuse(&link, &stored, id, active_here, &why, &why);
            return;
        }
        let entry = entry.unwrap_or_default();
        for (approver, why) in entry.unreadable_approvals() {
            self.fleet_note(
                &link,
                Some(&stored),
                id,
                format!(
                    "approval of {id} by {approver} does not count on {}: {why}",
                    link.host
                ),
            );
        }
        let signed = entry.signed();
        let policy = self.policy();
        match self.judge(&link, &policy, &stored, &signed, &entry.ends(), false) {
            Verdict::NotForThisHost => {
                if active_here {
                    self.fleet_end_here(&link, id, None, "the request no longer names this host");
                }
            }
            Verdict::Ended(end) => {
                if active_here {
                    self.fleet_end_here(&link, id, Some(&end), "");
                }
            }
            Verdict::Refused(why) => {
                let ending = format!("this host's policy no longer allows it: {why}");
                self.fleet_refuse(&link, &stored, id, active_here, &why, &ending);
            }
            Verdict::TimedOut => {}
            Verdict::Waiting { rejected, .. } => {
                for (who, why) in &rejected {
                    self.fleet_note(
                        &link,
                        Some(&stored),
                        id,
                        format!(
                            "approval of {id} by {who} does not count on {}: {why}",
                            link.host
                        ),
                    );
                }
                if active_here {
                    self.fleet_end_here(
                        &link,
                        id,
                        None,
                        "its approvals no longer count on this host",
                    );
                }
            }
            Verdict::Enforce {
                terms,
                window,
                approvers,
                rejected,
            } => {
                for (who, why) in &rejected {
                    self.fleet_note(
                        &link,
                        Some(&stored),
                        id,
                        format!(
                            "approval of {id} by {who} does not count on {}: {why}",
                            link.host
                        ),
                    );
                }
                if local.is_some() {
                    // Enforced already, or ended here (expired, revoked, failed): an ended
                    // grant is never brought back by the store.
                    return;
                }
                let now = self.clock.now();
                if window.expires_at <= now {
                    link.ack(
                        id,
                        AckState::Removed,
                        Some("its window closed before this host heard of it".into()),
                        now,
                    );
                    return;
                }
                let counted: Vec<Signed> = approvers
                    .iter()
                    .filter_map(|a| signed.iter().find(|s| &s.approver == a).cloned())
                    .collect();
                let Ok(uid) = identity::uid_of(&stored.request.user) else {
                    return;
                };
                let grant = local_grant(&stored, uid, &terms, window, &counted);
                self.fleet_install(&link, grant, &approvers);
            }
        }
    }

    /// Records and installs a fleet grant this host now enforces, and acknowledges it.
    fn fleet_install(&self, link: &FleetLink, mut grant: Request, approvers: &[String]) {
        let id = grant.id.clone();
        let now = self.clock.now();
        let turn = self.registry.turn();
        if turn.get(&id).is_some() {
            return;
        }
        let origin = grant
            .fleet
            .as_ref()
            .map(|f| f.origin.clone())
            .unwrap_or_default();
        let mut ev = event_for(
            EventKind::Approved,
            &grant,
            format!(
                "fleet grant approved by {} (signed; asked on {origin}): enforced on {}",
                approvers.join(", "),
                link.host
            ),
        );
        ev.approver = Some(approvers.join(","));
        ev.extra.push(("ORIGIN", origin));
        ev.extra.push(("HOST", link.host.clone()));
        if let Err(e) = self.log_ahead(&mut ev, &mut grant) {
            drop(turn);
            link.ack(
                &id,
                AckState::Failed,
                Some(format!("the audit log cannot be written: {e}")),
                now,
            );
            return;
        }
        let installed = self.install_if_opened(None, &mut grant, now);
        if let Err(f) = self.commit(&turn, &grant, installed.as_ref()) {
            drop(turn);
            link.ack(&id, AckState::Failed, Some(f.message), now);
            return;
        }
        drop(turn);
        self.metrics.count_outcome(State::Active);
        self.events.publish(&ev);
        match &installed {
            Some(Err(why)) => {
                link.ack(&id, AckState::Failed, Some(why.clone()), now);
            }
            _ => {
                link.ack(&id, AckState::Installed, None, now);
            }
        }
        self.announce_install(&grant, installed);
        self.poke();
    }

    /// Ends the local grant of fleet request `id` here: by `end` (someone ended it in the
    /// fleet), or because it no longer holds (`why`).
    /// This host will not enforce request `id`: a grant it enforces ends (`ending` says why),
    /// else the refusal is acknowledged in the store and noted, once.
    fn fleet_refuse(
        &self,
        link: &FleetLink,
        stored: &StoredRequest,
        id: &GrantId,
        active_here: bool,
        why: &str,
        ending: &str,
    ) {
        if active_here {
            self.fleet_end_here(link, id, None, ending);
        } else if link.ack(
            id,
            AckState::Refused,
            Some(why.to_owned()),
            self.clock.now(),
        ) {
            self.fleet_note(
                link,
                Some(stored),
                id,
                format!("{} refuses fleet request {id}: {why}", link.host),
            );
        }
    }

    pub(super) fn fleet_end_here(
        &self,
        link: &FleetLink,
        id: &GrantId,
        end: Option<&EndRecord>,
        why: &str,
    ) {
        let ended = self.transition(id, |r, now| {
            if r.state() != State::Active {
                return Ok(None);
            }
            let (kind, message) = match end {
                Some(e) if e.end == FleetEnd::Completed => {
                    r.complete(
                        &By {
                            name: e.by.clone(),
                            uid: None,
                        },
                        now,
                    )?;
                    (
                        EventKind::Completed,
                        format!("{} finished in the fleet; the grant ended early", e.by),
                    )
                }
                Some(e) => {
                    let note = e.note.clone().unwrap_or_default();
                    let text = format!(
                        "{} in the fleet by {}{}",
                        end_word(e.end),
                        e.by,
                        if note.is_empty() {
                            String::new()
                        } else {
                            format!(": {note}")
                        }
                    );
                    r.revoke(
                        &By {
                            name: e.by.clone(),
                            uid: None,
                        },
                        text.clone(),
                        now,
                    )?;
                    (EventKind::Revoked, text)
                }
                None => {
                    r.revoke(&By::daemon(), why.to_string(), now)?;
                    (
                        EventKind::Revoked,
                        format!("fleet grant ended on {}: {why}", link.host),
                    )
                }
            };
            let mut ev = event_for(kind, r, message);
            ev.extra.push(("HOST", link.host.clone()));
            Ok(Some(ev))
        });
        if let Ok(r) = ended {
            if r.state() != State::Active {
                self.withdraw(&r);
                let reason = end
                    .map(|e| format!("{} by {}", end_word(e.end), e.by))
                    .unwrap_or_else(|| why.to_string());
                link.ack(id, AckState::Removed, Some(reason), self.clock.now());
            }
        }
    }

    /// After a restart, before the store is heard from: every fleet grant loaded from disk is
    /// checked again against this host's policy and allowed_signers as they are now.
    pub fn fleet_recheck_loaded(&self) {
        let Some(link) = self.fleet_link().cloned() else {
            return;
        };
        let active: Vec<Request> = self
            .read_registry()
            .iter()
            .filter(|r| r.state() == State::Active && r.fleet.is_some())
            .cloned()
            .collect();
        let policy = self.policy();
        for r in active {
            let Some(part) = &r.fleet else { continue };
            let stored = match crate::core::fleet::records::parse_request(
                &part.origin,
                &r.id,
                part.request.as_bytes(),
            ) {
                Ok(s) => s,
                Err(why) => {
                    self.fleet_end_here(
                        &link,
                        &r.id,
                        None,
                        &format!("its stored request no longer reads: {why}"),
                    );
                    continue;
                }
            };
            match self.judge(&link, &policy, &stored, &part.approvals, &[], false) {
                Verdict::Enforce { .. } => {
                    link.ack(&r.id, AckState::Installed, None, self.clock.now());
                }
                other => {
                    let why = match other {
                        Verdict::Refused(w) => w,
                        Verdict::Waiting { rejected, .. } => rejected
                            .iter()
                            .map(|(a, w)| format!("{a}: {w}"))
                            .collect::<Vec<_>>()
                            .join("; "),
                        _ => "it no longer holds on this host".into(),
                    };
                    self.fleet_end_here(
                        &link,
                        &r.id,
                        None,
                        &format!(
                            "checked again at startup, its approvals no longer count here ({why})"
                        ),
                    );
                }
            }
        }
    }

    /// After a reload: every fleet grant and request judged again under the new policy and
    /// allowed_signers (a removed approver key ends what it alone approved).
    pub(super) fn fleet_rejudge_all(&self) {
        let Some(link) = self.fleet_link().cloned() else {
            return;
        };
        self.fleet_recheck_loaded();
        let ids: Vec<GrantId> = link
            .book
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .ids()
            .cloned()
            .collect();
        for id in ids {
            self.fleet_apply(&id);
        }
    }

    // ---- requests from users on this host ---------------------------------------------------

    /// `jit-elevate --hosts`: a request for other hosts, written to the store.
    pub(super) fn fleet_submit(
        &self,
        actor: &Actor,
        new: &NewRequest,
        hosts: &[String],
    ) -> Result<Response, Failure> {
        let link = self.fleet_link().cloned().ok_or_else(not_fleet)?;
        let hosts: Vec<HostPattern> = hosts
            .iter()
            .map(|h| HostPattern::try_from(h.clone()))
            .collect::<Result<_, _>>()
            .map_err(|m| Failure::new(ErrorCode::BadRequest, m))?;
        if hosts.is_empty() || hosts.len() > 64 {
            return Err(Failure::new(
                ErrorCode::BadRequest,
                "name 1 to 64 host patterns",
            ));
        }
        let checked = submission::check(new).map_err(|m| Failure::new(ErrorCode::BadRequest, m))?;
        // The origin need not be one of the hosts: its policy is asked as if it were.
        let mut policy = (*self.policy()).clone();
        policy.host = None;
        if policy.roles.is_empty() {
            return Err(Failure::new(
                ErrorCode::PolicyDenied,
                "fleet requests need roles: this host's jitd.toml has none",
            ));
        }
        // Whole seconds, as approvals name them: an approval in the request's first second
        // must not look older than the request.
        let now = self.clock.now().trunc_subsecs(0);
        let ask = Ask {
            who: Requester {
                user: &actor.name,
                groups: &actor.groups,
            },
            target: &checked.target,
            role: new.role.as_deref(),
            duration: checked.duration,
        };
        let plan = policy.decide(&ask, &checked.reason, checked.ticket.as_deref(), now)?;
        if plan.route == Route::BreakGlass {
            return Err(Failure::new(
                ErrorCode::PolicyDenied,
                "break-glass is taken on the host itself (log in there), never through the fleet",
            ));
        }
        let role = plan.role.clone().unwrap_or_default();
        // As for local requests: a user cannot flood the approvers or the store.
        let open = self.fleet_open_requests_of(&link, &actor.name, now);
        if open >= super::MAX_PENDING_PER_USER {
            return Err(Failure::new(
                ErrorCode::PolicyDenied,
                format!("{} already has {open} pending fleet requests from this host: cancel some first (jit-elevate list)", actor.name),
            ));
        }
        let pending_until = now + Duration::seconds(self.config.pending_ttl.as_secs() as i64);
        for _ in 0..4 {
            let id = GrantId::random()
                .map_err(|e| Failure::new(ErrorCode::Internal, format!("no randomness: {e}")))?;
            let request = FleetRequest {
                v: VERSION,
                id: id.clone(),
                origin: link.host.clone(),
                user: actor.name.clone(),
                target: checked.target.clone(),
                hosts: hosts.clone(),
                role: role.clone(),
                reason: checked.reason.clone(),
                ticket: checked.ticket.clone(),
                duration_secs: plan.duration.as_secs(),
                requested_at: now,
                pending_until,
            };
            let bytes = serde_json::to_vec(&request)
                .map_err(|e| Failure::new(ErrorCode::Internal, e.to_string()))?;
            let key = link.keys.request(&link.host, &id);
            match link.etcd.create(key.as_bytes(), &bytes) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    // A write that timed out may still land (a frozen member applies it when
                    // it thaws): name the id, so that it can be withdrawn if it appears.
                    return Err(unreachable(
                        e,
                        &format!("request {id} was probably not recorded (should `jitd show {id}` find it later, `jit-elevate cancel {id}` withdraws it); requests for this host alone (without --hosts) still work"),
                    ));
                }
            }
            link.remember(key.as_bytes(), &bytes);
            let mut ev = Event::new(
                EventKind::Requested,
                format!(
                    "{} asked for {} on hosts {} for {} (fleet)",
                    actor.name,
                    crate::core::policy::describe_target(&checked.target),
                    joined(&hosts, ","),
                    jit_proto::duration::format(plan.duration)
                ),
            );
            ev.request_id = Some(id.to_string());
            ev.user = Some(actor.name.clone());
            ev.role = Some(role.clone());
            ev.reason = Some(checked.reason.clone());
            ev.approver_groups = plan.approver_groups.clone();
            ev.extra.push(("HOSTS", joined(&hosts, ",")));
            self.events.emit(&ev);
            self.fleet_apply(&id);
            return self
                .fleet_view(actor, &id)
                .unwrap_or_else(|| Err(self.not_found(&id)));
        }
        Err(Failure::new(
            ErrorCode::Internal,
            "cannot allocate a fleet request id",
        ))
    }

    /// `jitd approve` of a fleet request: the approver signed in their own process; jitd checks
    /// the signature as the hosts will, then writes it to the store.
    pub(super) fn fleet_approve(
        &self,
        actor: &Actor,
        id: &str,
        sha: &str,
        approved_at: &str,
        signature: &str,
    ) -> Result<Response, Failure> {
        let link = self.fleet_link().cloned().ok_or_else(not_fleet)?;
        let id = Self::parse_id(id)?;
        let stored = self.fleet_stored(&link, &id)?;
        if stored.sha256 != sha {
            return Err(Failure::new(ErrorCode::InvalidState, format!("{id} changed in the store since it was shown to you: nothing was approved; look again (jitd show {id})")));
        }
        if stored.request.user == actor.name {
            return Err(authz::Denial::OwnRequest.into());
        }
        let at: DateTime<Utc> = approved_at.parse().map_err(|_| {
            Failure::new(ErrorCode::BadRequest, "approved_at is not an RFC 3339 time")
        })?;
        let now = self.clock.now();
        if (at - now).num_seconds().abs() > MAX_CLOCK_AHEAD_SECS {
            return Err(Failure::new(ErrorCode::BadRequest, format!("the approval's time {approved_at} is not this host's time ({}): check the clocks", rfc3339(now))));
        }
        let message = approval_message(&stored.sha256, &id, &actor.name, at);
        allowed_signers::check(&link.signers(), &actor.name, message.as_bytes(), signature, now).map_err(|e| {
            Failure::new(ErrorCode::Forbidden, format!("your signature does not verify on this host: {e}. Hosts accept keys listed for {} in their allowed_signers", actor.name))
        })?;
        // Hosts judge for themselves; a clear word now beats a silent refusal everywhere.
        let policy = self.policy();
        let mine = Signed {
            approver: actor.name.clone(),
            record: ApprovalRecord {
                request_sha256: stored.sha256.clone(),
                approved_at: at,
                sig: signature.to_string(),
            },
        };
        if let Verdict::Waiting { rejected, .. } = self.judge(
            &link,
            &policy,
            &stored,
            std::slice::from_ref(&mine),
            &[],
            true,
        ) {
            if let Some((_, why)) = rejected.iter().find(|(who, _)| *who == actor.name) {
                return Err(Failure::new(
                    ErrorCode::Forbidden,
                    format!("your approval would not count: {why}"),
                ));
            }
        }
        let value = serde_json::to_vec(&mine.record)
            .map_err(|e| Failure::new(ErrorCode::Internal, e.to_string()))?;
        let key = link.keys.approval(&actor.name, &id);
        match link.etcd.create(key.as_bytes(), &value) {
            Ok(true) => {}
            Ok(false) => {
                return Err(Failure::new(
                    ErrorCode::InvalidState,
                    format!("you approved {id} already"),
                ))
            }
            Err(e) => return Err(unreachable(e, "your approval was probably not recorded (a write that timed out can still land): run `jitd show` again once the store is back")),
        }
        link.remember(key.as_bytes(), &value);
        let mut ev = Event::new(
            EventKind::FleetSigned,
            format!(
                "{} signed an approval of fleet request {id} ({} on {})",
                actor.name,
                stored.request.user,
                hosts_text(&stored)
            ),
        );
        ev.request_id = Some(id.to_string());
        ev.user = Some(stored.request.user.clone());
        ev.approver = Some(actor.name.clone());
        ev.role = Some(stored.request.role.clone());
        self.events.emit(&ev);
        self.fleet_apply(&id);
        self.fleet_view(actor, &id)
            .unwrap_or_else(|| Err(self.not_found(&id)))
    }

    /// Deny, revoke, cancel or done of a fleet request: written to the store (every host ends
    /// it), and ended here at once if this host enforces it. `None`: not a fleet request.
    pub(super) fn fleet_end(
        &self,
        actor: &Actor,
        id: &GrantId,
        end: FleetEnd,
        note: Option<String>,
    ) -> Option<Result<Response, Failure>> {
        let link = self.fleet_link().cloned()?;
        let stored = match self.fleet_stored(&link, id) {
            Ok(s) => s,
            Err(_) => {
                let local_fleet = self
                    .read_registry()
                    .get(id)
                    .is_some_and(|r| r.fleet.is_some());
                if !local_fleet {
                    return None;
                }
                // Enforced here from the local copy while the store is away: end it here.
                let part = self.read_registry().get(id).and_then(|r| r.fleet.clone())?;
                crate::core::fleet::records::parse_request(
                    &part.origin,
                    id,
                    part.request.as_bytes(),
                )
                .ok()?
            }
        };
        Some(self.fleet_end_as(&link, actor, id, &stored, end, note))
    }

    fn fleet_end_as(
        &self,
        link: &FleetLink,
        actor: &Actor,
        id: &GrantId,
        stored: &StoredRequest,
        end: FleetEnd,
        note: Option<String>,
    ) -> Result<Response, Failure> {
        let r = &stored.request;
        match end {
            FleetEnd::Cancelled | FleetEnd::Completed => {
                if actor.name != r.user && !actor.is_root() {
                    return Err(authz::Denial::NotYours.into());
                }
            }
            FleetEnd::Denied | FleetEnd::Revoked => {
                let policy = self.policy();
                let groups = match self.judge(link, &policy, stored, &[], &[], true) {
                    Verdict::Waiting { terms, .. } | Verdict::Enforce { terms, .. } => {
                        terms.approver_groups
                    }
                    _ => policy.all_approver_groups(),
                };
                if !actor.is_root() && !authz::is_approver(actor, &groups) {
                    return Err(authz::Denial::NotAnApprover { groups }.into());
                }
            }
        }
        let now = self.clock.now();
        let record = EndRecord {
            end,
            by: actor.name.clone(),
            at: now,
            note,
        };
        let value = serde_json::to_vec(&record)
            .map_err(|e| Failure::new(ErrorCode::Internal, e.to_string()))?;
        let key = link.keys.end(&link.host, id);
        let written = link.etcd.put(key.as_bytes(), &value, None);
        if written.is_ok() {
            link.remember(key.as_bytes(), &value);
        }
        let here = self
            .read_registry()
            .get(id)
            .is_some_and(|l| l.fleet.is_some() && l.state() == State::Active);
        if here {
            self.fleet_end_here(link, id, Some(&record), "");
        }
        if let Err(e) = written {
            let what = if here {
                "it ended on this host only; run the command again once the store is back"
            } else {
                "nothing changed"
            };
            return Err(unreachable(e, what));
        }
        let mut ev = Event::new(
            match end {
                FleetEnd::Denied => EventKind::Denied,
                FleetEnd::Revoked => EventKind::Revoked,
                FleetEnd::Cancelled => EventKind::Cancelled,
                FleetEnd::Completed => EventKind::Completed,
            },
            format!(
                "{} {} fleet request {id} (hosts {}) in the store",
                actor.name,
                end_word(end),
                hosts_text(stored)
            ),
        );
        ev.request_id = Some(id.to_string());
        ev.user = Some(r.user.clone());
        ev.approver = Some(actor.name.clone());
        ev.extra.push(("HOST", link.host.clone()));
        if !here {
            self.events.emit(&ev);
        }
        self.fleet_view(actor, id)
            .unwrap_or_else(|| Err(self.not_found(id)))
    }

    /// Fleet requests `user` asked on this host that may still be decided.
    fn fleet_open_requests_of(&self, link: &FleetLink, user: &str, now: DateTime<Utc>) -> usize {
        let book = link.book.lock().unwrap_or_else(|e| e.into_inner());
        book.ids()
            .filter_map(|id| book.get(id))
            .filter(|e| e.ends.is_empty() && e.approvals.is_empty())
            .filter_map(|e| match &e.request {
                Some(Ok(s)) => Some(&s.request),
                _ => None,
            })
            .filter(|r| r.user == user && r.origin == link.host && r.pending_until > now)
            .count()
    }

    fn fleet_stored(&self, link: &FleetLink, id: &GrantId) -> Result<StoredRequest, Failure> {
        let book = link.book.lock().unwrap_or_else(|e| e.into_inner());
        match book.get(id).and_then(|e| e.request.clone()) {
            Some(Ok(s)) => Ok(s),
            Some(Err(why)) => Err(Failure::new(
                ErrorCode::InvalidState,
                format!("fleet request {id} is unreadable: {why}"),
            )),
            None => Err(self.not_found(id)),
        }
    }

    /// The view of a fleet request from this host, or `None` if the store holds no such id.
    pub(super) fn fleet_view(
        &self,
        actor: &Actor,
        id: &GrantId,
    ) -> Option<Result<Response, Failure>> {
        let link = self.fleet_link().cloned()?;
        let local = self.read_registry().get(id).cloned();
        let entry = link
            .book
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned();
        let stored = match entry.as_ref().and_then(|e| e.request.clone()) {
            Some(Ok(s)) => Some(s),
            _ => None,
        };
        let mut v: RequestView = match (&local, &stored) {
            (Some(l), _) if l.fleet.is_some() => view(l),
            (_, Some(s)) => self.store_view(&link, s, entry.as_ref()),
            _ => return None,
        };
        let request_user = v.user.clone();
        let policy = self.policy();
        let may_see = actor.is_root()
            || actor.name == request_user
            || authz::is_approver(actor, &policy.all_approver_groups());
        if !may_see {
            return Some(Err(authz::Denial::NotYours.into()));
        }
        if let Some(f) = v.fleet.as_mut() {
            f.allowed_signers = Some(link.signers_path().display().to_string());
        }
        if let (Some(s), Some(f)) = (&stored, v.fleet.as_mut()) {
            f.signed_by = entry
                .as_ref()
                .map(|e| e.signed().into_iter().map(|a| a.approver).collect())
                .unwrap_or_default();
            f.for_this_host = s.request.hosts.iter().any(|h| h.matches(&link.host));
        }
        // Best effort: with the store away, the view says what this host knows.
        if let Ok(acks) = link.acks_of(id) {
            v.hosts = acks;
        }
        Some(Ok(Response::Request {
            request: Box::new(v),
        }))
    }

    /// How a fleet request this host does not enforce looks from here.
    fn store_view(
        &self,
        link: &FleetLink,
        s: &StoredRequest,
        entry: Option<&Entry>,
    ) -> RequestView {
        let r = &s.request;
        let entry = entry.cloned().unwrap_or_default();
        let signed = entry.signed();
        let policy = self.policy();
        let judged = self.judge(link, &policy, s, &signed, &entry.ends(), true);
        let for_this_host = r.hosts.iter().any(|h| h.matches(&link.host));
        let (state, approvals_missing, window, refused, groups, required) = match &judged {
            Verdict::Ended(e) => (e.end.end().state(), 0, None, None, vec![], 1),
            Verdict::TimedOut => (State::TimedOut, 0, None, None, vec![], 1),
            Verdict::Refused(w) => (State::Pending, 0, None, Some(w.clone()), vec![], 1),
            Verdict::Waiting { missing, terms, .. } => (
                State::Pending,
                *missing,
                None,
                None,
                terms.approver_groups.clone(),
                terms.approvals_required,
            ),
            // Were this host enforcing it, its own record would be shown instead: approved
            // but not installed here yet (a moment), or refused by this host's own verdict.
            Verdict::Enforce { terms, .. } if for_this_host => (
                State::Pending,
                0,
                None,
                None,
                terms.approver_groups.clone(),
                terms.approvals_required,
            ),
            Verdict::Enforce { window, terms, .. } => {
                let state = if window.expires_at <= self.clock.now() {
                    State::Expired
                } else {
                    State::Active
                };
                (
                    state,
                    0,
                    Some(*window),
                    None,
                    terms.approver_groups.clone(),
                    terms.approvals_required,
                )
            }
            Verdict::NotForThisHost => (State::Pending, 0, None, None, vec![], 1),
        };
        RequestView {
            id: r.id.to_string(),
            user: r.user.clone(),
            // The requester's uid on this host, by name (a fleet request names users, not
            // uids); NO_UID when the name is unknown here.
            uid: identity::uid_of(&r.user).unwrap_or(jit_proto::NO_UID),
            state,
            command: match &r.target {
                jit_proto::Target::Sudo { command } => Some(command.clone()),
                jit_proto::Target::Ssh => None,
            },
            ssh: matches!(r.target, jit_proto::Target::Ssh),
            reason: r.reason.clone(),
            ticket: r.ticket.clone(),
            role: Some(r.role.clone()),
            duration_secs: r.duration_secs,
            requested_at: rfc3339(r.requested_at),
            pending_until: (state == State::Pending).then(|| rfc3339(r.pending_until)),
            approved_at: window.map(|w| rfc3339(w.approved_at)),
            expires_at: window.map(|w| rfc3339(w.expires_at)),
            ended_at: match &judged {
                Verdict::Ended(e) => Some(rfc3339(e.at)),
                _ => None,
            },
            approvals_missing,
            approver_groups: groups,
            decisions: signed
                .iter()
                .map(|a| jit_proto::DecisionView {
                    action: "approve".into(),
                    by: a.approver.clone(),
                    at: rfc3339(a.record.approved_at),
                    note: Some("signed, in the fleet store".into()),
                    voided: false,
                })
                .collect(),
            sessions: Vec::new(),
            failure: None,
            approvals_required: required,
            extension: None,
            break_glass: false,
            review: None,
            clipped: false,
            approval_token: s.sha256.clone(),
            fleet: Some(jit_proto::FleetView {
                origin: r.origin.clone(),
                hosts: r.hosts.iter().map(|h| h.to_string()).collect(),
                request_sha256: s.sha256.clone(),
                signed_by: signed.iter().map(|a| a.approver.clone()).collect(),
                for_this_host,
                refused,
                allowed_signers: None,
            }),
            hosts: Vec::new(),
        }
    }

    /// Pending fleet requests this actor may decide or asked for, for `jitd list`.
    pub(super) fn fleet_pending(&self, actor: &Actor) -> Vec<RequestView> {
        let Some(link) = self.fleet_link().cloned() else {
            return Vec::new();
        };
        let entries: Vec<(GrantId, Entry)> = {
            let book = link.book.lock().unwrap_or_else(|e| e.into_inner());
            book.ids()
                .filter_map(|id| book.get(id).map(|e| (id.clone(), e.clone())))
                .collect()
        };
        let local = self.read_registry();
        let enforced: Vec<bool> = entries
            .iter()
            .map(|(id, _)| local.get(id).is_some())
            .collect();
        drop(local);
        let mut out = Vec::new();
        let now = self.clock.now();
        for ((_, entry), here) in entries.iter().zip(enforced) {
            if here {
                continue;
            }
            let Some(Ok(s)) = &entry.request else {
                continue;
            };
            // Only what can still be pending is judged (signatures are checked for it).
            if !entry.ends.is_empty() || s.request.pending_until <= now {
                continue;
            }
            let v = self.store_view(&link, s, Some(entry));
            if v.state != State::Pending {
                continue;
            }
            let mine = v.user == actor.name;
            let decides =
                actor.is_root() || (!mine && authz::is_approver(actor, &v.approver_groups));
            if mine || decides {
                out.push(v);
            }
        }
        out.sort_by(|a, b| b.requested_at.cmp(&a.requested_at));
        out.truncate(100);
        out
    }

    pub(super) fn fleet_status(&self, actor: &Actor) -> Result<Response, Failure> {
        let link = self.fleet_link().cloned().ok_or_else(not_fleet)?;
        let groups = self.policy().all_approver_groups();
        if !actor.is_root() && !authz::is_approver(actor, &groups) {
            return Err(authz::Denial::NotAnApprover { groups }.into());
        }
        let enforcing = self
            .read_registry()
            .iter()
            .filter(|r| r.fleet.is_some() && r.state() == State::Active)
            .count() as u32;
        let mut view = link.status_view(enforcing);
        if let Some(fleet) = &self.config.fleet {
            view.offline_grace_secs = fleet.offline_grace().as_secs();
        }
        view.offline_ending_roles = self
            .policy()
            .roles
            .iter()
            .filter(|r| r.fleet_offline == crate::core::policy::FleetOffline::End)
            .map(|r| r.name.clone())
            .collect();
        Ok(Response::FleetStatus {
            fleet: Box::new(view),
        })
    }

    /// `shown` for a local record, with the fleet's host acknowledgements when it is one.
    pub(super) fn shown_with_hosts(&self, r: &Request) -> Response {
        let mut resp = shown(r);
        if r.fleet.is_some() {
            if let (Some(link), Response::Request { request }) = (self.fleet_link(), &mut resp) {
                if let Ok(acks) = link.acks_of(&r.id) {
                    request.hosts = acks;
                }
            }
        }
        resp
    }
}

fn end_word(end: FleetEnd) -> &'static str {
    match end {
        FleetEnd::Denied => "denied",
        FleetEnd::Revoked => "revoked",
        FleetEnd::Cancelled => "cancelled",
        FleetEnd::Completed => "completed",
    }
}

/// Why a fleet request's command may not be enforced here: what a local request's command
/// must pass (length, control characters, an absolute normalised path), and written exactly as
/// this host would resolve it.
fn command_refused(s: &StoredRequest) -> Option<String> {
    let jit_proto::Target::Sudo { command } = &s.request.target else {
        return None;
    };
    match submission::check_command(command) {
        Ok(resolved) if resolved == *command => None,
        Ok(resolved) => Some(format!(
            "its command is not written as this host resolves it ({})",
            crate::core::model::display_command(&resolved)
        )),
        Err(why) => Some(why),
    }
}

fn hosts_text(s: &StoredRequest) -> String {
    joined(&s.request.hosts, ",")
}
