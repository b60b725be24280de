//! What an approver approves, named. `jitd approve ID` approves whatever is up for decision
//! under ID when the approval arrives: the request an approver looked at, or — if meanwhile
//! someone else approved it and its holder asked for more time — an extension the approver
//! never saw. The token names the thing up for decision (the request as asked, or the pending
//! extension), the CLI passes back the token of what it showed, and an approval whose token
//! no longer matches is refused.

use sha2::{Digest, Sha256};

use super::model::{Phase, Request};
use super::timestamp::rfc3339;

/// 16 hex digits over what an approval decides on: who, what, how long, why, under which
/// role, and, for an active grant, the pending extension. Decisions by others do not change
/// it (they do not change what this approver approves).
pub fn approval_token(r: &Request) -> String {
    let mut h = Sha256::new();
    let mut field = |bytes: &[u8]| {
        // Length-prefixed, so no two field lists hash alike.
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    field(r.id.as_str().as_bytes());
    field(r.user.as_bytes());
    match r.command() {
        Some(argv) => argv.iter().for_each(|a| field(a.as_bytes())),
        None => field(b"ssh"),
    }
    field(&r.duration_secs.to_le_bytes());
    field(r.reason.as_bytes());
    field(r.ticket.as_deref().unwrap_or("").as_bytes());
    field(r.role.as_deref().unwrap_or("").as_bytes());
    match &r.phase {
        Phase::Pending { .. } => field(b"request"),
        Phase::Active { extension, .. } => match extension {
            Some(e) => {
                field(b"extension");
                field(&e.secs.to_le_bytes());
                field(rfc3339(e.asked_at).as_bytes());
            }
            None => field(b"active"),
        },
        Phase::Ended { .. } => field(b"ended"),
    }
    h.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone, Utc};
    use jit_proto::Target;

    use super::*;
    use crate::core::lifecycle::{By, Submission};
    use crate::core::model::GrantId;

    fn request() -> Request {
        let at = Utc.timestamp_opt(1_800_000_000, 0).unwrap();
        Request::open(
            GrantId::try_from("alice00001".to_string()).unwrap(),
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
                approvals_required: 2,
                approver_groups: vec![],
                record: crate::core::recording::Record::Off,
            },
            at,
            Duration::hours(1),
        )
    }

    #[test]
    fn the_token_changes_with_what_is_up_for_decision_and_only_with_it() {
        let at = Utc.timestamp_opt(1_800_000_100, 0).unwrap();
        let mut r = request();
        let asked = approval_token(&r);
        assert_eq!(asked.len(), 16);
        // Another approver's approval changes nothing this approver decides on.
        r.approve(&By::user("bob", 1002), None, at).unwrap();
        assert_eq!(approval_token(&r), asked);
        r.approve(&By::user("carol", 1003), None, at).unwrap();
        let active = approval_token(&r);
        assert_ne!(
            active, asked,
            "the request is no longer what is up for decision"
        );
        r.ask_extension(&By::user("alice", 1001), 3600, 1, at)
            .unwrap();
        let extension = approval_token(&r);
        assert_ne!(extension, active);
        assert_ne!(extension, asked);
    }
}
