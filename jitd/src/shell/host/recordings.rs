//! The recordings directory (`recordings_dir`): one directory per recorded grant, written by
//! sudo's I/O logging (`<dir>/<grant id>/00/00/01`, ...), root's alone.
//!
//! Nobody but root may list or read it: a recording holds whatever the session printed (and,
//! with `record = "all"`, what was typed, passwords included). Auditors see recordings through
//! jitd (`jitd replay`), never through the file system.

use crate::config::root_only;
use crate::core::recording::RecordingsDir;
use std::fs::{self, DirBuilder};
use std::io;
use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::SystemTime;

/// Most sessions listed for one grant; a grant of minutes does not run more sudo commands.
pub const MAX_SESSIONS: usize = 10_000;

/// Makes `dir` if it is missing (mode 0700, root's), and refuses one that someone other than
/// root could read or change, or that is reached through a directory they could change.
pub fn prepare(dir: &RecordingsDir) -> io::Result<()> {
    let path = Path::new(dir.as_str());
    if let Some(parent) = path.parent() {
        // Parents as /var/log is: readable, changed by root only (SSH grant holders pass
        // through to their recordings beside this directory).
        super::ssh_recording::create_reachable(parent)?;
    }
    match DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    check(path)
}

/// The directory must be a real directory of root's, mode 0700 or less, below directories
/// only root can change.
fn check(path: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(path)?;
    let refuse = |why: String| {
        io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} {why}; recordings must be root's alone (chown root:root, chmod 0700)",
                path.display()
            ),
        )
    };
    if !meta.is_dir() {
        return Err(refuse("is not a directory".into()));
    }
    if nix::unistd::geteuid().is_root() && meta.uid() != 0 {
        return Err(refuse(format!("is owned by uid {}", meta.uid())));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(refuse(format!(
            "has mode {:04o}",
            meta.permissions().mode() & 0o7777
        )));
    }
    root_only::check_above(path)
        .map_err(|e| io::Error::new(io::ErrorKind::PermissionDenied, e.to_string()))
}

/// The sessions recorded for grant `id`, oldest first: sudo's session ids (`000001`, ...),
/// which `sudoreplay -d <dir>/<id>` plays. None when the grant was never recorded.
pub fn sessions(dir: &RecordingsDir, id: &str) -> io::Result<Vec<String>> {
    let grant = dir.grant_dir(id);
    let mut found = Vec::new();
    walk(&grant, &mut Vec::new(), &mut found)?;
    found.sort();
    Ok(found)
}

/// sudo writes session `XXYYZZ` (base 36) to `XX/YY/ZZ/`, a directory holding a `log` file.
fn walk(dir: &Path, parts: &mut Vec<String>, found: &mut Vec<String>) -> io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let two = name.len() == 2 && name.bytes().all(|b| b.is_ascii_alphanumeric());
        if !two || !entry.file_type()?.is_dir() {
            continue;
        }
        parts.push(name.to_owned());
        if parts.len() == 3 {
            if entry.path().join("log").is_file() && found.len() < MAX_SESSIONS {
                found.push(parts.concat());
            }
        } else {
            walk(&entry.path(), parts, found)?;
        }
        parts.pop();
    }
    Ok(())
}

/// Session `n` (counted from 1) of `sessions`, or all of them, numbered; the error says which
/// numbers there are.
pub fn pick<'a>(
    sessions: &'a [String],
    id: &str,
    session: Option<u32>,
) -> Result<Vec<(usize, &'a str)>, String> {
    if sessions.is_empty() {
        return Err(format!(
            "grant {id} has no recordings (its role does not record, it ran nothing, or they \
             are past retention)"
        ));
    }
    let numbered = sessions
        .iter()
        .enumerate()
        .map(|(i, s)| (i + 1, s.as_str()));
    match session {
        None => Ok(numbered.collect()),
        Some(n) => numbered
            .clone()
            .find(|(i, _)| *i as u64 == u64::from(n))
            .map(|one| vec![one])
            .ok_or_else(|| {
                format!(
                    "grant {id} has {} recorded session(s): --session 1 to {}",
                    sessions.len(),
                    sessions.len()
                )
            }),
    }
}

/// sudo's player; run with an argument vector, never through a shell.
pub const SUDOREPLAY: &str = "/usr/bin/sudoreplay";

/// The command that plays session `session` (an id from [`sessions`]) of grant `id` with its
/// original timing, on the caller's terminal.
pub fn player(dir: &RecordingsDir, id: &str, session: &str) -> Command {
    let mut cmd = Command::new(SUDOREPLAY);
    cmd.arg("-d").arg(dir.grant_dir(id)).arg(session);
    cmd
}

/// What session `session` of grant `id` printed, without its timing (`-m 0`), at most
/// `max_bytes` of it; the flag says whether there was more.
pub fn output(
    dir: &RecordingsDir,
    id: &str,
    session: &str,
    max_bytes: usize,
) -> io::Result<(Vec<u8>, bool)> {
    let mut cmd = player(dir, id, session);
    let mut child = cmd
        .args(["-m", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut out = Vec::new();
    let stdout = child.stdout.take().expect("piped");
    stdout.take(max_bytes as u64 + 1).read_to_end(&mut out)?;
    let truncated = out.len() > max_bytes;
    out.truncate(max_bytes);
    if truncated {
        let _ = child.kill();
    }
    let mut err = String::new();
    if let Some(stderr) = child.stderr.take() {
        let _ = stderr.take(2048).read_to_string(&mut err);
    }
    let status = child.wait()?;
    if !status.success() && !truncated {
        return Err(io::Error::other(format!(
            "sudoreplay failed ({status}): {}",
            err.trim()
        )));
    }
    Ok((out, truncated))
}

/// Removes everything recorded for grant `id` (when its record leaves the history). Returns
/// whether there was anything.
pub fn remove(dir: &RecordingsDir, id: &str) -> io::Result<bool> {
    let grant: PathBuf = dir.grant_dir(id);
    match fs::remove_dir_all(&grant) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Removes the recordings of every grant that `known` no longer names and that nothing was
/// recorded for since `cutoff`; returns how many grants' recordings went.
pub fn sweep(
    dir: &RecordingsDir,
    cutoff: SystemTime,
    known: impl Fn(&str) -> bool,
) -> io::Result<usize> {
    let entries = match fs::read_dir(dir.as_str()) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        let Some(id) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let grant_id = !id.is_empty()
            && id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !grant_id || known(&id) {
            continue;
        }
        // sudo rewrites `seq` at every session: its time is the last recording's.
        let last = fs::metadata(entry.path().join("seq"))
            .or_else(|_| entry.metadata())
            .and_then(|m| m.modified())?;
        if last < cutoff && remove(dir, &id)? {
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shell::testing::TempDir;

    fn scratch() -> (TempDir, RecordingsDir) {
        let t = TempDir::new("recordings");
        let dir = RecordingsDir::parse(&t.path().join("sessions")).unwrap();
        (t, dir)
    }

    #[test]
    fn the_directory_is_made_root_only_and_a_readable_one_is_refused() {
        let (_t, dir) = scratch();
        prepare(&dir).unwrap();
        let mode = fs::metadata(dir.as_str()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        fs::set_permissions(dir.as_str(), fs::Permissions::from_mode(0o755)).unwrap();
        let e = prepare(&dir).unwrap_err();
        assert!(e.to_string().contains("has mode 0755"), "{e}");
    }

    #[test]
    fn sessions_are_listed_in_order_and_removed_with_the_grant() {
        let (_t, dir) = scratch();
        assert!(sessions(&dir, "g1").unwrap().is_empty());
        for s in ["00/00/02", "00/00/01", "00/00/0A"] {
            let p = dir.grant_dir("g1").join(s);
            fs::create_dir_all(&p).unwrap();
            fs::write(p.join("log"), "x").unwrap();
        }
        // Not a session: sudo's own counter, and a directory without a log.
        fs::write(dir.grant_dir("g1").join("seq"), "00000A").unwrap();
        fs::create_dir_all(dir.grant_dir("g1").join("00/00/03")).unwrap();
        assert_eq!(
            sessions(&dir, "g1").unwrap(),
            ["000001", "000002", "00000A"]
        );
        let later = SystemTime::now() + std::time::Duration::from_secs(60);
        assert_eq!(
            sweep(&dir, later, |id| id == "g1").unwrap(),
            0,
            "a known grant's stay"
        );
        let earlier = SystemTime::now() - std::time::Duration::from_secs(3600);
        assert_eq!(
            sweep(&dir, earlier, |_| false).unwrap(),
            0,
            "recent ones stay"
        );
        assert_eq!(sweep(&dir, later, |_| false).unwrap(), 1);
        assert!(!remove(&dir, "g1").unwrap());
        assert!(sessions(&dir, "g1").unwrap().is_empty());
    }
}
