//! The trail: the hash-chained audit log (written and rotated in audit_log.rs, its files named
//! and listed in audit_files.rs, checked in audit_verify.rs), the fan-out of events to every
//! sink (journald, syslog, stderr), and the import of pam_jit's own passes from the journal.
//!
//! Sinks record what they are given; none of them decides anything or changes the host.

pub mod audit_files;
pub mod audit_log;
pub mod audit_verify;
pub mod event_log;
pub mod journald;
pub mod last_change;
pub mod pam_log_import;
pub mod syslog_sink;
