//! The effects shell: everything that touches the socket, disk, sudoers, processes and logs.

pub mod audit_log;
mod cgroup;
pub mod clock;
pub mod enforcement;
pub mod enforcer;
pub mod event_log;
pub mod failpoint;
pub mod host_enforcement;
pub mod identity;
pub mod journald;
pub mod notifier;
pub mod notify;
pub mod notify_payload;
pub mod notify_queue;
pub mod pam_log_import;
mod pidfd;
mod process_scan;
pub mod server;
pub mod service;
pub mod sessions;
pub mod standing;
pub mod store;
pub mod submission;
pub mod sudo_command;
pub mod sudoers;
pub mod sudoers_rule;
pub mod syslog_sink;
mod terminal;
pub mod terminal_notice;
#[cfg(test)]
mod testing;
pub mod view;
