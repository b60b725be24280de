//! Who may do what. The actor comes from peer credentials and the group database, never from
//! the message.

use super::model::{Action, Decision, Request};

/// A caller as established by the socket server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub uid: u32,
    pub name: String,
    /// Names of every group the user belongs to (primary and supplementary).
    pub groups: Vec<String>,
}

impl Actor {
    pub fn is_root(&self) -> bool {
        self.uid == 0
    }

    pub fn in_any(&self, groups: &[String]) -> bool {
        self.groups.iter().any(|g| groups.contains(g))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    NotAnApprover { groups: Vec<String> },
    OwnRequest,
    NotYours,
    RootOnly,
}

impl std::fmt::Display for Denial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Denial::NotAnApprover { groups } if groups.is_empty() => {
                write!(
                    f,
                    "only root may decide on this request (no approver groups are configured)"
                )
            }
            Denial::NotAnApprover { groups } => write!(
                f,
                "only root and members of {} may decide on this request",
                groups.join(", ")
            ),
            Denial::OwnRequest => write!(
                f,
                "nobody may decide on their own request: ask another approver"
            ),
            Denial::NotYours => write!(f, "this request belongs to another user"),
            Denial::RootOnly => write!(f, "only root may do this"),
        }
    }
}

/// May `actor` approve, deny or revoke `request`?
pub fn may_decide(actor: &Actor, request: &Request, self_approval: bool) -> Result<(), Denial> {
    may_decide_under(actor, request, &request.approver_groups, self_approval)
}

/// [`may_decide`] with these approver groups instead of the request's (a reloaded policy's).
fn may_decide_under(
    actor: &Actor,
    request: &Request,
    approver_groups: &[String],
    self_approval: bool,
) -> Result<(), Denial> {
    if !actor.is_root() && !actor.in_any(approver_groups) {
        return Err(Denial::NotAnApprover {
            groups: approver_groups.to_vec(),
        });
    }
    if actor.uid == request.uid && !self_approval {
        return Err(Denial::OwnRequest);
    }
    Ok(())
}

/// The approvals of a pending request that no longer count, as (index in `decisions`, why):
/// each approver must still be one who may decide on it ([`may_decide`], with
/// `approver_groups` and `self_approval` as they are now). `now_as` gives an approver as they
/// are now, looked up by the caller: `None` when not looked up (the approval stands), an error
/// when the user is gone. Approvals already voided, and those of rules, are not judged again.
pub fn stale_approvals<'a>(
    request: &Request,
    approver_groups: &[String],
    self_approval: bool,
    now_as: impl Fn(&Decision) -> Option<&'a Result<Actor, String>>,
) -> Vec<(usize, String)> {
    if request.state() != jit_proto::State::Pending {
        return Vec::new();
    }
    request
        .decisions
        .iter()
        .enumerate()
        .filter(|(_, d)| d.action == Action::Approve && !d.voided)
        .filter_map(|(i, d)| {
            let why = match now_as(d)? {
                Err(gone) => format!("{}'s approval no longer counts: {gone}", d.by),
                Ok(actor) => {
                    let denial =
                        may_decide_under(actor, request, approver_groups, self_approval).err()?;
                    format!("{}'s approval no longer counts: {denial}", d.by)
                }
            };
            Some((i, why))
        })
        .collect()
}

/// May `actor` grant access to `user` directly (`jitd grant`)?
pub fn may_grant(actor: &Actor, approver_groups: &[String], user_uid: u32) -> Result<(), Denial> {
    if !actor.is_root() && !actor.in_any(approver_groups) {
        return Err(Denial::NotAnApprover {
            groups: approver_groups.to_vec(),
        });
    }
    if actor.uid == user_uid {
        return Err(Denial::OwnRequest);
    }
    Ok(())
}

/// Cancel and done belong to the requester alone.
pub fn may_act_as_requester(actor: &Actor, request: &Request) -> Result<(), Denial> {
    if actor.uid == request.uid {
        Ok(())
    } else {
        Err(Denial::NotYours)
    }
}

/// Requesters see their own requests; approvers (and root) see everyone's.
pub fn may_view(actor: &Actor, request: &Request, approver_groups: &[String]) -> bool {
    actor.uid == request.uid
        || is_approver(actor, approver_groups)
        || actor.in_any(&request.approver_groups)
}

pub fn is_approver(actor: &Actor, approver_groups: &[String]) -> bool {
    actor.is_root() || actor.in_any(approver_groups)
}

/// Recordings and the audit trail are for root and the members of `auditor_groups`.
pub fn is_auditor(actor: &Actor, auditor_groups: &[String]) -> bool {
    actor.is_root() || actor.in_any(auditor_groups)
}

/// PAM checks and session registration come from sshd and sudo, which run as root.
pub fn may_query_grants(actor: &Actor) -> Result<(), Denial> {
    if actor.is_root() {
        Ok(())
    } else {
        Err(Denial::RootOnly)
    }
}
