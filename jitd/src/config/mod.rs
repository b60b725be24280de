//! The configuration: jitd.toml and its drop-ins, the roles and rules they hold (turned into
//! `core::policy`), and the notifier tables.
//!
//! Reading and validating only: nothing here starts threads, opens sockets or changes the host.

pub mod config_file;
pub mod error;
pub mod notifier_tables;
pub mod policy_file;

#[cfg(test)]
mod documented_keys;
