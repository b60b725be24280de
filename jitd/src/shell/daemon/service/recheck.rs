//! Decisions are checked again when they take effect. An approval that is about to count
//! re-checks that the requester is still allowed what they asked for (still in the role's
//! groups, still within the policy), and every earlier approval of the request is judged again:
//! an approver who could no longer decide on it (left the approver groups, or is the requester
//! where the role forbids self-approval) no longer counts. A reload judges pending requests the
//! same way under the new policy. The user and group databases are read before any lock is
//! taken (they may be remote); the decisions themselves are `core`'s.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use jit_proto::ErrorCode;

use super::{Failure, Service};
use crate::core::authz::Actor;
use crate::core::model::{Action, Decision, GrantId, Request};
use crate::core::policy::{Policy, Requester};
use crate::shell::daemon::identity;

/// A request's requester and approvers as the user database has them now.
pub(super) struct People {
    pub requester: Result<Actor, String>,
    approvers: HashMap<u32, Result<Actor, String>>,
}

impl People {
    /// The approver of `d` as they are now; `None` if not looked up (an approval given since,
    /// by an approver whose identity was just established).
    pub fn approver(&self, d: &Decision) -> Option<&Result<Actor, String>> {
        self.approvers.get(&d.by_uid?)
    }
}

impl Service {
    /// Looks up the requester and the approvers of request `id` (outside any lock).
    pub(super) fn people_now(&self, id: &GrantId) -> People {
        let found = self.read_registry().get(id).map(|r| {
            let approvers: Vec<u32> = r
                .decisions
                .iter()
                .filter(|d| d.action == Action::Approve && !d.voided)
                .filter_map(|d| d.by_uid)
                .collect();
            (r.uid, r.user.to_string(), approvers)
        });
        let Some((uid, user, approvers)) = found else {
            return People {
                requester: Err(format!("no request {id}")),
                approvers: HashMap::new(),
            };
        };
        let mut looked_up = HashMap::new();
        for uid in approvers {
            looked_up
                .entry(uid)
                .or_insert_with(|| identity::actor_for_uid(uid));
        }
        People {
            requester: identity::requester_now(uid, &user),
            approvers: looked_up,
        }
    }
}

/// Refuses an approval of `r` when `policy` no longer allows its requester what they asked for.
pub(super) fn requester_still_allowed(
    policy: &Policy,
    r: &Request,
    people: &People,
    now: DateTime<Utc>,
) -> Result<(), Failure> {
    let refused = |why: &str| {
        Failure::new(
            ErrorCode::PolicyDenied,
            format!(
                "refused: {} may no longer have what request {} asks for: {why}. Deny it \
                 (`jitd deny {} --reason ...`) or let it time out",
                r.user, r.id, r.id
            ),
        )
    };
    let who = people.requester.as_ref().map_err(|e| refused(e))?;
    let requester = Requester {
        user: &who.name,
        groups: &who.groups,
    };
    policy
        .still_allows(r, requester, now)
        .map_err(|refusal| refused(refusal.message()))
}
