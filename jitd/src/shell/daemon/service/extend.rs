//! `jit-elevate extend ID --for DUR`: more time on an active grant, decided by the role's
//! rules again (a rule or break-glass at once, else approvers), never beyond the role's
//! maximum total. An approved extension moves the window's end and re-installs the grant, so
//! the sudoers drop-in carries the new NOTAFTER. Every step is an `extended` event whose
//! JIT_EXTENSION field says `asked` or `granted`.

use std::time::Duration as StdDuration;

use jit_proto::{ErrorCode, Response};

use super::{shown, Failure, Service};
use crate::core::authz::{self, Actor};
use crate::core::events::EventKind;
use crate::core::lifecycle::By;
use crate::core::model::Request;
use crate::core::policy::{approvers_text, Requester, Route};
use crate::shell::audit::event_log::event_for;

impl Service {
    pub(super) fn extend(
        &self,
        actor: &Actor,
        id: &str,
        duration_secs: u64,
    ) -> Result<Response, Failure> {
        let id = Self::parse_id(id)?;
        if duration_secs == 0 || duration_secs > jit_proto::duration::MAX_SECS {
            return Err(Failure::new(
                ErrorCode::BadRequest,
                "the extension must be longer than zero and shorter than a year",
            ));
        }
        let policy = self.policy();
        let requester = By::user(&actor.name, actor.uid);
        let extra = StdDuration::from_secs(duration_secs);
        let mut extended = false;
        let r = self.transition(&id, |r, now| {
            authz::may_act_as_requester(actor, r)?;
            // Planned under the lock, against the window as it is now.
            let window = r.window().filter(|_| r.extension().is_none());
            let current = window
                .map(|w| (w.expires_at - w.approved_at).to_std().unwrap_or_default())
                .unwrap_or_default();
            let plan = policy.plan_extension(
                r.role.as_deref(),
                Requester {
                    user: &actor.name,
                    groups: &actor.groups,
                },
                &r.target,
                current,
                extra,
                now,
            )?;
            let more = jit_proto::duration::format(extra);
            let (kind, approver, message) = match &plan.route {
                Route::Approvers => {
                    r.ask_extension(&requester, duration_secs, plan.approvals_required, now)?;
                    (
                        EventKind::Extended,
                        None,
                        format!(
                            "{} asks to extend the grant by {more}; {} approval(s) needed from {}",
                            actor.name,
                            plan.approvals_required,
                            approvers_text(&r.approver_groups)
                        ),
                    )
                }
                Route::Rule(rule) => {
                    let by = By::rule(rule);
                    r.extend_at_once(&requester, &by, duration_secs, now)?;
                    extended = true;
                    (
                        EventKind::Extended,
                        Some(by.name),
                        format!("rule {rule} extended the grant by {more}"),
                    )
                }
                Route::BreakGlass => {
                    let by = By::break_glass();
                    r.extend_at_once(&requester, &by, duration_secs, now)?;
                    extended = true;
                    (
                        EventKind::BreakGlass,
                        Some(by.name),
                        format!(
                            "BREAK-GLASS: {} extended the grant by {more} without approval",
                            actor.name
                        ),
                    )
                }
            };
            let mut ev = event_for(kind, r, message);
            let step = if approver.is_some() {
                "granted"
            } else {
                "asked"
            };
            ev.extra.push(("EXTENSION", step.to_string()));
            ev.approver = approver;
            Ok(Some(ev))
        })?;
        if extended {
            self.extended(&r);
        }
        Ok(shown(&r))
    }

    /// After the window grew (the drop-in, with its new NOTAFTER, was installed before the
    /// new window was published): warn anew before the new end.
    pub(super) fn extended(&self, r: &Request) {
        self.warned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&r.id);
    }
}
