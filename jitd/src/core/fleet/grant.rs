//! The local record of a fleet grant this host enforces: an active grant like any other (the
//! scheduler, NOTAFTER, sessions and reconciliation treat it alike), carrying the request's
//! bytes and the approvals that counted so that a restart can verify it again offline.

use chrono::{DateTime, Utc};

use super::records::StoredRequest;
use super::verdict::{Signed, Terms};
use crate::core::model::{Action, Decision, FleetPart, Phase, Request, Window};

pub fn local_grant(
    stored: &StoredRequest,
    uid: u32,
    terms: &Terms,
    window: Window,
    counted: &[Signed],
) -> Request {
    let r = &stored.request;
    Request {
        id: r.id.clone(),
        uid,
        user: r.user.as_str().into(),
        target: r.target.clone(),
        duration_secs: terms.duration.as_secs(),
        reason: r.reason.as_str().into(),
        ticket: r.ticket.as_deref().map(Into::into),
        role: Some(terms.role.as_str().into()),
        approvals_required: terms.approvals_required,
        approver_groups: terms.approver_groups.clone().into(),
        requested_at: r.requested_at,
        phase: Phase::Active {
            window,
            extension: None,
        },
        decisions: counted
            .iter()
            .map(|a| decision(&a.approver, a.record.approved_at, &r.origin))
            .collect(),
        sessions: Vec::new(),
        failure: None,
        break_glass: None,
        jobs_at_start: None,
        login: None,
        record: terms.record,
        fleet: Some(Box::new(FleetPart {
            origin: r.origin.clone(),
            request: String::from_utf8_lossy(&stored.bytes).into_owned(),
            request_sha256: stored.sha256.clone(),
            approvals: counted.to_vec(),
        })),
        audit_seq: 0,
    }
}

fn decision(approver: &str, at: DateTime<Utc>, origin: &str) -> Decision {
    Decision {
        action: Action::Approve,
        by: approver.into(),
        by_uid: None,
        at,
        note: Some(format!("signed approval in the fleet store (asked on {origin})").into()),
        voided: false,
    }
}
