//! What one fleet request means for this host: nothing (not one of its hosts), refused by its
//! own policy, waiting for approvals, ended, or a window to enforce. Everything comes from the
//! store, which is not trusted: access is added only by approvals that this host's own
//! allowed_signers and policy accept, over the exact request bytes; ends (which only take
//! access away) are accepted as they come.

use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};

use super::host_pattern::{any_matches, joined};
use super::records::{
    approval_message, ApprovalRecord, EndRecord, StoredRequest, MAX_CLOCK_AHEAD_SECS,
};
use crate::core::model::Window;
use crate::core::policy::{Ask, Policy, Requester};
use crate::core::recording::Record;

/// Checks `sig` as `principal`'s SSH signature of `message`; `Err` says why not.
pub type VerifySignature<'a> = &'a dyn Fn(&str, &[u8], &str) -> Result<(), String>;

/// This host, as the verdict needs it. The closures are the shell's lookups; the verdict stays
/// pure and testable without keys or users.
pub struct Local<'a> {
    pub host: &'a str,
    pub policy: &'a Policy,
    /// The requester's groups on this host; `None` if the name is unknown here.
    pub requester_groups: Option<&'a [String]>,
    /// An approver's groups on this host; `None` if the name is unknown here.
    pub approver_groups: &'a dyn Fn(&str) -> Option<Vec<String>>,
    /// Checks `sig` as `principal`'s SSH signature of `message` against this host's
    /// allowed_signers (namespace `jit-grant@v1`); `Err` says why not.
    pub verify: VerifySignature<'a>,
    pub now: DateTime<Utc>,
    /// Judge as a host the request names and its role applies to: what the request's origin
    /// and approvers are shown, on hosts that need not be targets.
    pub any_host: bool,
}

/// An approval as read from the store (the key names the approver).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Signed {
    pub approver: String,
    pub record: ApprovalRecord,
}

/// What the role on this host asks of the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terms {
    pub role: String,
    pub approver_groups: Vec<String>,
    pub approvals_required: u32,
    /// The request's duration, capped at this host's maximum for the role.
    pub duration: Duration,
    /// What this host's role records of the grant's sessions.
    pub record: Record,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// This host is not among the request's hosts.
    NotForThisHost,
    /// This host will never enforce it: its policy or user database says no.
    Refused(String),
    /// Someone ended it (denied, revoked, cancelled, done).
    Ended(EndRecord),
    /// Not (yet) enough valid approvals; `rejected` says which approvals did not count, and why.
    Waiting {
        terms: Terms,
        missing: u32,
        counted: Vec<String>,
        rejected: Vec<(String, String)>,
    },
    /// No approvals in time.
    TimedOut,
    /// Approved: enforce `window` (it may already be over, see [`Verdict::Enforce::window`]).
    Enforce {
        terms: Terms,
        window: Window,
        /// The approvals that counted, earliest first.
        approvers: Vec<String>,
        rejected: Vec<(String, String)>,
    },
}

/// The verdict on `request` with its `approvals` and `ends` as the store holds them now.
pub fn verdict(
    request: &StoredRequest,
    approvals: &[Signed],
    ends: &[EndRecord],
    local: &Local,
) -> Verdict {
    let r = &request.request;
    if !local.any_host && !any_matches(&r.hosts, local.host) {
        return Verdict::NotForThisHost;
    }
    // The earliest end wins; any end ends it everywhere.
    if let Some(end) = ends.iter().min_by_key(|e| e.at) {
        return Verdict::Ended(end.clone());
    }
    let terms = match terms(request, local) {
        Ok(t) => t,
        Err(why) => return Verdict::Refused(why),
    };
    let mut counted: Vec<(&str, DateTime<Utc>)> = Vec::new();
    let mut rejected = Vec::new();
    for a in approvals {
        match counts(request, a, &terms, local) {
            Ok(()) if counted.iter().any(|(who, _)| *who == a.approver) => {}
            Ok(()) => counted.push((&a.approver, a.record.approved_at)),
            Err(why) => rejected.push((a.approver.clone(), why)),
        }
    }
    counted.sort_by_key(|(who, at)| (*at, *who));
    let required = terms.approvals_required.max(1) as usize;
    if counted.len() < required {
        if local.now >= r.pending_until {
            return Verdict::TimedOut;
        }
        return Verdict::Waiting {
            missing: (required - counted.len()) as u32,
            counted: counted.iter().map(|(w, _)| w.to_string()).collect(),
            rejected,
            terms,
        };
    }
    // The window opens when the last approval it needs was given.
    let approved_at = counted[required - 1].1;
    let length = chrono::Duration::from_std(terms.duration).unwrap_or(chrono::Duration::zero());
    Verdict::Enforce {
        window: Window {
            approved_at,
            expires_at: approved_at + length,
        },
        approvers: counted.iter().map(|(w, _)| w.to_string()).collect(),
        rejected,
        terms,
    }
}

/// This host's policy on the request: its role must exist here, apply to this host, and let
/// this requester have this target; automatic approval and break-glass stay host-local.
fn terms(request: &StoredRequest, local: &Local) -> Result<Terms, String> {
    let r = &request.request;
    let role = local
        .policy
        .role(&r.role)
        .ok_or_else(|| format!("there is no role {:?} on {}", r.role, local.host))?;
    if role.break_glass {
        return Err(format!(
            "role {} is a break-glass role: break-glass is taken on the host itself, never through the fleet",
            role.name
        ));
    }
    if !local.any_host && !role.hosts.is_empty() && !any_matches(&role.hosts, local.host) {
        return Err(format!(
            "role {} does not apply to {} (hosts = {})",
            role.name,
            local.host,
            joined(&role.hosts, ", ")
        ));
    }
    let groups = local
        .requester_groups
        .ok_or_else(|| format!("there is no user {} on {}", r.user, local.host))?;
    let duration = Duration::from_secs(r.duration_secs).min(role.max_duration);
    let ask = Ask {
        who: Requester {
            user: &r.user,
            groups,
        },
        target: &r.target,
        role: Some(&r.role),
        duration: Some(duration),
    };
    let plan = local
        .policy
        .decide(&ask, &r.reason, r.ticket.as_deref(), r.requested_at)
        .map_err(|e| e.message().to_string())?;
    Ok(Terms {
        role: role.name.clone(),
        approver_groups: plan.approver_groups,
        approvals_required: plan.approvals_required.max(1),
        duration,
        record: role.record,
    })
}

/// Whether one approval counts on this host; `Err` says why not (for the audit log).
fn counts(request: &StoredRequest, a: &Signed, terms: &Terms, local: &Local) -> Result<(), String> {
    let r = &request.request;
    if a.record.request_sha256 != request.sha256 {
        return Err("it signs other request bytes than the store holds now".into());
    }
    if a.approver == r.user {
        return Err(format!("{} cannot approve their own request", a.approver));
    }
    let at = a.record.approved_at;
    // Approvals name whole seconds.
    if at < r.requested_at.trunc_subsecs(0) || at > r.pending_until {
        return Err(format!(
            "its time {} lies outside the request's pending time",
            crate::core::timestamp::rfc3339(at)
        ));
    }
    if at > local.now + chrono::Duration::seconds(MAX_CLOCK_AHEAD_SECS) {
        return Err(format!(
            "its time {} is ahead of this host's clock",
            crate::core::timestamp::rfc3339(at)
        ));
    }
    let groups = (local.approver_groups)(&a.approver)
        .ok_or_else(|| format!("there is no user {} on {}", a.approver, local.host))?;
    let may = if terms.approver_groups.is_empty() {
        a.approver == "root"
    } else {
        groups.iter().any(|g| terms.approver_groups.contains(g))
    };
    if !may {
        return Err(format!(
            "{} is not an approver of role {} on {} ({})",
            a.approver,
            terms.role,
            local.host,
            crate::core::policy::approvers_text(&terms.approver_groups)
        ));
    }
    let message = approval_message(&request.sha256, &r.id, &a.approver, at);
    (local.verify)(&a.approver, message.as_bytes(), &a.record.sig)
        .map_err(|why| format!("signature: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::command_pattern::CommandPattern;
    use crate::core::fleet::host_pattern::HostPattern;
    use crate::core::fleet::records::{parse_request, sha256_hex, FleetEnd};
    use crate::core::model::GrantId;
    use crate::core::policy::{Defaults, Role};

    const REQ: &str = r#"{"v":1,"id":"aaaaaaaaaa","origin":"web-1","user":"alice","target":{"kind":"sudo","command":["/usr/bin/systemctl","restart","postgresql"]},"hosts":["db-*"],"role":"db","reason":"deploy","ticket":null,"duration_secs":600,"requested_at":"2026-11-30T04:00:00Z","pending_until":"2026-11-30T05:00:00Z"}"#;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn db_role() -> Role {
        Role {
            name: "db".into(),
            commands: vec![CommandPattern::parse("/usr/bin/systemctl restart *").unwrap()],
            ssh: false,
            requester_groups: vec!["devs".into()],
            requester_users: Vec::new(),
            approver_groups: vec!["dba".into()],
            approvals: 1,
            self_approval: false,
            deny_ends: true,
            default_duration: Duration::from_secs(60),
            max_duration: Duration::from_secs(300),
            require_reason: false,
            reason_pattern: None,
            ticket_pattern: None,
            break_glass: false,
            auto_approve: Vec::new(),
            hosts: Vec::new(),
            record: Record::Output,
            fleet_offline: Default::default(),
        }
    }

    fn policy(change: impl FnOnce(&mut Role)) -> Policy {
        let mut role = db_role();
        change(&mut role);
        let mut p = Policy::open(Defaults {
            approver_groups: vec![],
            default_duration: Duration::from_secs(60),
            max_duration: Duration::from_secs(3600),
            require_reason: false,
            record: Record::Output,
        });
        p.roles.push(role);
        p
    }

    fn stored() -> StoredRequest {
        parse_request(
            "web-1",
            &GrantId::try_from("aaaaaaaaaa".to_string()).unwrap(),
            REQ.as_bytes(),
        )
        .unwrap()
    }

    /// A "signature" the fake verifier accepts: the principal and the message, hashed.
    fn sign(approver: &str, r: &StoredRequest, at: &str) -> Signed {
        let message = approval_message(&r.sha256, &r.request.id, approver, t(at));
        Signed {
            approver: approver.into(),
            record: ApprovalRecord {
                request_sha256: r.sha256.clone(),
                approved_at: t(at),
                sig: sha256_hex(format!("{approver}\n{message}").as_bytes()),
            },
        }
    }

    fn run(policy: &Policy, host: &str, approvals: &[Signed], ends: &[EndRecord]) -> Verdict {
        let groups = |name: &str| -> Option<Vec<String>> {
            match name {
                "bob" | "carol" => Some(vec!["dba".into()]),
                "alice" => Some(vec!["devs".into(), "dba".into()]),
                "mallory" => Some(vec!["devs".into()]),
                _ => None,
            }
        };
        let verify = |principal: &str, message: &[u8], sig: &str| -> Result<(), String> {
            let expected =
                sha256_hex(format!("{principal}\n{}", String::from_utf8_lossy(message)).as_bytes());
            if expected == sig {
                Ok(())
            } else {
                Err("bad signature".into())
            }
        };
        let devs = vec!["devs".to_string()];
        let local = Local {
            host,
            policy,
            requester_groups: Some(&devs),
            approver_groups: &groups,
            verify: &verify,
            now: t("2026-11-30T04:10:00Z"),
            any_host: false,
        };
        verdict(&stored(), approvals, ends, &local)
    }

    #[test]
    fn one_approver_opens_a_window_capped_at_this_hosts_maximum() {
        let p = policy(|_| {});
        let r = stored();
        match run(&p, "db-1", &[sign("bob", &r, "2026-11-30T04:05:00Z")], &[]) {
            Verdict::Enforce {
                window, approvers, ..
            } => {
                assert_eq!(window.approved_at, t("2026-11-30T04:05:00Z"));
                assert_eq!(
                    window.expires_at,
                    t("2026-11-30T04:10:00Z"),
                    "600 s capped at 5m"
                );
                assert_eq!(approvers, vec!["bob".to_string()]);
            }
            v => panic!("{v:?}"),
        }
        assert_eq!(
            run(&p, "web-1", &[sign("bob", &r, "2026-11-30T04:05:00Z")], &[]),
            Verdict::NotForThisHost
        );
    }

    #[test]
    fn approvals_that_must_not_count_do_not() {
        let p = policy(|_| {});
        let r = stored();
        let mut forged = sign("bob", &r, "2026-11-30T04:05:00Z");
        forged.record.sig = "00".into();
        let mut other_bytes = sign("bob", &r, "2026-11-30T04:05:00Z");
        other_bytes.record.request_sha256 = sha256_hex(b"another request");
        let mut moved_time = sign("bob", &r, "2026-11-30T04:05:00Z");
        moved_time.record.approved_at = t("2026-11-30T04:06:00Z");
        let cases = [
            (forged, "signature"),
            (other_bytes, "other request bytes"),
            (moved_time, "signature"),
            (sign("alice", &r, "2026-11-30T04:05:00Z"), "own request"),
            (
                sign("mallory", &r, "2026-11-30T04:05:00Z"),
                "not an approver",
            ),
            (sign("eve", &r, "2026-11-30T04:05:00Z"), "no user eve"),
            (sign("bob", &r, "2026-11-30T03:59:00Z"), "outside"),
            (
                sign("bob", &r, "2026-11-30T04:12:00Z"),
                "ahead of this host's clock",
            ),
        ];
        for (approval, why) in cases {
            match run(&p, "db-1", std::slice::from_ref(&approval), &[]) {
                Verdict::Waiting {
                    missing: 1,
                    rejected,
                    ..
                } => {
                    assert!(rejected[0].1.contains(why), "{why}: {rejected:?}");
                }
                v => panic!("{approval:?} gave {v:?}"),
            }
        }
    }

    #[test]
    fn two_approvals_needed_open_at_the_second() {
        let p = policy(|r| r.approvals = 2);
        let r = stored();
        let bob = sign("bob", &r, "2026-11-30T04:02:00Z");
        assert!(
            matches!(
                run(&p, "db-1", &[bob.clone(), bob.clone()], &[]),
                Verdict::Waiting { missing: 1, .. }
            ),
            "one approver twice is one approval"
        );
        match run(
            &p,
            "db-1",
            &[sign("carol", &r, "2026-11-30T04:04:00Z"), bob],
            &[],
        ) {
            Verdict::Enforce { window, .. } => {
                assert_eq!(window.approved_at, t("2026-11-30T04:04:00Z"))
            }
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn this_hosts_policy_decides() {
        let r = stored();
        let bob = [sign("bob", &r, "2026-11-30T04:05:00Z")];
        let limited =
            policy(|r| r.hosts = vec![HostPattern::try_from("db-2".to_string()).unwrap()]);
        assert!(
            matches!(run(&limited, "db-1", &bob, &[]), Verdict::Refused(w) if w.contains("does not apply to db-1"))
        );
        assert!(matches!(
            run(&limited, "db-2", &bob, &[]),
            Verdict::Enforce { .. }
        ));
        let other_role = policy(|r| r.name = "web".into());
        assert!(
            matches!(run(&other_role, "db-1", &bob, &[]), Verdict::Refused(w) if w.contains("no role"))
        );
        let open = Policy::open(Defaults {
            approver_groups: vec![],
            default_duration: Duration::from_secs(60),
            max_duration: Duration::from_secs(60),
            require_reason: false,
            record: Record::Output,
        });
        assert!(matches!(run(&open, "db-1", &bob, &[]), Verdict::Refused(_)));
    }

    #[test]
    fn a_host_where_the_requester_is_unknown_refuses() {
        let p = policy(|_| {});
        let r = stored();
        let groups = |name: &str| (name == "bob").then(|| vec!["dba".to_string()]);
        let verify = |_: &str, _: &[u8], _: &str| Ok(());
        let local = Local {
            host: "db-1",
            policy: &p,
            requester_groups: None,
            approver_groups: &groups,
            verify: &verify,
            now: t("2026-11-30T04:10:00Z"),
            any_host: false,
        };
        let v = verdict(&r, &[sign("bob", &r, "2026-11-30T04:05:00Z")], &[], &local);
        assert!(
            matches!(&v, Verdict::Refused(w) if w.contains("there is no user alice on db-1")),
            "{v:?}"
        );
    }

    #[test]
    fn an_end_from_anyone_ends_it_and_time_runs_out() {
        let p = policy(|_| {});
        let r = stored();
        let end = EndRecord {
            end: FleetEnd::Revoked,
            by: "carol".into(),
            at: t("2026-11-30T04:07:00Z"),
            note: None,
        };
        assert!(matches!(
            run(&p, "db-1", &[sign("bob", &r, "2026-11-30T04:05:00Z")], &[end]),
            Verdict::Ended(e) if e.end == FleetEnd::Revoked
        ));
        let groups = |_: &str| None;
        let verify = |_: &str, _: &[u8], _: &str| Err("no".to_string());
        let devs = vec!["devs".to_string()];
        let late = Local {
            host: "db-1",
            policy: &p,
            requester_groups: Some(&devs),
            approver_groups: &groups,
            verify: &verify,
            now: t("2026-11-30T05:00:00Z"),
            any_host: false,
        };
        assert_eq!(verdict(&r, &[], &[], &late), Verdict::TimedOut);
    }
}
