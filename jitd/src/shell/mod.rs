//! The effects shell: everything that touches the socket, disk, sudoers, processes and logs.

pub mod audit_log;
pub mod journald;
pub mod syslog_sink;
