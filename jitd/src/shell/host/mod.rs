//! The host's access: everything that makes a grant real on this machine and takes it away —
//! the `Enforcement` port and its host implementation, the check that a granted program is one
//! only root can change, sudoers drop-ins and the rules in them, sudo command matching,
//! sessions, cgroups, pidfds, process scans, the boot clock, terminal warnings, users' cron,
//! at and linger spools and their systemd user manager, and the scan of standing privileges.
//!
//! It does what it is told: it never decides who may have access (that is `core`) and never
//! writes the audit trail (it reports what happened as events).

pub mod boot;
mod cgroup;
pub mod drop_ins_and_cgroups;
pub mod enforcement_port;
pub mod host_enforcement;
mod pidfd;
mod process_scan;
pub mod program_trust;
pub mod recordings;
pub mod sessions;
pub mod ssh_recording;
pub mod standing;
pub mod sudo_command;
pub mod sudoers;
pub mod sudoers_rule;
pub mod terminal;
pub mod user_jobs;
