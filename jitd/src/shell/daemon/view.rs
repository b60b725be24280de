//! The record as CLIs see it (`--json` output).

use jit_proto::{
    DecisionView, ExtensionView, FleetView, RequestView, ReviewView, SessionView, Target,
};

use crate::core::approval_token::approval_token;
use crate::core::model::{Phase, Request};
use crate::core::timestamp::rfc3339;

/// Longest command line (its arguments' bytes together) and reason a list shows whole.
pub const LIST_CLIP_BYTES: usize = 256;

/// Room kept in a frame for the answer's envelope around the views.
const FRAME_SLACK: usize = 1024;

/// The view a list shows: [`view`], with a long command or reason shortened and `clipped`
/// set, so that a list of a hundred requests stays small; `jitd show ID` has them whole.
pub fn list_view(r: &Request) -> RequestView {
    let mut v = view(r);
    if let Some(argv) = &mut v.command {
        v.clipped |= clip_argv(argv, LIST_CLIP_BYTES);
    }
    if v.reason.len() > LIST_CLIP_BYTES {
        v.reason = format!("{}…", prefix(&v.reason, LIST_CLIP_BYTES));
        v.clipped = true;
    }
    v
}

/// Drops views from the front (the oldest) until the rest fits one frame; returns how many
/// were dropped. An answer too large for a frame would otherwise reach nobody.
pub fn fit_to_frame(views: &mut Vec<RequestView>) -> usize {
    let sizes: Vec<usize> = views
        .iter()
        .map(|v| serde_json::to_vec(v).map_or(usize::MAX / 2, |b| b.len() + 1))
        .collect();
    let mut total: usize = sizes.iter().sum();
    let mut drop = 0;
    while drop < sizes.len() && total > jit_proto::MAX_FRAME_BYTES - FRAME_SLACK {
        total -= sizes[drop];
        drop += 1;
    }
    views.drain(..drop);
    drop
}

/// Shortens `argv` to about `budget` bytes: whole arguments while they fit, the next one cut
/// with `…`, the rest left out. True if anything was cut.
fn clip_argv(argv: &mut Vec<String>, budget: usize) -> bool {
    let mut left = budget;
    for i in 0..argv.len() {
        if argv[i].len() > left {
            argv[i] = format!("{}…", prefix(&argv[i], left));
            argv.truncate(i + 1);
            return true;
        }
        left -= argv[i].len();
    }
    false
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn prefix(s: &str, max: usize) -> &str {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

pub fn view(r: &Request) -> RequestView {
    let window = r.window();
    RequestView {
        fleet: r.fleet.as_ref().map(|f| FleetView {
            origin: f.origin.clone(),
            hosts: fleet_hosts(f),
            request_sha256: f.request_sha256.clone(),
            signed_by: f.approvals.iter().map(|a| a.approver.clone()).collect(),
            for_this_host: true,
            refused: None,
            allowed_signers: None,
        }),
        hosts: Vec::new(),
        approval_token: approval_token(r),
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
        approver_groups: r.approver_groups.to_vec(),
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
        clipped: false,
    }
}

/// The host globs of a fleet grant's request, read back from its stored bytes.
fn fleet_hosts(f: &crate::core::model::FleetPart) -> Vec<String> {
    #[derive(serde::Deserialize)]
    struct Hosts {
        hosts: Vec<String>,
    }
    serde_json::from_str::<Hosts>(&f.request)
        .map(|h| h.hosts)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jit_proto::Response;

    fn a_view(id: usize, reason: &str) -> RequestView {
        RequestView {
            approval_token: "0123456789abcdef".into(),
            fleet: None,
            hosts: Vec::new(),
            id: format!("r{id}"),
            user: "alice".into(),
            uid: 1000,
            state: jit_proto::State::Pending,
            command: Some(vec!["/usr/bin/echo".into(), reason.into()]),
            ssh: false,
            reason: reason.into(),
            ticket: None,
            role: None,
            duration_secs: 60,
            requested_at: "2026-11-29T00:00:00Z".into(),
            pending_until: None,
            approved_at: None,
            expires_at: None,
            ended_at: None,
            approvals_missing: 1,
            approver_groups: vec![],
            decisions: vec![],
            sessions: vec![],
            failure: None,
            approvals_required: 1,
            extension: None,
            break_glass: false,
            review: None,
            clipped: false,
        }
    }

    #[test]
    fn a_long_command_is_cut_on_a_character_boundary_and_marked() {
        let mut argv: Vec<String> = vec!["/usr/bin/echo".into(), "é".repeat(200), "tail".into()];
        assert!(clip_argv(&mut argv, 100));
        assert_eq!(argv.len(), 2, "what follows the cut is left out");
        assert!(argv[1].ends_with('…'));
        assert!(argv[1].len() <= 100 + '…'.len_utf8());
        let mut short: Vec<String> = vec!["/usr/bin/id".into(), "-u".into()];
        assert!(!clip_argv(&mut short, 100));
        assert_eq!(short, vec!["/usr/bin/id".to_string(), "-u".to_string()]);
    }

    #[test]
    fn a_list_too_large_for_a_frame_drops_its_oldest_and_says_how_many() {
        let mut views: Vec<RequestView> = (0..40).map(|i| a_view(i, &"x".repeat(2000))).collect();
        let dropped = fit_to_frame(&mut views);
        assert!(dropped > 0);
        assert_eq!(views.len() + dropped, 40);
        assert_eq!(
            views.last().map(|v| v.id.as_str()),
            Some("r39"),
            "the newest stay"
        );
        let bytes = serde_json::to_vec(&Response::Requests {
            requests: views,
            omitted: dropped,
        })
        .unwrap();
        assert!(bytes.len() <= jit_proto::MAX_FRAME_BYTES, "{}", bytes.len());
    }
}
