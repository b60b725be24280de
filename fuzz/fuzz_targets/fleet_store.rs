//! The fleet book and verdict on whatever a compromised store holds.
//!
//! Property: a host enforces a request only with approvals that are valid signatures (the
//! stand-in check of `jitd::fuzzing::fleet_store`) over exactly the text docs/fleet.md gives —
//! the SHA-256 of the request's bytes as stored, its id, the approver and the time — by
//! approvers its policy counts, never the requester. Nothing in the store panics the reader.
//!
//! Input: NUL-separated fields, read as pairs (key below `/jit/v1/g/`, value).
#![no_main]

use chrono::{DateTime, SecondsFormat, Utc};
use jitd::fuzzing::fleet_store::{good_signature, judge_listing};
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};

fuzz_target!(|data: &[u8]| {
    let fields: Vec<&[u8]> = data.split(|&b| b == 0).collect();
    let keys: Vec<Vec<u8>> = fields
        .chunks(2)
        .map(|pair| [b"/jit/v1/g/".as_slice(), pair[0]].concat())
        .collect();
    let listing: Vec<(&[u8], &[u8])> = fields
        .chunks(2)
        .zip(&keys)
        .map(|(pair, key)| (key.as_slice(), pair.get(1).copied().unwrap_or_default()))
        .collect();
    let now: DateTime<Utc> = "2026-11-30T04:10:00Z".parse().unwrap();
    for e in judge_listing(&listing, now) {
        assert!(!e.approvals.is_empty(), "{} enforced without an approval", e.id);
        let sha: String = Sha256::digest(&e.request_bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        for (approver, at, sig) in &e.approvals {
            assert_ne!(approver, &e.requester, "{} approved by its requester", e.id);
            assert!(
                ["alice", "bob", "carol"].contains(&approver.as_str()),
                "{approver} is no approver"
            );
            let message = format!(
                "jit-approval v1\nrequest_sha256={sha}\nid={}\napprover={approver}\napproved_at={}\n",
                e.id,
                at.to_rfc3339_opts(SecondsFormat::Secs, true)
            );
            assert_eq!(
                sig,
                &good_signature(approver, message.as_bytes()),
                "{} counted a signature over other text",
                e.id
            );
        }
    }
});
