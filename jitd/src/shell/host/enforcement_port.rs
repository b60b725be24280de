//! The port through which the daemon makes grants real on the host (sudoers drop-ins, session
//! ending). The lifecycle decides; an `Enforcement` carries it out.

use crate::core::left_behind::UserJobs;
use crate::core::model::{Request, Session};

/// What the daemon knows beyond the grant when it withdraws it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Withdrawal {
    /// Stop the holder's systemd user manager too: this SSH grant was their last way in
    /// ([`crate::core::user_manager::stops_user_manager`]).
    pub stop_user_manager: bool,
}

pub trait Enforcement: Send + Sync {
    /// Makes an active grant effective. An error fails the grant with that message. A sudo
    /// grant whose program someone other than root can change is never installed.
    fn install(&self, grant: &Request) -> Result<(), String>;
    /// Whether only root can change what the absolute path `program` runs (the condition a
    /// sudo grant is installed and kept under); the error says which component is at fault.
    fn check_program(&self, program: &str) -> Result<(), String>;
    /// Takes away everything an ended grant gave: its drop-in, cached sudo credentials, and
    /// the processes of its sessions; for an SSH grant, its holder's systemd user manager when
    /// `how` says so, and it reports what the holder scheduled during the grant (crontab, at
    /// jobs, lingering). Must not block the caller for the kill grace period.
    fn withdraw(&self, grant: &Request, how: Withdrawal);
    /// Puts a session about to be registered where [`Enforcement::withdraw`] will find it,
    /// and records in `session.process` what identifies its processes, so that a restarted
    /// jitd ends them and no others. The error says why only the fallbacks will find them.
    fn adopt_session(&self, grant: &Request, session: &mut Session) -> Result<(), String>;
    /// What the holder of `grant` has scheduled to run without a session now (crontab, at
    /// jobs, lingering), for the record of an SSH grant whose first session opens.
    fn user_jobs(&self, grant: &Request) -> UserJobs;
    /// Writes a line to the terminals of the grant's sessions.
    fn warn(&self, grant: &Request, message: &str);
    /// Ids of the grants the host holds something for now (a drop-in, a cgroup); an error
    /// when it cannot tell.
    fn present(&self) -> std::io::Result<Vec<String>>;
    /// Makes the host match the records: drop-ins only for `active`, nothing left of `ended`.
    /// `active` holds every active sudo grant and every active grant among [`present`]'s ids
    /// taken before the call (every active grant when it failed); `ended`, the ended ones
    /// among those ids. Returns one line per correction made, for the log.
    ///
    /// [`present`]: Enforcement::present
    fn reconcile(&self, active: &[&Request], ended: &[&Request]) -> Vec<String>;
    /// For a session of an SSH grant recorded with tlog: the recorder's settings, which the
    /// session must be given. `None` when the grant is not recorded here; an error when it
    /// should be but cannot be (the session must then not run).
    fn session_recording(&self, _grant: &Request) -> Result<Option<String>, String> {
        Ok(None)
    }
}
