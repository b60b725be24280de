//! The fleet book and verdict on whatever a compromised store holds: a listing of arbitrary
//! keys and values under the fleet prefix, judged by a host with a fixed policy (role `db`:
//! requesters `devs`, approvers `dba`, one approval; alice in devs and dba, bob and carol in
//! dba) and a stand-in signature check that accepts exactly `ok:<principal>:<SHA-256 of the
//! message>` (the real SSHSIG check is tested against OpenSSH elsewhere; here the question is
//! whether anything but a valid signature over the right text can count).

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::core::command_pattern::CommandPattern;
use crate::core::fleet::book::Book;
use crate::core::fleet::records::{sha256_hex, Keys};
use crate::core::fleet::verdict::{verdict, Local, Verdict};
use crate::core::policy::{Defaults, Policy, Role};
use crate::core::recording::Record;

/// The prefix the listing's keys are read under.
pub const PREFIX: &str = "/jit";
/// This host's name.
pub const HOST: &str = "db-1";

/// What the host would enforce for one request: the request's exact bytes, and each counted
/// approval as (approver, approved_at, sig), for the target's own check.
pub struct Enforced {
    pub id: String,
    pub request_bytes: Vec<u8>,
    pub requester: String,
    pub approvals: Vec<(String, DateTime<Utc>, String)>,
}

fn policy() -> Policy {
    let mut p = Policy::open(Defaults {
        approver_groups: Vec::new(),
        default_duration: Duration::from_secs(600),
        max_duration: Duration::from_secs(3600),
        require_reason: false,
        record: Record::Output,
    });
    p.roles.push(Role {
        name: "db".into(),
        commands: vec![CommandPattern::parse("/usr/bin/systemctl restart *").expect("a pattern")],
        ssh: true,
        requester_groups: vec!["devs".into()],
        requester_users: Vec::new(),
        approver_groups: vec!["dba".into()],
        approvals: 1,
        self_approval: false,
        deny_ends: true,
        default_duration: Duration::from_secs(600),
        max_duration: Duration::from_secs(3600),
        require_reason: false,
        reason_pattern: None,
        ticket_pattern: None,
        break_glass: false,
        auto_approve: Vec::new(),
        hosts: Vec::new(),
        record: Record::Output,
        fleet_offline: Default::default(),
    });
    p.host = Some(HOST.into());
    p
}

fn groups(name: &str) -> Option<Vec<String>> {
    match name {
        "alice" => Some(vec!["devs".into(), "dba".into()]),
        "bob" | "carol" => Some(vec!["dba".into()]),
        "mallory" => Some(vec!["devs".into()]),
        _ => None,
    }
}

/// The signature the stand-in check accepts for `principal` and `message`.
pub fn good_signature(principal: &str, message: &[u8]) -> String {
    format!("ok:{principal}:{}", sha256_hex(message))
}

/// Reads `listing` into a book as the sync thread does, and judges every request in it.
pub fn judge_listing(listing: &[(&[u8], &[u8])], now: DateTime<Utc>) -> Vec<Enforced> {
    let mut book = Book::new(Keys::new(PREFIX));
    for (k, v) in listing {
        book.put(k, v);
    }
    let policy = policy();
    let verify = |principal: &str, message: &[u8], sig: &str| {
        if sig == good_signature(principal, message) {
            Ok(())
        } else {
            Err("bad signature".to_string())
        }
    };
    let mut out = Vec::new();
    for id in book.ids() {
        let Some(entry) = book.get(id) else { continue };
        let Some(Ok(stored)) = &entry.request else {
            continue;
        };
        let requester = groups(&stored.request.user);
        let local = Local {
            host: HOST,
            policy: &policy,
            requester_groups: requester.as_deref(),
            approver_groups: &groups,
            verify: &verify,
            now,
            any_host: false,
        };
        let signed = entry.signed();
        if let Verdict::Enforce { approvers, .. } = verdict(stored, &signed, &entry.ends(), &local)
        {
            out.push(Enforced {
                id: id.to_string(),
                request_bytes: stored.bytes.clone(),
                requester: stored.request.user.clone(),
                approvals: approvers
                    .iter()
                    .filter_map(|a| signed.iter().find(|s| &s.approver == a))
                    .map(|s| {
                        (
                            s.approver.clone(),
                            s.record.approved_at,
                            s.record.sig.clone(),
                        )
                    })
                    .collect(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::fleet::records::approval_message;
    use crate::core::model::GrantId;

    /// The target's property is not vacuous: a genuine approval in a listing is enforced, and
    /// one copied to another request is not.
    #[test]
    fn a_listing_with_a_genuine_approval_is_enforced_and_a_copy_is_not() {
        let req = br#"{"v":1,"id":"aaaaaaaaaa","origin":"web-1","user":"mallory","target":{"kind":"ssh"},"hosts":["db-*"],"role":"db","reason":"r","ticket":null,"duration_secs":600,"requested_at":"2026-11-30T04:00:00Z","pending_until":"2026-11-30T05:00:00Z"}"#;
        let sha = sha256_hex(req);
        let at: DateTime<Utc> = "2026-11-30T04:05:00Z".parse().unwrap();
        let id = GrantId::try_from("aaaaaaaaaa".to_string()).unwrap();
        let message = approval_message(&sha, &id, "bob", at);
        let approval = serde_json::json!({
            "request_sha256": sha,
            "approved_at": "2026-11-30T04:05:00Z",
            "sig": good_signature("bob", message.as_bytes()),
        })
        .to_string();
        let now = "2026-11-30T04:10:00Z".parse().unwrap();
        let listing = [
            (&b"/jit/v1/g/req/web-1/aaaaaaaaaa"[..], &req[..]),
            (b"/jit/v1/g/ok/bob/aaaaaaaaaa", approval.as_bytes()),
        ];
        let enforced = judge_listing(&listing, now);
        assert_eq!(enforced.len(), 1);
        assert_eq!(enforced[0].approvals[0].0, "bob");
        let copy = String::from_utf8_lossy(req).replace("aaaaaaaaaa", "bbbbbbbbbb");
        let listing = [
            (&b"/jit/v1/g/req/web-1/bbbbbbbbbb"[..], copy.as_bytes()),
            (b"/jit/v1/g/ok/bob/bbbbbbbbbb", approval.as_bytes()),
        ];
        assert!(judge_listing(&listing, now).is_empty());
    }
}
