//! The sudoers drop-in directory: one validated file per sudo grant.
//!
//! jitd only ever touches files it owns: `jit_<id>` (id `[a-z0-9]+`) and its temp files
//! `.jit_<id>.tmp`. The temp name contains a dot, so `#includedir` never reads a half-written
//! file; the final name has no dot or `~`, so it is read. Installing is write temp → chown/chmod
//! → fsync → `visudo -cf temp` → rename → fsync dir → `visudo -c` on the whole configuration;
//! any failure removes what was created. A crash between any two steps leaves either a temp file
//! (removed by [`SudoersDir::remove_temp_files`]) or a complete, checked drop-in (kept or removed
//! by reconciliation, and bounded by its `NOTAFTER` even if jitd never comes back).

use super::program_trust::{self, Untrusted};
use super::recordings;
use super::sudoers_rule::{self, ExactCommand, GrantFileId, IoLog, RuleError};
use crate::config::DEFAULT_RECORDINGS_DIR;
use crate::core::recording::{Record, RecordingsDir};
use crate::shell::failpoint;
use chrono::{DateTime, Utc};
use std::ffi::OsStr;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

const FILE_PREFIX: &str = "jit_";
const TEMP_PREFIX: &str = ".jit_";
const TEMP_SUFFIX: &str = ".tmp";
/// visudo's messages are carried into request states and logs: keep them bounded.
const MAX_MESSAGE: usize = 2048;

/// Which sudo implementation reads the drop-ins; decides whether `NOTAFTER` may be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SudoFlavour {
    /// Todd Miller's sudo; `NOTAFTER` is supported from 1.8.20.
    Original { version: (u32, u32, u32) },
    /// sudo-rs rejects `NOTBEFORE`/`NOTAFTER`/`TIMEOUT`.
    SudoRs,
    /// `sudo -V` did not run or said something unrecognised: no `NOTAFTER` (a line sudo might
    /// reject is worse than a missing backstop that jitd's own expiry covers).
    Unknown(String),
}

impl SudoFlavour {
    /// Reads the first line of `sudo -V`.
    pub fn detect(sudo: &Path) -> SudoFlavour {
        match Command::new(sudo).arg("-V").output() {
            Ok(out) => SudoFlavour::parse(&String::from_utf8_lossy(&out.stdout)),
            Err(e) => SudoFlavour::Unknown(format!("{}: {e}", sudo.display())),
        }
    }

    pub fn parse(version_output: &str) -> SudoFlavour {
        let first = version_output.lines().next().unwrap_or("").trim();
        if first.starts_with("sudo-rs") {
            return SudoFlavour::SudoRs;
        }
        let parsed = first.strip_prefix("Sudo version ").and_then(|v| {
            // "1.9.13p3" → (1, 9, 13): the patch level after `p` does not matter here.
            let mut nums = v
                .split(|c: char| !c.is_ascii_digit())
                .map(|n| n.parse::<u32>().ok());
            Some((
                nums.next()??,
                nums.next()??,
                nums.next().flatten().unwrap_or(0),
            ))
        });
        match parsed {
            Some(version) => SudoFlavour::Original { version },
            None => SudoFlavour::Unknown(first.chars().take(80).collect()),
        }
    }

    pub fn supports_notafter(&self) -> bool {
        matches!(self, SudoFlavour::Original { version } if *version >= (1, 8, 20))
    }
}

#[derive(Debug)]
pub enum SudoersError {
    /// The grant cannot be expressed exactly as a sudoers rule.
    Rule(RuleError),
    /// Someone other than root can change what the granted program path runs.
    UntrustedProgram(Untrusted),
    /// The uid that asked no longer has the name it asked under (renamed, or deleted and its
    /// number given to someone else): `now` is its name today, `None` if it has none.
    HolderChanged {
        uid: u32,
        asked_as: String,
        now: Option<String>,
    },
    Io {
        what: String,
        source: io::Error,
    },
    /// `visudo -cf` rejected the drop-in jitd rendered; nothing was installed.
    DropInRejected {
        message: String,
    },
    /// `visudo -c` rejects the whole configuration. The message names the file at fault.
    ConfigInvalid {
        message: String,
    },
    /// A file that sudo reads from the drop-in directory (or the directory itself) has an owner
    /// or mode that makes sudo skip it or lets non-root users change sudo's rules.
    UnsafeFile {
        path: PathBuf,
        problem: String,
    },
    BadUserName(String),
}

impl fmt::Display for SudoersError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SudoersError::Rule(e) => write!(f, "{e}"),
            SudoersError::UntrustedProgram(e) => write!(f, "refused: {e}"),
            SudoersError::HolderChanged {
                uid,
                asked_as,
                now: Some(now),
            } => write!(
                f,
                "the name of uid {uid} changed since the request: it asked as {:?} and is now \
                 {:?}, so it may be someone else; no sudo rule was written",
                asked_as.escape_debug().to_string(),
                now.escape_debug().to_string()
            ),
            SudoersError::HolderChanged {
                uid,
                asked_as,
                now: None,
            } => write!(
                f,
                "uid {uid}, which asked as {:?}, no longer exists on this host; no sudo rule \
                 was written",
                asked_as.escape_debug().to_string()
            ),
            SudoersError::Io { what, source } => write!(f, "{what}: {source}"),
            SudoersError::DropInRejected { message } => write!(
                f,
                "visudo rejected the generated drop-in, nothing was installed: {message}"
            ),
            SudoersError::ConfigInvalid { message } => write!(
                f,
                "the sudoers configuration does not validate (visudo -c): {message}; \
                 fix or remove the file it names, jitd installs no grants until it validates"
            ),
            SudoersError::UnsafeFile { path, problem } => write!(
                f,
                "{}: {problem}; fix it (chown root:root, chmod 0440) or remove it, \
                 jitd installs no grants until then",
                path.display()
            ),
            SudoersError::BadUserName(u) => write!(
                f,
                "user name {:?} cannot name a sudo timestamp file",
                u.escape_debug().to_string()
            ),
        }
    }
}

impl std::error::Error for SudoersError {}

impl From<RuleError> for SudoersError {
    fn from(e: RuleError) -> Self {
        SudoersError::Rule(e)
    }
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> SudoersError {
    let what = what.into();
    move |source| SudoersError::Io { what, source }
}

/// The directory jitd writes grants into, usually /etc/sudoers.d.
#[derive(Debug, Clone)]
pub struct SudoersDir {
    dir: PathBuf,
    visudo: PathBuf,
    /// The top-level file `visudo -c` checks; `None` = visudo's default (/etc/sudoers), which
    /// also makes visudo check its owner and mode.
    main_config: Option<PathBuf>,
    flavour: SudoFlavour,
    timestamp_dir: PathBuf,
    /// Where recorded grants' rules tell sudo to write their I/O logs.
    recordings: RecordingsDir,
}

impl SudoersDir {
    /// Detects the installed sudo once (`sudo -V`).
    pub fn new(dir: PathBuf) -> Self {
        SudoersDir {
            dir,
            visudo: PathBuf::from("/usr/sbin/visudo"),
            main_config: None,
            flavour: SudoFlavour::detect(Path::new("/usr/bin/sudo")),
            timestamp_dir: PathBuf::from("/run/sudo/ts"),
            recordings: RecordingsDir::parse(Path::new(DEFAULT_RECORDINGS_DIR))
                .expect("the default recordings_dir is valid"),
        }
    }

    /// Recorded grants' sessions go under `dir` (config `recordings_dir`).
    pub fn with_recordings(mut self, dir: RecordingsDir) -> Self {
        self.recordings = dir;
        self
    }

    /// Checks this top-level file instead of /etc/sudoers (for a scratch directory that
    /// /etc/sudoers does not include).
    #[cfg(test)]
    pub fn with_main_config(mut self, main: PathBuf) -> Self {
        self.main_config = Some(main);
        self
    }

    /// The sudo found at startup; the daemon warns when it cannot write `NOTAFTER`.
    pub fn flavour(&self) -> &SudoFlavour {
        &self.flavour
    }

    fn final_path(&self, id: &GrantFileId) -> PathBuf {
        self.dir.join(format!("{FILE_PREFIX}{}", id.as_str()))
    }

    fn temp_path(&self, id: &GrantFileId) -> PathBuf {
        self.dir
            .join(format!("{TEMP_PREFIX}{}{TEMP_SUFFIX}", id.as_str()))
    }

    /// Checks that grants may be installed: the whole configuration validates and no file sudo
    /// reads from the directory is unsafe. Never modifies anything.
    pub fn preflight(&self) -> Result<(), SudoersError> {
        self.check_dir_files()?;
        self.check_whole_config()
    }

    fn check_dir_files(&self) -> Result<(), SudoersError> {
        let meta = fs::metadata(&self.dir).map_err(io_err(format!(
            "cannot read the sudoers drop-in directory {}",
            self.dir.display()
        )))?;
        if let Some(problem) = unsafe_owner_or_mode(&meta, true) {
            return Err(SudoersError::UnsafeFile {
                path: self.dir.clone(),
                problem,
            });
        }
        let entries = fs::read_dir(&self.dir)
            .map_err(io_err(format!("cannot list {}", self.dir.display())))?;
        for entry in entries {
            let entry = entry.map_err(io_err(format!("cannot list {}", self.dir.display())))?;
            let name = entry.file_name();
            // Exactly the names #includedir reads: no dot, no trailing ~.
            let name = name.to_string_lossy();
            if name.contains('.') || name.ends_with('~') {
                continue;
            }
            let path = entry.path();
            let meta = fs::metadata(&path).map_err(io_err(format!(
                "cannot inspect {} (a dangling link?)",
                path.display()
            )))?;
            if let Some(problem) = unsafe_owner_or_mode(&meta, false) {
                return Err(SudoersError::UnsafeFile { path, problem });
            }
        }
        Ok(())
    }

    fn check_whole_config(&self) -> Result<(), SudoersError> {
        let mut cmd = Command::new(&self.visudo);
        cmd.arg("-c");
        if let Some(main) = &self.main_config {
            cmd.arg("-f").arg(main);
        }
        run_visudo(cmd).map_err(|message| SudoersError::ConfigInvalid { message })
    }

    /// Installs (or replaces) the drop-in for grant `id`: `uid`, which asked as `user`, may
    /// run exactly `command` (`command[0]` an absolute path) as root without a password until
    /// `expires_at`. Only a program that only root can change is ever written into a rule
    /// ([`program_trust`]).
    pub fn install(
        &self,
        id: &str,
        uid: u32,
        user: &str,
        command: &[String],
        expires_at: DateTime<Utc>,
        record: Record,
    ) -> Result<(), SudoersError> {
        let content = self.render(id, uid, user, command, expires_at, record)?;
        let id = GrantFileId::parse(id)?;
        if let Some(program) = command.first() {
            program_trust::check(program).map_err(SudoersError::UntrustedProgram)?;
        }
        self.preflight()?;
        if !record.is_off() {
            // sudo would make a missing directory itself, but with whatever mode its parent
            // allows to be seen: jitd makes it root's alone first, or installs nothing.
            recordings::prepare(&self.recordings).map_err(|e| SudoersError::Io {
                what: format!(
                    "cannot prepare the recordings directory {}",
                    self.recordings.as_str()
                ),
                source: e,
            })?;
        }
        let temp = self.temp_path(&id);
        let result = self.install_checked(&id, &temp, &content);
        if result.is_err() {
            // Remove only what this call created; the final file is removed by install_checked
            // itself when the whole-configuration check fails after the rename.
            let _ = remove_if_exists(&temp);
        }
        result
    }

    /// The exact drop-in text `install` would write, e.g. to compare with what is installed.
    /// The rule names `uid` (the requester's, from its peer credentials), never a uid looked up
    /// by name; it is refused when that uid's name is no longer `user`.
    pub fn render(
        &self,
        id: &str,
        uid: u32,
        user: &str,
        command: &[String],
        expires_at: DateTime<Utc>,
        record: Record,
    ) -> Result<String, SudoersError> {
        let id = GrantFileId::parse(id)?;
        let command = ExactCommand::parse(command)?;
        let uid = holder_uid(uid, user)?;
        let not_after = self.flavour.supports_notafter().then_some(expires_at);
        let iolog = (!record.is_off()).then_some(IoLog {
            dir: &self.recordings,
            input: record == Record::All,
        });
        Ok(sudoers_rule::render(&id, uid, &command, not_after, iolog))
    }

    fn install_checked(
        &self,
        id: &GrantFileId,
        temp: &Path,
        content: &str,
    ) -> Result<(), SudoersError> {
        remove_if_exists(temp)
            .map_err(io_err(format!("cannot remove stale {}", temp.display())))?;
        let what = format!("cannot write {}", temp.display());
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o440)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(temp)
            .map_err(io_err(what.clone()))?;
        file.write_all(content.as_bytes())
            .map_err(io_err(what.clone()))?;
        std::os::unix::fs::fchown(&file, Some(0), Some(0)).map_err(io_err(what.clone()))?;
        // Explicitly, whatever the umask was.
        file.set_permissions(fs::Permissions::from_mode(0o440))
            .map_err(io_err(what.clone()))?;
        file.sync_all().map_err(io_err(what))?;
        drop(file);
        failpoint::hit("after_temp_write");

        let mut check = Command::new(&self.visudo);
        check.arg("-c").arg("-f").arg(temp);
        run_visudo(check).map_err(|message| SudoersError::DropInRejected { message })?;

        let final_path = self.final_path(id);
        fs::rename(temp, &final_path).map_err(io_err(format!(
            "cannot rename {} to {}",
            temp.display(),
            final_path.display()
        )))?;
        failpoint::hit("after_rename");
        self.sync_dir()?;

        if let Err(e) = self.check_whole_config() {
            let _ = remove_if_exists(&final_path);
            let _ = self.sync_dir();
            return Err(e);
        }
        Ok(())
    }

    /// Removes the drop-in of grant `id`. Returns whether a file was there; removing twice is
    /// not an error.
    pub fn remove(&self, id: &str) -> Result<bool, SudoersError> {
        let id = GrantFileId::parse(id)?;
        failpoint::hit("before_remove");
        let path = self.final_path(&id);
        let removed =
            remove_if_exists(&path).map_err(io_err(format!("cannot remove {}", path.display())))?;
        let temp = self.temp_path(&id);
        remove_if_exists(&temp).map_err(io_err(format!("cannot remove {}", temp.display())))?;
        self.sync_dir()?;
        Ok(removed)
    }

    /// Ids of the jit-owned drop-ins present (`jit_<id>` files), sorted.
    pub fn installed(&self) -> io::Result<Vec<String>> {
        let mut ids = self.owned_names(FILE_PREFIX, "")?;
        ids.sort();
        Ok(ids)
    }

    /// The text of the installed drop-in of `id`, if any.
    pub fn installed_content(&self, id: &str) -> Result<Option<String>, SudoersError> {
        let id = GrantFileId::parse(id)?;
        let path = self.final_path(&id);
        match fs::read_to_string(&path) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(SudoersError::Io {
                what: format!("cannot read {}", path.display()),
                source: e,
            }),
        }
    }

    /// Removes temp files left by an install that crashed; returns the ids they belonged to.
    pub fn remove_temp_files(&self) -> io::Result<Vec<String>> {
        let ids = self.owned_names(TEMP_PREFIX, TEMP_SUFFIX)?;
        for id in &ids {
            remove_if_exists(&self.dir.join(format!("{TEMP_PREFIX}{id}{TEMP_SUFFIX}")))?;
        }
        if !ids.is_empty() {
            File::open(&self.dir)?.sync_all()?;
        }
        Ok(ids)
    }

    /// Ids `x` of the files named `<prefix>x<suffix>` with `x` a valid grant id.
    fn owned_names(&self, prefix: &str, suffix: &str) -> io::Result<Vec<String>> {
        let mut ids = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let name = entry?.file_name();
            let Some(id) = name
                .to_str()
                .and_then(|n| n.strip_prefix(prefix))
                .and_then(|n| n.strip_suffix(suffix))
            else {
                continue;
            };
            if GrantFileId::parse(id).is_ok() {
                ids.push(id.to_owned());
            }
        }
        Ok(ids)
    }

    /// Forgets the cached sudo authentication of `user` (uid `uid`). The rules are evaluated on
    /// every run anyway; this only makes sure nothing cached outlives the grant.
    pub fn clear_timestamps(&self, user: &str, uid: u32) -> Result<(), SudoersError> {
        let plain_file_name = !user.is_empty()
            && user.len() <= 256
            && user != "."
            && user != ".."
            && !user.contains(['/', '\0']);
        if !plain_file_name {
            return Err(SudoersError::BadUserName(user.to_owned()));
        }
        let path = match self.flavour {
            // sudo-rs keys its records by uid.
            SudoFlavour::SudoRs => PathBuf::from("/run/sudo-rs/ts").join(uid.to_string()),
            _ => self.timestamp_dir.join(OsStr::new(user)),
        };
        remove_if_exists(&path).map_err(io_err(format!("cannot remove {}", path.display())))?;
        Ok(())
    }

    fn sync_dir(&self) -> Result<(), SudoersError> {
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(format!("cannot fsync {}", self.dir.display())))
    }
}

/// What is wrong with a file (or the directory) sudo reads, judged as sudo judges it: it must
/// be owned by root and writable by nobody else.
fn unsafe_owner_or_mode(meta: &fs::Metadata, is_dir: bool) -> Option<String> {
    if is_dir != meta.is_dir() {
        return Some(if is_dir {
            "is not a directory".into()
        } else {
            "is not a regular file".into()
        });
    }
    if meta.uid() != 0 {
        return Some(format!(
            "is owned by uid {}, not root (sudo ignores it)",
            meta.uid()
        ));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o002 != 0 {
        return Some(format!("is world-writable (mode {mode:04o})"));
    }
    if mode & 0o020 != 0 && meta.gid() != 0 {
        return Some(format!(
            "is writable by group {} (mode {mode:04o})",
            meta.gid()
        ));
    }
    None
}

/// Runs visudo; on failure returns its message (stderr, else stdout), bounded.
/// `uid` if its name is still `user`, else why not.
fn holder_uid(uid: u32, user: &str) -> Result<u32, SudoersError> {
    let changed = |now| SudoersError::HolderChanged {
        uid,
        asked_as: user.to_owned(),
        now,
    };
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(u)) if u.name == user => Ok(uid),
        Ok(Some(u)) => Err(changed(Some(u.name))),
        Ok(None) => Err(changed(None)),
        Err(e) => Err(SudoersError::Io {
            what: format!("cannot look up uid {uid}"),
            source: io::Error::from(e),
        }),
    }
}

fn run_visudo(mut cmd: Command) -> Result<(), String> {
    match cmd.output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let text = if stderr.trim().is_empty() {
                String::from_utf8_lossy(&out.stdout).into_owned()
            } else {
                stderr.into_owned()
            };
            let text = text.trim().replace('\n', " | ");
            Err(text.chars().take(MAX_MESSAGE).collect())
        }
        Err(e) => Err(format!("cannot run {:?}: {e}", cmd.get_program())),
    }
}

fn remove_if_exists(path: &Path) -> io::Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests;
