//! The configuration: jitd.toml and its drop-ins, the roles and rules they hold (turned into
//! `core::policy`), and the notifier tables; for a root jitd, the check that what it reads is
//! root's alone (`root_only`), and the root-only files that hold secrets (`secret_file`).
//!
//! Reading and validating only: nothing here starts threads, opens sockets or changes the host.

pub mod config_file;
pub use config_file::DEFAULT_RECORDINGS_DIR;
pub mod error;
pub mod fleet_table;
pub mod notifier_tables;
pub mod policy_file;
pub mod root_only;
pub mod secret_file;

#[cfg(test)]
mod documented_keys;
