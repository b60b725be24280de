//! What a root jitd reads must be something only root can change.
//!
//! `JITD_CONFIG` (and `--config`) can name any file, and an administrator who became root with
//! `su` instead of `su -` keeps the user's environment: their `jitd audit`, `audit verify` or
//! `report` would read a configuration the user wrote, pointing `state_dir` at a forged audit
//! log ("verify: intact"). A root `jitd serve` would take its whole policy from it. So, as root,
//! the configuration file, the secret files it names and the state directory are refused
//! unless they and every directory above them are root's and writable by nobody else.
//!
//! The directories matter as much as the file: whoever can write to a directory on the way can
//! swap the file for their own after it was checked. A world-writable directory with the
//! sticky bit (`/tmp`) is accepted: there only an entry's owner may rename or remove it. The
//! path is checked both as named and as it resolves, so a symbolic link in a user's directory
//! pointing at a root-owned file is refused too (the user could point it elsewhere).
//!
//! Not root (an approver running `jitd explain`): nothing is checked; the caller gains no
//! privilege from what they read.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

const STICKY: u32 = 0o1000;

/// Why a path is not root's alone: the component at fault and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotRootOnly {
    pub path: PathBuf,
    pub problem: String,
}

impl std::fmt::Display for NotRootOnly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.path.display(), self.problem)
    }
}

/// As root: refuses `path` unless it and every directory above it (as named and as resolved)
/// are root's and writable by nobody else. A `path` that does not exist is not an error here
/// (the caller says what is missing); the directories above it are still checked. Not root:
/// `Ok` without looking.
pub fn check(path: &Path) -> Result<(), NotRootOnly> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    check_as_root(path)
}

/// As [`check`], for the directories above `path` only: for a directory whose own owner and
/// mode its user checks closely itself (`jitd serve` and its state directory).
pub fn check_above(path: &Path) -> Result<(), NotRootOnly> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    let named = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    directories_above(&named)?;
    if let Ok(resolved) = fs::canonicalize(&named) {
        directories_above(&resolved)?;
    }
    Ok(())
}

fn check_as_root(path: &Path) -> Result<(), NotRootOnly> {
    let named = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    match fs::metadata(&named) {
        Ok(meta) => {
            if let Some(problem) = judge(&meta, false) {
                return Err(NotRootOnly {
                    path: named,
                    problem,
                });
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(NotRootOnly {
                path: named,
                problem: format!("cannot be checked: {e}"),
            })
        }
    }
    directories_above(&named)?;
    if let Ok(resolved) = fs::canonicalize(&named) {
        if resolved != named {
            directories_above(&resolved)?;
        }
    }
    Ok(())
}

fn directories_above(path: &Path) -> Result<(), NotRootOnly> {
    for dir in path.ancestors().skip(1) {
        // Followed: a directory reached through a link is judged by what it is; the link
        // itself sits in the directory above, which is judged next.
        match fs::metadata(dir) {
            Ok(meta) => {
                if let Some(problem) = judge(&meta, true) {
                    return Err(NotRootOnly {
                        path: dir.to_path_buf(),
                        problem,
                    });
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(NotRootOnly {
                    path: dir.to_path_buf(),
                    problem: format!("cannot be checked: {e}"),
                })
            }
        }
    }
    Ok(())
}

/// What makes one component changeable by someone other than root, if anything.
fn judge(meta: &fs::Metadata, above: bool) -> Option<String> {
    if meta.uid() != 0 {
        let who = nix::unistd::User::from_uid(meta.uid().into())
            .ok()
            .flatten()
            .map(|u| format!(" ({})", u.name))
            .unwrap_or_default();
        return Some(format!("is owned by uid {}{who}, not root", meta.uid()));
    }
    let mode = meta.mode() & 0o7777;
    let sticky = above && mode & STICKY != 0;
    if mode & 0o022 != 0 && !sticky {
        let by = if mode & 0o002 != 0 {
            "every user"
        } else {
            "its group"
        };
        return Some(format!("is writable by {by} (mode {mode:04o})"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn scratch(tag: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("jitd-rootonly-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    // These run as root (the test suite does); as another user `check` looks at nothing.
    #[test]
    fn a_users_file_or_a_file_in_a_users_directory_is_refused_as_root() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let dir = scratch("owner");
        let file = dir.join("jitd.toml");
        fs::write(&file, "").unwrap();
        assert_eq!(check_as_root(&file), Ok(()));

        std::os::unix::fs::chown(&file, Some(65534), None).unwrap();
        let e = check_as_root(&file).unwrap_err();
        assert_eq!(e.path, file);
        assert!(e.problem.contains("owned by uid 65534"), "{e}");
        std::os::unix::fs::chown(&file, Some(0), None).unwrap();

        fs::set_permissions(&file, fs::Permissions::from_mode(0o666)).unwrap();
        assert!(check_as_root(&file)
            .unwrap_err()
            .problem
            .contains("writable by every user"));
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();

        // A root-owned file in a directory the user owns: they can swap it.
        let users = dir.join("home");
        fs::create_dir(&users).unwrap();
        fs::copy(&file, users.join("jitd.toml")).unwrap();
        std::os::unix::fs::chown(&users, Some(65534), None).unwrap();
        let e = check_as_root(&users.join("jitd.toml")).unwrap_err();
        assert_eq!(e.path, users);

        // A link in the user's directory to a root-only file: the user can repoint it.
        let link = users.join("link.toml");
        symlink(&file, &link).unwrap();
        assert_eq!(check_as_root(&link).unwrap_err().path, users);
        // And a link in root's directory into the user's: judged where it resolves.
        let back = dir.join("back.toml");
        symlink(users.join("jitd.toml"), &back).unwrap();
        assert_eq!(check_as_root(&back).unwrap_err().path, users);

        // A sticky world-writable directory (/tmp) on the way is fine.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o1777)).unwrap();
        assert_eq!(check_as_root(&file), Ok(()));
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
        assert!(check_as_root(&file)
            .unwrap_err()
            .problem
            .contains("every user"));
        let _ = fs::remove_dir_all(&dir);
    }
}
