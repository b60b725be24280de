//! The command line: clap's definitions, `jitd serve` (which wires the shell together), the
//! approvers' commands over the socket, and the commands that read files directly (audit,
//! report, explain, check-config) with their output.
//!
//! Commands that change state go through the daemon's socket; the CLI never writes the state
//! directory itself.

pub mod args;
pub mod audit_args;
pub mod audit_cmd;
pub mod check_config;
pub mod commands;
pub mod explain_cmd;
pub mod fleet_sign;
/// Signatures made and checked by the real ssh-keygen and ssh-agent, both ways.
#[cfg(test)]
mod fleet_sign_real_tests;
pub mod output;
pub mod replay_cmd;
pub mod report_html;
pub mod serve;
pub mod usage;
