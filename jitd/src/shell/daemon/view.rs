//! The record as CLIs see it (`--json` output).

use jit_proto::{DecisionView, ExtensionView, RequestView, ReviewView, SessionView, Target};

use crate::core::model::{Phase, Request};
use crate::core::timestamp::rfc3339;

pub fn view(r: &Request) -> RequestView {
    let window = r.window();
    RequestView {
        id: r.id.to_string(),
        user: r.user.to_string(),
        uid: r.uid,
        state: r.state(),
        command: match &r.target {
            Target::Sudo { command } => Some(command.clone()),
            Target::Ssh => None,
        },
        ssh: matches!(r.target, Target::Ssh),
        reason: r.reason.to_string(),
        ticket: r.ticket.as_deref().map(str::to_owned),
        role: r.role.as_deref().map(str::to_owned),
        duration_secs: r.duration_secs,
        requested_at: rfc3339(r.requested_at),
        pending_until: match r.phase {
            Phase::Pending { until } => Some(rfc3339(until)),
            _ => None,
        },
        approved_at: window.map(|w| rfc3339(w.approved_at)),
        expires_at: window.map(|w| rfc3339(w.expires_at)),
        ended_at: match r.phase {
            Phase::Ended { at, .. } => Some(rfc3339(at)),
            _ => None,
        },
        approvals_missing: r.approvals_missing(),
        approver_groups: r.approver_groups.clone(),
        decisions: r
            .decisions
            .iter()
            .map(|d| DecisionView {
                action: d.action.as_str().into(),
                by: d.by.to_string(),
                at: rfc3339(d.at),
                note: d.note.as_deref().map(str::to_owned),
                voided: d.voided,
            })
            .collect(),
        sessions: r
            .sessions
            .iter()
            .map(|s| SessionView {
                pid: s.pid,
                service: s.service.clone(),
                user: s.user.clone(),
                ruser: s.ruser.clone(),
                tty: s.tty.clone(),
                rhost: s.rhost.clone(),
                audit_session: s.audit_session,
                opened_at: rfc3339(s.opened_at),
            })
            .collect(),
        failure: r.failure.as_deref().map(str::to_owned),
        approvals_required: r.approvals_required,
        extension: r.extension().map(|e| ExtensionView {
            duration_secs: e.secs,
            asked_at: rfc3339(e.asked_at),
            approvals_missing: e.missing(),
        }),
        break_glass: r.break_glass.is_some(),
        review: r
            .break_glass
            .as_ref()
            .and_then(|b| b.review.as_ref())
            .map(|v| ReviewView {
                by: v.by.clone(),
                at: rfc3339(v.at),
                comment: v.comment.clone(),
            }),
    }
}
