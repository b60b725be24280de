//! Whether a program is one that only root can change: the condition for granting it.
//!
//! A sudo grant names a program by its path. If anyone but root can change what that path runs
//! — rewrite the file, replace it in its directory, or swap a directory or a symlink on the way
//! to it — then approving `~/bin/hello` approves whatever its owner puts there next. So the path
//! is walked as the kernel walks it, from `/`, following every symlink, and every directory
//! entered and the file reached must be owned by root and writable by neither group nor others.
//! Deliberately simple: a sticky world-writable directory (`/tmp`) and a group-writable one
//! (even group root) are refused too. A symlink itself cannot be changed, only replaced, which
//! takes write access to its directory; that directory is checked.
//!
//! Reads the filesystem, so it lives in the shell; the daemon runs it at submission, and the
//! host again before it installs a drop-in and at every reconciliation.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

/// Symlinks followed before giving up, as the kernel's ELOOP limit.
const MAX_SYMLINKS: usize = 40;

/// Why a program is not one only root can change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Untrusted {
    /// The program as it was named.
    pub program: String,
    /// The component at fault (a directory on the way, or the file).
    pub path: PathBuf,
    pub problem: Problem,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Owned by someone other than root, who can change it (chmod it, then write to it).
    Owner {
        uid: u32,
    },
    GroupWritable {
        gid: u32,
        mode: u32,
    },
    WorldWritable {
        mode: u32,
    },
    /// The walk could not read it (gone, not a directory, a loop, …).
    Unreadable(String),
    /// What the path leads to is not a regular file.
    NotAFile,
    /// `/proc` holds per-process links that change with whoever looks.
    UnderProc,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Owner { uid } => match user_name(*uid) {
                Some(name) => write!(f, "is writable by {name} (owner uid {uid})"),
                None => write!(f, "is writable by its owner, uid {uid}"),
            },
            Problem::GroupWritable { gid, mode } => match group_name(*gid) {
                Some(name) => write!(
                    f,
                    "is writable by group {name} (gid {gid}, mode {mode:04o})"
                ),
                None => write!(f, "is writable by group gid {gid} (mode {mode:04o})"),
            },
            Problem::WorldWritable { mode } => {
                write!(f, "is writable by every user (mode {mode:04o})")
            }
            Problem::Unreadable(e) => write!(f, "cannot be checked: {e}"),
            Problem::NotAFile => write!(f, "is not a regular file"),
            Problem::UnderProc => write!(
                f,
                "holds links that differ by the process following them; nothing under it is granted"
            ),
        }
    }
}

impl fmt::Display for Untrusted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = self.path.display();
        if Path::new(&self.program).starts_with(&self.path) {
            write!(f, "{at} {}", self.problem)?;
        } else {
            // Reached through a symlink: say from where.
            write!(
                f,
                "{} leads through {at}, which {}",
                self.program, self.problem
            )?;
        }
        write!(f, "; jit grants only programs that only root can change")
    }
}

impl std::error::Error for Untrusted {}

fn user_name(uid: u32) -> Option<String> {
    nix::unistd::User::from_uid(uid.into())
        .ok()
        .flatten()
        .map(|u| u.name)
}

fn group_name(gid: u32) -> Option<String> {
    nix::unistd::Group::from_gid(gid.into())
        .ok()
        .flatten()
        .map(|g| g.name)
}

/// What is wrong with one component (by its `lstat`), if anything.
fn judge(meta: &fs::Metadata) -> Option<Problem> {
    let mode = meta.mode() & 0o7777;
    if meta.uid() != 0 {
        Some(Problem::Owner { uid: meta.uid() })
    } else if mode & 0o002 != 0 {
        Some(Problem::WorldWritable { mode })
    } else if mode & 0o020 != 0 {
        Some(Problem::GroupWritable {
            gid: meta.gid(),
            mode,
        })
    } else {
        None
    }
}

/// Checks that only root can change what the absolute path `program` runs; returns the file it
/// resolves to (every symlink followed).
pub fn check(program: &str) -> Result<PathBuf, Untrusted> {
    let refuse = |path: &Path, problem| Untrusted {
        program: program.to_owned(),
        path: path.to_owned(),
        problem,
    };
    let unreadable =
        |path: &Path, e: std::io::Error| refuse(path, Problem::Unreadable(e.to_string()));
    let root = Path::new("/");
    if !program.starts_with('/') {
        return Err(refuse(
            Path::new(program),
            Problem::Unreadable("not an absolute path".into()),
        ));
    }
    let meta = fs::symlink_metadata(root).map_err(|e| unreadable(root, e))?;
    if let Some(p) = judge(&meta) {
        return Err(refuse(root, p));
    }
    // `resolved` never contains a symlink and every directory in it has been checked.
    let mut resolved = PathBuf::from("/");
    let mut last = meta;
    let mut pending: VecDeque<OsString> = names(Path::new(program));
    let mut followed = 0;
    while let Some(name) = pending.pop_front() {
        match name.to_str() {
            Some(".") => continue,
            Some("..") => {
                resolved.pop();
                last = fs::symlink_metadata(&resolved).map_err(|e| unreadable(&resolved, e))?;
                continue;
            }
            _ => {}
        }
        if !last.is_dir() {
            return Err(refuse(
                &resolved,
                Problem::Unreadable("not a directory".into()),
            ));
        }
        let next = resolved.join(&name);
        if next == Path::new("/proc") {
            return Err(refuse(&next, Problem::UnderProc));
        }
        let meta = fs::symlink_metadata(&next).map_err(|e| unreadable(&next, e))?;
        if meta.file_type().is_symlink() {
            followed += 1;
            if followed > MAX_SYMLINKS {
                return Err(refuse(
                    &next,
                    Problem::Unreadable("too many levels of symbolic links".into()),
                ));
            }
            let target = fs::read_link(&next).map_err(|e| unreadable(&next, e))?;
            if target.is_absolute() {
                resolved = PathBuf::from("/");
                last = fs::symlink_metadata(root).map_err(|e| unreadable(root, e))?;
            }
            for n in names(&target).into_iter().rev() {
                pending.push_front(n);
            }
            continue;
        }
        if let Some(p) = judge(&meta) {
            return Err(refuse(&next, p));
        }
        resolved = next;
        last = meta;
    }
    if !last.is_file() {
        return Err(refuse(&resolved, Problem::NotAFile));
    }
    Ok(resolved)
}

/// The names in `path` after the root, `.` and `..` kept as they are.
fn names(path: &Path) -> VecDeque<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::RootDir | Component::Prefix(_) => None,
            Component::CurDir => Some(".".into()),
            Component::ParentDir => Some("..".into()),
            Component::Normal(n) => Some(n.to_owned()),
        })
        .collect()
}

#[cfg(test)]
mod tests;
