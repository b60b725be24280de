//! Group membership as the system's NSS sees it (files, sssd, LDAP...), through getgrouplist.

use std::ffi::CString;

/// Upper bound on buffers for getpwnam_r/getgrnam_r; entries bigger than this are refused.
const MAX_BUF: usize = 1 << 20;
/// Upper bound on the number of groups a user may be in for this check.
const MAX_GROUPS: usize = 65_536;

pub fn is_member(user: &str, group: &str) -> Result<bool, String> {
    let c_user = CString::new(user).map_err(|_| "user name contains NUL".to_string())?;
    let c_group = CString::new(group).map_err(|_| "group name contains NUL".to_string())?;
    let Some(primary) = primary_gid(&c_user)? else {
        return Err(format!("no such user {user:?}"));
    };
    let Some(wanted) = group_gid(&c_group)? else {
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

fn group_gid(group: &CString) -> Result<Option<libc::gid_t>, String> {
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
            0 => return Ok(Some(grp.gr_gid)),
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
    fn unknown_names_are_errors_not_memberships() {
        assert!(is_member("no-such-user-jit", "root").is_err());
        assert!(is_member("root", "no-such-group-jit").is_err());
    }
}
