//! SSH grants recorded with tlog: while an SSH grant of a recording role is active, its
//! holder's login shell is `tlog-rec-session`, which writes the session to the grant's
//! recording file, `<recordings_dir>-ssh/<grant id>.tlog`.
//!
//! Debian's `tlog-rec-session` is not setuid: it runs as the holder, so the file must be one
//! they can append to but never read. It is root's, mode 0600, with one POSIX ACL entry that
//! lets the holder's uid write (tlog opens it O_WRONLY|O_APPEND); its directory is root's,
//! mode 0711, so nobody can list it. (The holder can still append junk or end their own
//! recorder: recording on Debian deters and documents, it does not withstand the holder.)
//!
//! The switch of the login shell is written down first (`<state_dir>/login-shells/<user>`:
//! the shell to put back and the grants that need the switch), so a jitd that dies anywhere
//! puts the shell back at startup; a shell someone changed meanwhile is left as it is.

use crate::config::root_only;
use crate::core::recording::{Record, RecordingsDir};
use crate::core::tlog::{self, Recording, Restore, SwitchedShell, TLOG_PLAY, TLOG_REC_SESSION};
use crate::shell::atomic_file;
use std::collections::BTreeSet;
use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::SystemTime;

/// Most of a recording file read back: a grant of hours does not print more.
const MAX_READ: u64 = 64 * 1024 * 1024;
/// Most sessions listed for one grant.
pub const MAX_SESSIONS: usize = 10_000;

pub struct SshRecorder {
    /// `<recordings_dir>-ssh`: root's, 0711.
    spool: PathBuf,
    /// `<state_dir>/login-shells`: root's, 0700.
    shells: PathBuf,
    tlog: PathBuf,
    usermod: PathBuf,
}

impl SshRecorder {
    pub fn new(recordings: &RecordingsDir, state_dir: &Path) -> SshRecorder {
        SshRecorder {
            spool: spool_dir(recordings),
            shells: state_dir.join("login-shells"),
            tlog: PathBuf::from(TLOG_REC_SESSION),
            usermod: PathBuf::from("/usr/sbin/usermod"),
        }
    }

    /// Whether tlog is installed: without it SSH grants are not recorded (check-config says so).
    pub fn available(&self) -> bool {
        self.tlog.is_file()
    }

    /// Whether SSH grants of recording roles can be installed here: with tlog installed, jitd
    /// must be able to change login shells (usermod rewrites /etc/passwd, which the packaged
    /// unit mounts read-only unless a drop-in allows it). The error says what to do.
    pub fn preflight(&self) -> Result<(), String> {
        if !self.available() {
            return Ok(());
        }
        match nix::unistd::access("/etc", nix::unistd::AccessFlags::W_OK) {
            Ok(()) => Ok(()),
            Err(e) => Err(format!(
                "tlog is installed, but jitd cannot change login shells (/etc: {e}): SSH grants \
                 of recording roles will fail until it can (under jitd.service, a drop-in with \
                 ReadWritePaths=/etc; see docs/recording.md) or those roles say record = \"off\""
            )),
        }
    }

    /// Makes grant `id` of `user` recorded: its recording file, then the switch written down,
    /// then the login shell. Any failure undoes what was done and fails the grant.
    pub fn install(&self, id: &str, user: &str, uid: u32) -> Result<(), String> {
        self.create_file(id, uid)
            .map_err(|e| format!("cannot prepare the SSH recording of grant {id}: {e}"))?;
        let switched = self.switch(id, user);
        if switched.is_err() {
            let _ = fs::remove_file(self.file(id));
        }
        switched
    }

    fn switch(&self, id: &str, user: &str) -> Result<(), String> {
        let current = login_shell(user)?;
        let mut saved = match self.load(user)? {
            Some(s) => s,
            None => {
                tlog::check_original_shell(&current)?;
                SwitchedShell {
                    original: current.clone(),
                    grants: BTreeSet::new(),
                }
            }
        };
        saved.grants.insert(id.to_owned());
        self.store(user, &saved)?;
        if current != TLOG_REC_SESSION {
            if let Err(e) = self.usermod(user, TLOG_REC_SESSION) {
                saved.grants.remove(id);
                let _ = if saved.grants.is_empty() {
                    fs::remove_file(self.shells.join(user)).map_err(|e| e.to_string())
                } else {
                    self.store(user, &saved)
                };
                return Err(format!(
                    "{e} (jitd must be able to rewrite /etc/passwd to record SSH grants: see \
                     docs/recording.md, or set record = \"off\" on the role)"
                ));
            }
        }
        Ok(())
    }

    /// The settings pam_jit hands a session of grant `id`: none when the grant is not
    /// recorded here; an error when it should be but the login shell is not tlog's (the
    /// session must not run unrecorded).
    pub fn session_conf(
        &self,
        id: &str,
        user: &str,
        record: Record,
    ) -> Result<Option<String>, String> {
        let Some(saved) = self.load(user)? else {
            return Ok(None);
        };
        if !saved.grants.contains(id) {
            return Ok(None);
        }
        let current = login_shell(user)?;
        if current != TLOG_REC_SESSION {
            return Err(format!(
                "grant {id} is recorded but {user}'s login shell is {current}, not {TLOG_REC_SESSION}"
            ));
        }
        let path = self.file(id);
        Ok(tlog::conf_text(
            record,
            &saved.original,
            &path.to_string_lossy(),
        ))
    }

    /// Grant `id` no longer needs `user`'s shell switched; the last one puts it back. Returns
    /// what to log.
    pub fn release(&self, id: &str, user: &str) -> Result<Option<String>, String> {
        let Some(mut saved) = self.load(user)? else {
            return Ok(None);
        };
        if !saved.grants.remove(id) {
            return Ok(None);
        }
        if !saved.grants.is_empty() {
            self.store(user, &saved)?;
            return Ok(None);
        }
        let line = match tlog::restore(&saved, &login_shell(user)?) {
            Restore::Put(shell) => {
                self.usermod(user, &shell)?;
                format!("put {user}'s login shell back to {shell} (grant {id} ended)")
            }
            Restore::ChangedMeanwhile(now) => format!(
                "left {user}'s login shell at {now}: it was changed while grant {id} was recorded"
            ),
        };
        fs::remove_file(self.shells.join(user)).map_err(|e| e.to_string())?;
        Ok(Some(line))
    }

    /// Ids of the grants for which a login shell is switched now.
    pub fn grants(&self) -> io::Result<Vec<(String, String)>> {
        let mut found = Vec::new();
        for user in self.users()? {
            if let Ok(Some(saved)) = self.load(&user) {
                found.extend(saved.grants.into_iter().map(|g| (g, user.clone())));
            }
        }
        Ok(found)
    }

    /// Releases every switched grant `keep` does not name. Returns what to log.
    pub fn reconcile(&self, keep: impl Fn(&str) -> bool) -> Vec<String> {
        let mut lines = Vec::new();
        match self.grants() {
            Ok(grants) => {
                for (id, user) in grants.iter().filter(|(id, _)| !keep(id)) {
                    match self.release(id, user) {
                        Ok(line) => lines.extend(line),
                        Err(e) => lines.push(format!(
                            "cannot put {user}'s login shell back after grant {id}: {e}"
                        )),
                    }
                }
            }
            Err(e) => lines.push(format!("cannot list switched login shells: {e}")),
        }
        lines
    }

    fn users(&self) -> io::Result<Vec<String>> {
        let entries = match fs::read_dir(&self.shells) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut users = Vec::new();
        for entry in entries {
            if let Some(name) = entry?.file_name().to_str() {
                if !name.starts_with('.') {
                    users.push(name.to_owned());
                }
            }
        }
        Ok(users)
    }

    fn load(&self, user: &str) -> Result<Option<SwitchedShell>, String> {
        if check_user_name(user).is_err() {
            // Never stored (see `store`): nothing switched.
            return Ok(None);
        }
        let path = self.shells.join(user);
        match atomic_file::read_trusted(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| format!("{} is unreadable: {e}", path.display())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    fn store(&self, user: &str, saved: &SwitchedShell) -> Result<(), String> {
        check_user_name(user)?;
        match DirBuilder::new().mode(0o700).create(&self.shells) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                return Err(format!("{}: {e}", self.shells.display()))
            }
            _ => {}
        }
        atomic_file::check_trusted_dir(&self.shells).map_err(|e| e.to_string())?;
        let bytes = serde_json::to_vec(saved).map_err(|e| e.to_string())?;
        atomic_file::write_atomic(&self.shells.join(user), &bytes, 0o600)
            .map_err(|e| format!("cannot write down {user}'s login shell: {e}"))
    }

    fn usermod(&self, user: &str, shell: &str) -> Result<(), String> {
        let out = Command::new(&self.usermod)
            .args(["-s", shell, "--", user])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", self.usermod.display()))?;
        if !out.status.success() {
            return Err(format!(
                "usermod -s {shell} {user} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(())
    }

    /// The recording file of grant `id` (`[a-z0-9]+`, checked by the caller).
    pub fn file(&self, id: &str) -> PathBuf {
        self.spool.join(format!("{id}.tlog"))
    }

    fn create_file(&self, id: &str, uid: u32) -> io::Result<()> {
        prepare_spool(&self.spool)?;
        let path = self.file(id);
        let file = match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
        {
            Ok(f) => f,
            // Reinstalled (a restart): the file is root's and the ACL is set again below.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&path)?,
            Err(e) => return Err(e),
        };
        let meta = file.metadata()?;
        if !meta.is_file() || meta.uid() != nix::unistd::geteuid().as_raw() {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("{} is not jitd's own file", path.display()),
            ));
        }
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
        let acl = write_only_acl(uid);
        // SAFETY: the descriptor is open for the duration of the call; name and value point
        // to live buffers of the lengths given.
        let rc = unsafe {
            libc::fsetxattr(
                file.as_raw_fd(),
                c"system.posix_acl_access".as_ptr(),
                acl.as_ptr().cast(),
                acl.len(),
                0,
            )
        };
        if rc != 0 {
            let e = io::Error::last_os_error();
            let _ = fs::remove_file(&path);
            return Err(io::Error::new(
                e.kind(),
                format!(
                    "cannot let uid {uid} write {} (POSIX ACLs on its file system?): {e}",
                    path.display()
                ),
            ));
        }
        Ok(())
    }

    /// The sessions recorded for grant `id`, in the order they started.
    pub fn sessions(&self, id: &str) -> io::Result<Vec<Recording>> {
        let file = match OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(self.file(id))
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut bytes = Vec::new();
        file.take(MAX_READ).read_to_end(&mut bytes)?;
        Ok(tlog::recordings(
            &String::from_utf8_lossy(&bytes),
            MAX_SESSIONS,
        ))
    }

    /// The command that plays recording `rec` of grant `id` with its timing, on the caller's
    /// terminal.
    pub fn player(&self, id: &str, rec: &str) -> Command {
        let mut cmd = Command::new(TLOG_PLAY);
        cmd.args(["-r", "file", "-i"])
            .arg(self.file(id))
            .args(["-m", rec]);
        cmd
    }

    /// Removes the recordings of every grant that `known` no longer names and that nothing
    /// was written to since `cutoff`; returns how many went.
    pub fn sweep(&self, cutoff: SystemTime, known: impl Fn(&str) -> bool) -> io::Result<usize> {
        let entries = match fs::read_dir(&self.spool) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        let mut removed = 0;
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".tlog")) else {
                continue;
            };
            let grant_id = !id.is_empty()
                && id
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
            if !grant_id || known(id) {
                continue;
            }
            if entry.metadata()?.modified()? < cutoff {
                fs::remove_file(entry.path())?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// Where SSH recordings go: beside `recordings_dir` (which is 0700, so a holder could not
/// reach a file inside it).
pub fn spool_dir(recordings: &RecordingsDir) -> PathBuf {
    PathBuf::from(format!("{}-ssh", recordings.as_str()))
}

/// The spool is root's, mode 0711 (reachable, not listable), below directories only root
/// can change. One that others could list or change is refused, not repaired.
fn prepare_spool(dir: &Path) -> io::Result<()> {
    if let Some(parent) = dir.parent() {
        create_reachable(parent)?;
        let mode = fs::metadata(parent)?.permissions().mode();
        if mode & 0o001 == 0 {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{} has mode {:04o}: SSH grant holders must pass through it to append \
                     to their recording (chmod o+x, as /var/log is)",
                    parent.display(),
                    mode & 0o7777
                ),
            ));
        }
    }
    match DirBuilder::new().mode(0o711).create(dir) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
        _ => {}
    }
    let meta = fs::symlink_metadata(dir)?;
    let mode = meta.permissions().mode() & 0o7777;
    if !meta.is_dir() || meta.uid() != nix::unistd::geteuid().as_raw() || mode & 0o066 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} must be a directory of root's, mode 0711 (it is {mode:04o}, uid {})",
                dir.display(),
                meta.uid()
            ),
        ));
    }
    root_only::check_above(dir)
        .map_err(|e| io::Error::new(io::ErrorKind::PermissionDenied, e.to_string()))?;
    // Made under jitd's umask (0077): holders must be able to pass through to their file.
    if mode != 0o711 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o711))?;
    }
    Ok(())
}

/// Makes `dir` and its missing parents, each 0755 whatever the umask (as /var/log is).
pub fn create_reachable(dir: &Path) -> io::Result<()> {
    if dir.exists() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_reachable(parent)?;
    }
    match DirBuilder::new().mode(0o755).create(dir) {
        Ok(()) => fs::set_permissions(dir, fs::Permissions::from_mode(0o755)),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// A POSIX access ACL (the kernel's xattr form) of a root-owned 0600 file plus write for
/// `uid`: user::rw-, user:uid:-w-, group::---, mask::-w-, other::---.
fn write_only_acl(uid: u32) -> Vec<u8> {
    const UNDEFINED: u32 = u32::MAX;
    let entries: [(u16, u16, u32); 5] = [
        (0x01, 6, UNDEFINED), // ACL_USER_OBJ
        (0x02, 2, uid),       // ACL_USER
        (0x04, 0, UNDEFINED), // ACL_GROUP_OBJ
        (0x10, 2, UNDEFINED), // ACL_MASK
        (0x20, 0, UNDEFINED), // ACL_OTHER
    ];
    let mut acl = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in entries {
        acl.extend_from_slice(&tag.to_le_bytes());
        acl.extend_from_slice(&perm.to_le_bytes());
        acl.extend_from_slice(&id.to_le_bytes());
    }
    acl
}

fn login_shell(user: &str) -> Result<String, String> {
    let found = nix::unistd::User::from_name(user)
        .map_err(|e| format!("cannot look up user {user}: {e}"))?
        .ok_or_else(|| format!("no user {user}"))?;
    found
        .shell
        .to_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("{user}'s login shell is not UTF-8"))
}

/// A user name usable as a file name and as usermod's argument.
fn check_user_name(user: &str) -> Result<(), String> {
    let plain = |b: u8| b.is_ascii_alphanumeric() || b"._-".contains(&b);
    if user.is_empty()
        || user.len() > 64
        || user.starts_with(['.', '-'])
        || !user.bytes().all(plain)
    {
        return Err(format!(
            "{user:?} is not a user name jit records SSH sessions of"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_acl_lets_one_uid_write_and_nobody_else_read() {
        let acl = write_only_acl(1234);
        assert_eq!(acl.len(), 4 + 5 * 8);
        assert_eq!(&acl[..4], &[2, 0, 0, 0]);
        // The named entry: tag ACL_USER, perm write only, the uid.
        assert_eq!(&acl[12..20], &[2, 0, 2, 0, 0xd2, 0x04, 0, 0]);
        // other::---
        assert_eq!(&acl[36..40], &[0x20, 0, 0, 0]);
    }

    #[test]
    fn the_recording_file_is_root_s_in_an_unlistable_spool_below_a_reachable_parent() {
        use crate::shell::testing::TempDir;
        let t = TempDir::new("tlogspool");
        let closed = t.path().join("closed");
        fs::create_dir(&closed).unwrap();
        fs::set_permissions(&closed, fs::Permissions::from_mode(0o700)).unwrap();
        let recordings = RecordingsDir::parse(&closed.join("sessions")).unwrap();
        let recorder = SshRecorder::new(&recordings, t.path());
        let e = recorder.create_file("g1", 4321).unwrap_err();
        assert!(e.to_string().contains("chmod o+x"), "{e}");

        fs::set_permissions(&closed, fs::Permissions::from_mode(0o755)).unwrap();
        recorder.create_file("g1", 4321).unwrap();
        let spool = fs::metadata(spool_dir(&recordings)).unwrap();
        assert_eq!(spool.permissions().mode() & 0o7777, 0o711);
        let file = fs::metadata(recorder.file("g1")).unwrap();
        // Group bits show the ACL's mask: write, for the one named uid.
        assert_eq!(file.permissions().mode() & 0o7777, 0o620);
        assert_eq!(file.uid(), nix::unistd::geteuid().as_raw());
        assert!(recorder.sessions("g1").unwrap().is_empty());

        // A spool others could list is refused, not repaired.
        fs::set_permissions(spool_dir(&recordings), fs::Permissions::from_mode(0o755)).unwrap();
        let e = recorder.create_file("g2", 4321).unwrap_err();
        assert!(e.to_string().contains("mode 0711"), "{e}");
    }

    #[test]
    fn user_names_that_could_be_paths_or_options_are_refused() {
        assert!(check_user_name("alice").is_ok());
        for bad in ["", "../x", "-s", ".hidden", "a/b", "a b"] {
            assert!(check_user_name(bad).is_err(), "{bad:?}");
        }
    }
}
