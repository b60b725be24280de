//! Reloading the policy (SIGHUP, `jitd reload`): the whole configuration is read and
//! validated again; only a valid one replaces the policy, atomically, and either outcome is
//! logged. Pending requests are then judged again under the new policy: denied when it no
//! longer allows them, otherwise given the new approvers and approval count (and granted if
//! the approvals already given now suffice). Only approvals by people who approve under the new
//! policy (and are not the requester, unless the role allows self-approval) still count; the
//! others are voided. Rules do not approve on reload. Settings other
//! than the policy (socket, directories, limits, time-outs) need a restart.

use std::sync::Arc;

use jit_proto::{ErrorCode, Response, State};

use super::{Failure, Service};
use crate::config::config_file::Config;
use crate::core::authz::{self, Actor};
use crate::core::events::{Event, EventKind};
use crate::core::lifecycle::By;
use crate::core::model::GrantId;
use crate::core::policy::{Ask, Requester};
use crate::shell::audit::event_log::event_for;

impl Service {
    pub(super) fn reload(&self, actor: &Actor) -> Result<Response, Failure> {
        authz::may_query_grants(actor)?;
        self.reload_policy(&format!("`jitd reload` by {}", actor.name))
            .map(|message| Response::Reloaded { message })
            .map_err(|m| Failure::new(ErrorCode::BadRequest, m))
    }

    /// Loads the configuration file again and puts its policy in force. `trigger` says who
    /// asked, for the log.
    pub fn reload_policy(&self, trigger: &str) -> Result<String, String> {
        let Some(path) = self.config.source.clone() else {
            return Err(
                "jitd runs without a configuration file; restart it to change the policy".into(),
            );
        };
        let new = match Config::load(&path, true) {
            Ok(c) => c,
            Err(e) => {
                let message = format!(
                    "policy reload ({trigger}) rejected, the previous policy stays in force: {e}"
                );
                self.events
                    .emit(&Event::new(EventKind::ConfigReloaded, message.clone()));
                return Err(message);
            }
        };
        // Fleet mode's trust anchor is reread with the policy: removing an approver's key
        // must not wait for a restart.
        if let Some(link) = self.fleet_link() {
            if let Err(e) = link.reload_signers() {
                let message = format!(
                    "policy reload ({trigger}) rejected, the previous policy and allowed_signers stay in force: [fleet] allowed_signers: {e}"
                );
                self.events
                    .emit(&Event::new(EventKind::ConfigReloaded, message.clone()));
                return Err(message);
            }
        }
        let needs_restart = self.config.restart_only_changes(&new);
        let roles = new.policy.roles.len();
        *self.policy.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(new.policy);
        let (denied, changed) = self.reevaluate_pending();
        self.fleet_rejudge_all();
        let mut message = format!(
            "policy reloaded ({trigger}): {roles} role(s); pending requests: {denied} denied, {changed} updated"
        );
        if !needs_restart.is_empty() {
            message.push_str(&format!(
                "; changes to {} take effect only after a restart",
                needs_restart.join(", ")
            ));
        }
        self.events
            .emit(&Event::new(EventKind::ConfigReloaded, message.clone()));
        Ok(message)
    }

    /// Returns how many pending requests were denied and how many got new approvers.
    fn reevaluate_pending(&self) -> (usize, usize) {
        let pending: Vec<GrantId> = self
            .read_registry()
            .iter()
            .filter(|r| r.state() == State::Pending)
            .map(|r| r.id.clone())
            .collect();
        let policy = self.policy();
        let (mut denied, mut changed) = (0, 0);
        for id in pending {
            // Looked up before taking the registry lock: the user database may be remote.
            let people = self.people_now(&id);
            let mut granted = false;
            let result = self.transition(&id, |r, now| {
                let verdict = people.requester.as_ref().map_err(Clone::clone).and_then(|who| {
                    let ask = Ask {
                        who: Requester {
                            user: &who.name,
                            groups: &who.groups,
                        },
                        target: &r.target,
                        role: r.role.as_deref(),
                        duration: Some(std::time::Duration::from_secs(r.duration_secs)),
                    };
                    policy
                        .decide(&ask, &r.reason, r.ticket.as_deref(), now)
                        .map_err(|refusal| refusal.message().to_string())
                });
                match verdict {
                    Err(why) => {
                        let why = format!("the reloaded policy no longer allows it: {why}");
                        r.deny(&By::daemon(), why.clone(), true, now)?;
                        denied += 1;
                        Ok(Some(event_for(EventKind::Denied, r, why)))
                    }
                    Ok(plan) => {
                        // Only approvals by people who approve under the new policy count.
                        let stale = authz::stale_approvals(
                            r,
                            &plan.approver_groups,
                            policy.self_approval(plan.role.as_deref()),
                            |d| people.approver(d),
                        );
                        let approvers_changed = (
                            r.role.as_deref(),
                            r.approvals_required,
                            &r.approver_groups[..],
                        ) != (
                            plan.role.as_deref(),
                            plan.approvals_required,
                            &plan.approver_groups[..],
                        );
                        if !approvers_changed && stale.is_empty() {
                            return Ok(None);
                        }
                        changed += 1;
                        let voided: Vec<usize> = stale.iter().map(|(i, _)| *i).collect();
                        r.void_approvals(&voided);
                        granted = r.reassign(
                            plan.role,
                            plan.approvals_required,
                            plan.approver_groups,
                            now,
                        );
                        let mut ev = if granted {
                            let mut ev = event_for(
                                EventKind::Approved,
                                r,
                                "the approvals given suffice under the reloaded policy; the grant is active",
                            );
                            ev.approver = Some("jitd".into());
                            ev
                        } else if approvers_changed {
                            event_for(
                                EventKind::ConfigReloaded,
                                r,
                                "the reloaded policy changed who approves this request",
                            )
                        } else {
                            event_for(
                                EventKind::ConfigReloaded,
                                r,
                                format!(
                                    "after the reload, {} more approval(s) needed",
                                    r.approvals_missing()
                                ),
                            )
                        };
                        if !stale.is_empty() {
                            let why: Vec<&str> = stale.iter().map(|(_, w)| w.as_str()).collect();
                            ev.message.push_str(&format!(" ({})", why.join("; ")));
                        }
                        Ok(Some(ev))
                    }
                }
            });
            match result {
                Ok(_) => {}
                Err(f) => self.events.emit(&Event::new(
                    EventKind::InternalError,
                    format!(
                        "cannot re-evaluate request {id} after the reload: {}",
                        f.message
                    ),
                )),
            }
        }
        (denied, changed)
    }
}
