//! Turns peer credentials into an [`Actor`] (name and groups from the user database), and
//! user names into uids. Group membership is read at decision time, so removing someone from
//! an approver group takes effect at once.

use std::ffi::CString;

use nix::unistd::{getgrouplist, Gid, Group, Uid, User};

use crate::core::authz::Actor;

pub fn actor_for_uid(uid: u32) -> Result<Actor, String> {
    let user = User::from_uid(Uid::from_raw(uid))
        .map_err(|e| format!("cannot look up uid {uid}: {e}"))?
        .ok_or_else(|| format!("uid {uid} has no entry in the user database"))?;
    Ok(Actor {
        uid,
        groups: group_names(&user.name, user.gid),
        name: user.name,
    })
}

/// The requester of a stored request as they are now: the uid that asked, with the groups its
/// user database entry has today, under the name it asked as (whether that is still the uid's
/// name is checked where it matters, when the sudo rule is written). An error when the uid has
/// no entry any more.
pub fn requester_now(uid: u32, asked_as: &str) -> Result<Actor, String> {
    let user = User::from_uid(Uid::from_raw(uid))
        .map_err(|e| format!("cannot look up uid {uid}: {e}"))?
        .ok_or_else(|| format!("uid {uid} ({asked_as}) no longer exists on this host"))?;
    Ok(Actor {
        uid,
        groups: group_names(&user.name, user.gid),
        name: asked_as.to_string(),
    })
}

/// The caller of a request authorised by its uid alone: PAM's check and session registration,
/// which only root may make. The user and group databases are not read, because that would put
/// NSS (files, LDAP, sssd) on the path of every login and every sudo; `name` is `#UID`.
pub fn uid_only(uid: u32) -> Actor {
    Actor {
        uid,
        name: format!("#{uid}"),
        groups: Vec::new(),
    }
}

/// Names of every group `name` belongs to, primary group included.
pub fn group_names(name: &str, primary: Gid) -> Vec<String> {
    let Ok(cname) = CString::new(name) else {
        return Vec::new();
    };
    getgrouplist(&cname, primary)
        .unwrap_or_else(|_| vec![primary])
        .into_iter()
        .filter_map(|gid| Group::from_gid(gid).ok().flatten().map(|g| g.name))
        .collect()
}

/// The uid of an existing user, or a message that says the user does not exist.
pub fn uid_of(name: &str) -> Result<u32, String> {
    match User::from_name(name) {
        Ok(Some(u)) => Ok(u.uid.as_raw()),
        Ok(None) => Err(format!("no such user: {name:?}")),
        Err(e) => Err(format!("cannot look up user {name:?}: {e}")),
    }
}
