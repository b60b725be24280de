//! What a user has scheduled to run outside their sessions — a crontab, at jobs, lingering —
//! read from the spools, and their systemd user manager, stopped on request. The paths are
//! injected ([`Spools`], [`UserManager`]) so tests use scratch directories; [`Spools::debian`]
//! and [`UserManager::system`] are this host's. See docs/enforcement.md for what is covered.

use crate::core::left_behind::UserJobs;
use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Where the scheduling of users is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spools {
    /// One crontab per user, named after them (`crontab -e` writes it).
    pub crontabs: PathBuf,
    /// One file per at job, owned by the user who queued it.
    pub atjobs: PathBuf,
    /// One empty file per lingering user (`loginctl enable-linger`).
    pub linger: PathBuf,
    /// `atq`, asked when `atjobs` does not exist (an at spool elsewhere).
    pub atq: Option<PathBuf>,
}

/// How long `atq` may take: it runs while an SSH session opens, which pam_jit waits for
/// (1.5 s by default). Slower, the at jobs of that moment count as unknown.
const ATQ_TIMEOUT: Duration = Duration::from_millis(500);
/// How long `systemctl stop` may take (the manager's services get their stop timeouts).
const SYSTEMCTL_TIMEOUT: Duration = Duration::from_secs(30);

impl Spools {
    /// Debian's and Ubuntu's paths (cron, at, systemd-logind).
    pub fn debian() -> Spools {
        Spools {
            crontabs: "/var/spool/cron/crontabs".into(),
            atjobs: "/var/spool/cron/atjobs".into(),
            linger: "/var/lib/systemd/linger".into(),
            atq: Some("/usr/bin/atq".into()),
        }
    }

    /// `dir/user`, if `user` is a plain file name.
    fn entry(dir: &Path, user: &str) -> Option<PathBuf> {
        let plain = !user.is_empty() && user != "." && user != ".." && !user.contains('/');
        plain.then(|| dir.join(user))
    }

    pub fn crontab_of(&self, user: &str) -> Option<PathBuf> {
        Self::entry(&self.crontabs, user)
    }

    pub fn linger_of(&self, user: &str) -> Option<PathBuf> {
        Self::entry(&self.linger, user)
    }

    /// What `user` (uid `uid`) has scheduled now. Everything missing counts as nothing
    /// scheduled; at jobs that cannot be listed are `None`.
    pub fn read(&self, user: &str, uid: u32) -> UserJobs {
        let crontab = self
            .crontab_of(user)
            .and_then(|p| fs::symlink_metadata(p).ok())
            .filter(|m| m.is_file())
            .map(|m| {
                m.mtime()
                    .saturating_mul(1_000_000_000)
                    .saturating_add(m.mtime_nsec())
            });
        let linger = self
            .linger_of(user)
            .is_some_and(|p| fs::symlink_metadata(p).is_ok());
        UserJobs {
            crontab,
            at_jobs: self.at_jobs(user, uid),
            linger,
        }
    }

    fn at_jobs(&self, user: &str, uid: u32) -> Option<Vec<String>> {
        match fs::read_dir(&self.atjobs) {
            Ok(entries) => {
                let mut names = Vec::new();
                for entry in entries {
                    let entry = entry.ok()?;
                    let name = entry.file_name().to_string_lossy().into_owned();
                    // `.SEQ` and atd's lock files are not jobs.
                    if name.starts_with('.') {
                        continue;
                    }
                    let meta = entry.metadata().ok()?;
                    if meta.is_file() && meta.uid() == uid {
                        names.push(name);
                    }
                }
                names.sort_unstable();
                Some(names)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => match &self.atq {
                Some(atq) if atq.exists() => {
                    let out = run_bounded(Command::new(atq), ATQ_TIMEOUT)?;
                    out.status
                        .success()
                        .then(|| atq_jobs_of(&String::from_utf8_lossy(&out.stdout), user))
                }
                // No at on this host: nothing can be queued.
                _ => Some(Vec::new()),
            },
            Err(_) => None,
        }
    }
}

/// The job numbers `atq` (run as root, so listing every user's jobs) shows for `user`:
/// lines `ID<TAB>DATE QUEUE USER`.
pub fn atq_jobs_of(listing: &str, user: &str) -> Vec<String> {
    let mut jobs: Vec<String> = listing
        .lines()
        .filter(|l| l.split_whitespace().last() == Some(user))
        .filter_map(|l| l.split_whitespace().next())
        .map(|id| format!("job {id}"))
        .collect();
    jobs.sort_unstable();
    jobs
}

/// Runs `cmd` (stdin closed, output captured) and waits up to `timeout`; after that the
/// command is killed and `None` returned.
fn run_bounded(mut cmd: Command, timeout: Duration) -> Option<Output> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // ETXTBSY: a program written a moment ago may still be open for writing in a process
    // another thread forked meanwhile (until that process execs); it passes in milliseconds.
    let mut tries = 0;
    let child = loop {
        match cmd.spawn() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 50 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            spawned => break spawned.ok()?,
        }
    };
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("user-jobs-command".into())
        .spawn(move || {
            let _ = tx.send(child.wait_with_output());
        })
        .ok()?;
    match rx.recv_timeout(timeout) {
        Ok(out) => out.ok(),
        Err(_) => {
            // Still our unreaped child (the thread waits on it), so the pid is still its own.
            // SAFETY: kill(2) on that pid.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            None
        }
    }
}

/// Stops users' systemd user managers (`user@UID.service`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserManager {
    /// Exists when systemd is the init system (`/run/systemd/system`, as sd_booted checks).
    pub systemd_marker: PathBuf,
    pub systemctl: PathBuf,
}

/// What [`UserManager::stop`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManagerStop {
    Stopped {
        unit: String,
    },
    /// systemd is not the init system: there is no user manager to stop.
    NoSystemd {
        marker: PathBuf,
    },
    Failed {
        unit: String,
        why: String,
    },
}

impl ManagerStop {
    /// For the `USER_MANAGER` field of the end's event.
    pub fn field(&self) -> &'static str {
        match self {
            ManagerStop::Stopped { .. } => "stopped",
            ManagerStop::NoSystemd { .. } => "no-systemd",
            ManagerStop::Failed { .. } => "failed",
        }
    }
}

impl fmt::Display for ManagerStop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ManagerStop::Stopped { unit } => write!(
                f,
                "stopped {unit}, the holder's systemd user manager, with every service it ran"
            ),
            ManagerStop::NoSystemd { marker } => write!(
                f,
                "did not stop the holder's systemd user manager: systemd is not the init \
                 system here ({} does not exist)",
                marker.display()
            ),
            ManagerStop::Failed { unit, why } => write!(f, "could not stop {unit}: {why}"),
        }
    }
}

impl UserManager {
    pub fn system() -> UserManager {
        UserManager {
            systemd_marker: "/run/systemd/system".into(),
            systemctl: "systemctl".into(),
        }
    }

    /// `systemctl stop user@UID.service` where systemd is the init system; nothing (and says
    /// so) elsewhere. Waits for the stop job, up to [`SYSTEMCTL_TIMEOUT`].
    pub fn stop(&self, uid: u32) -> ManagerStop {
        if !self.systemd_marker.exists() {
            return ManagerStop::NoSystemd {
                marker: self.systemd_marker.clone(),
            };
        }
        let unit = format!("user@{uid}.service");
        let mut cmd = Command::new(&self.systemctl);
        cmd.args(["stop", &unit]);
        match run_bounded(cmd, SYSTEMCTL_TIMEOUT) {
            Some(out) if out.status.success() => ManagerStop::Stopped { unit },
            Some(out) => ManagerStop::Failed {
                unit,
                why: format!(
                    "systemctl {}: {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            },
            None => ManagerStop::Failed {
                unit,
                why: format!(
                    "systemctl could not be run or took longer than {} s",
                    SYSTEMCTL_TIMEOUT.as_secs()
                ),
            },
        }
    }
}

#[cfg(test)]
mod tests;
