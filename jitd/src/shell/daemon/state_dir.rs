//! jitd's state directory holds what it enforces (requests) and its evidence (the audit log),
//! so it must be jitd's alone: whoever can write a file there can grant themselves root or
//! rewrite the trail. Checked once at startup, before anything in it is read; the files are
//! checked again as they are opened (O_NOFOLLOW, then the owner and mode of what was opened).

use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use crate::shell::atomic_file::{symlink_refused, untrusted, untrusted_owner_or_mode};

/// Creates the state directory (0700) if it does not exist, then refuses it unless it and
/// every entry in it are owned by jitd's user and writable by nobody else. No entry may be a
/// symbolic link. The directory itself may be reached through a link (an administrator may
/// put it anywhere), but what it points to must pass the same check.
pub fn prepare(state_dir: &Path) -> io::Result<()> {
    if !state_dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(state_dir)?;
    }
    let meta = fs::metadata(state_dir)?;
    if !meta.is_dir() {
        return Err(untrusted(state_dir, "is not a directory"));
    }
    if let Some(problem) = untrusted_owner_or_mode(&meta) {
        return Err(untrusted(state_dir, &problem));
    }
    for entry in fs::read_dir(state_dir)? {
        let entry = entry?;
        let path = entry.path();
        // Not followed: the entry itself.
        let meta = entry.metadata()?;
        if meta.file_type().is_symlink() {
            return Err(symlink_refused(&path));
        }
        if let Some(problem) = untrusted_owner_or_mode(&meta) {
            return Err(untrusted(&path, &problem));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn scratch(tag: &str) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!("jitd-statedir-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o700)).unwrap();
        p
    }

    #[test]
    fn a_group_writable_state_dir_or_a_planted_link_is_refused_with_the_fix() {
        let dir = scratch("mode");
        prepare(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o770)).unwrap();
        let err = prepare(&dir).unwrap_err().to_string();
        assert!(err.contains(&dir.display().to_string()), "{err}");
        assert!(err.contains("writable by its group"), "{err}");
        assert!(err.contains("chmod go-w"), "{err}");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();

        symlink("/etc/shadow", dir.join("audit.log")).unwrap();
        let err = prepare(&dir).unwrap_err().to_string();
        assert!(err.contains("audit.log is a symbolic link"), "{err}");
        fs::remove_file(dir.join("audit.log")).unwrap();

        fs::create_dir(dir.join("requests")).unwrap();
        fs::set_permissions(dir.join("requests"), fs::Permissions::from_mode(0o777)).unwrap();
        let err = prepare(&dir).unwrap_err().to_string();
        assert!(err.contains("requests is writable by others"), "{err}");
        let _ = fs::remove_dir_all(&dir);
    }
}
