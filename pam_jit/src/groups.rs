//! Group membership as the system's NSS sees it (files, sssd, LDAP...): a cheap test that
//! can only say "member" for certain ([`is_listed`]), and the full one ([`is_member`]).

use std::ffi::{CStr, CString};

/// Upper bound on buffers for getpwnam_r/getgrnam_r; entries bigger than this are refused.
const MAX_BUF: usize = 1 << 20;
/// Upper bound on the number of groups a user may be in for this check.
const MAX_GROUPS: usize = 65_536;
/// Upper bound on the members of a group read by the cheap test; a longer list is read no
/// further (the full test still answers).
const MAX_GROUP_MEMBERS: usize = 1 << 20;

/// Whether `user` is a member of `group` by their own entries: the user's primary group is
/// `group`, or `group`'s entry names the user among its members. This is what Linux-PAM's
/// `pam_modutil_user_in_group_nam_nam` tests, and costs a `getpwnam_r` and a `getgrnam_r`,
/// answered by `files` for the local users and groups a break-glass group is made of.
///
/// `true` is certain: [`is_member`] says `true` too (getgrouplist starts from the primary
/// group and, for each NSS source, adds every group whose member list names the user).
/// `false` is not: the group's entry comes from the first source that knows the group, and
/// another source (sssd, LDAP, systemd's userdb) may still make the user a member.
pub fn is_listed(user: &str, group: &str) -> Result<bool, String> {
    let c_user = CString::new(user).map_err(|_| "user name contains NUL".to_string())?;
    let c_group = CString::new(group).map_err(|_| "group name contains NUL".to_string())?;
    let Some(primary) = primary_gid(&c_user)? else {
        return Err(format!("no such user {user:?}"));
    };
    let Some((gid, names_user)) = group_entry(&c_group, Some(c_user.as_c_str()))? else {
        return Err(format!("no such group {group:?}"));
    };
    Ok(primary == gid || names_user)
}

/// Whether `user` is a member of `group` in any NSS source, primary or supplementary
/// (getgrouplist, as `id` shows): the whole answer, and on Debian's `group: files systemd`
/// the expensive one (libnss_systemd probes the userdb directories for a regular user).
pub fn is_member(user: &str, group: &str) -> Result<bool, String> {
    let c_user = CString::new(user).map_err(|_| "user name contains NUL".to_string())?;
    let c_group = CString::new(group).map_err(|_| "group name contains NUL".to_string())?;
    let Some(primary) = primary_gid(&c_user)? else {
        return Err(format!("no such user {user:?}"));
    };
    let Some((wanted, _)) = group_entry(&c_group, None)? else {
        return Err(format!("no such group {group:?}"));
    };
    Ok(group_list(&c_user, primary)?.contains(&wanted))
}

fn primary_gid(user: &CString) -> Result<Option<libc::gid_t>, String> {
    let mut buf = vec![0u8; 1024];
    loop {
        // SAFETY: passwd is plain old data; all-zero is a valid value to be filled in.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: all pointers are valid for the call; `buf` outlives the use of `pwd`, whose
        // string fields point into it, and its length is passed.
        let rc = unsafe {
            libc::getpwnam_r(
                user.as_ptr(),
                &mut pwd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            )
        };
        match rc {
            0 if result.is_null() => return Ok(None),
            0 => return Ok(Some(pwd.pw_gid)),
            libc::ERANGE if buf.len() < MAX_BUF => buf.resize(buf.len() * 2, 0),
            e => {
                return Err(format!(
                    "getpwnam_r failed: {}",
                    std::io::Error::from_raw_os_error(e)
                ))
            }
        }
    }
}

/// The group's gid, and whether its member list names `member` (false when not asked).
fn group_entry(
    group: &CString,
    member: Option<&CStr>,
) -> Result<Option<(libc::gid_t, bool)>, String> {
    let mut buf = vec![0u8; 1024];
    loop {
        // SAFETY: group is plain old data; all-zero is a valid value to be filled in.
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::group = std::ptr::null_mut();
        // SAFETY: as for getpwnam_r above; `buf` outlives the use of `grp`.
        let rc = unsafe {
            libc::getgrnam_r(
                group.as_ptr(),
                &mut grp,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            )
        };
        match rc {
            0 if result.is_null() => return Ok(None),
            0 => {
                // SAFETY: getgrnam_r succeeded, so `grp` is filled in and its member list
                // points into `buf`, which is alive and unchanged until this returns.
                let listed = member.is_some_and(|m| unsafe { names(grp.gr_mem, m) });
                return Ok(Some((grp.gr_gid, listed)));
            }
            libc::ERANGE if buf.len() < MAX_BUF => buf.resize(buf.len() * 2, 0),
            e => {
                return Err(format!(
                    "getgrnam_r failed: {}",
                    std::io::Error::from_raw_os_error(e)
                ))
            }
        }
    }
}

/// Whether the NULL-terminated list `members` (a `gr_mem`) holds `name`.
///
/// # Safety
/// `members` is NULL or a NULL-terminated array of NUL-terminated strings, all valid for the
/// call, as getgrnam_r leaves them in its buffer.
unsafe fn names(members: *mut *mut libc::c_char, name: &CStr) -> bool {
    if members.is_null() {
        return false;
    }
    // Bounded like the group list below, whatever the source returned.
    for i in 0..MAX_GROUP_MEMBERS {
        // SAFETY: within the array, which the caller vouches for, up to its NULL end.
        let entry = unsafe { *members.add(i) };
        if entry.is_null() {
            return false;
        }
        // SAFETY: a non-NULL entry is a NUL-terminated string (the caller's promise).
        if unsafe { CStr::from_ptr(entry) } == name {
            return true;
        }
    }
    false
}

fn group_list(user: &CString, primary: libc::gid_t) -> Result<Vec<libc::gid_t>, String> {
    let mut groups: Vec<libc::gid_t> = vec![0; 64];
    loop {
        let mut n = libc::c_int::try_from(groups.len()).map_err(|_| "too many groups")?;
        // SAFETY: `groups` has room for `n` entries; getgrouplist writes at most `n` and sets
        // `n` to the number found (or needed, when it returns -1).
        let rc = unsafe { libc::getgrouplist(user.as_ptr(), primary, groups.as_mut_ptr(), &mut n) };
        let found = usize::try_from(n).map_err(|_| "getgrouplist returned a negative count")?;
        if rc >= 0 {
            groups.truncate(found.min(groups.len()));
            return Ok(groups);
        }
        // -1: the buffer was too small and `n` says how big it must be.
        let needed = found.max(groups.len() * 2);
        if needed > MAX_GROUPS {
            return Err(format!("user is in more than {MAX_GROUPS} groups"));
        }
        groups.resize(needed, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_in_its_primary_group() {
        assert_eq!(is_member("root", "root"), Ok(true));
    }

    #[test]
    fn nobody_is_not_in_root() {
        assert_eq!(is_member("nobody", "root"), Ok(false));
    }

    #[test]
    fn root_is_listed_in_its_primary_group() {
        assert_eq!(is_listed("root", "root"), Ok(true));
    }

    #[test]
    fn nobody_is_not_listed_in_root() {
        assert_eq!(is_listed("nobody", "root"), Ok(false));
    }

    #[test]
    fn a_member_list_names_a_user_only_by_their_exact_name() {
        let (alice, bob) = (c"alice".to_owned(), c"bob".to_owned());
        let mut list = [
            alice.as_ptr().cast_mut(),
            bob.as_ptr().cast_mut(),
            std::ptr::null_mut(),
        ];
        // SAFETY: a NULL-terminated array of C strings that outlive the calls.
        unsafe {
            assert!(names(list.as_mut_ptr(), c"bob"));
            assert!(!names(list.as_mut_ptr(), c"bo"));
            assert!(!names(list.as_mut_ptr(), c"alice2"));
            assert!(!names(std::ptr::null_mut(), c"alice"));
        }
    }

    #[test]
    fn unknown_names_are_errors_not_memberships() {
        assert!(is_member("no-such-user-jit", "root").is_err());
        assert!(is_member("root", "no-such-group-jit").is_err());
        assert!(is_listed("no-such-user-jit", "root").is_err());
        assert!(is_listed("root", "no-such-group-jit").is_err());
        assert!(is_listed("root\0", "root").is_err());
    }
}
