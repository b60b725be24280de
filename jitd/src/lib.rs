//! jitd: the just-in-time access daemon and the approvers' CLI.
//!
//! A library only so that the fuzz targets (`fuzz/`) can reach its parsers: the binary
//! (`main.rs`) calls [`run`], and nothing else is public but, in test and fuzzing builds only,
//! the targets' facade `fuzzing`, and, with the `fleet-sim` feature (only the benchmarks enable
//! it), the fleet benchmark's simulator `fleet_sim`. The modules stay private, so the compiler's
//! dead-code analysis still sees the whole program.

mod cli;
mod config;
mod core;
#[cfg(feature = "fleet-sim")]
pub mod fleet_sim;
#[cfg(any(test, fuzzing))]
pub mod fuzzing;
#[cfg(test)]
mod layers;
mod shell;

use std::process::ExitCode;

use clap::Parser;

use cli::args::{Cli, Command};
use cli::{audit_cmd, check_config, commands, explain_cmd, replay_cmd, serve};
use config::config_file;

/// The whole program: parses the command line and runs the command.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve { .. }) {
        restore_sigpipe();
    }
    match cli.command {
        Command::Serve { config } => {
            let explicit = std::env::args().any(|a| a.starts_with("--config"))
                || std::env::var_os(config_file::CONFIG_ENV).is_some();
            serve::run(&config, explicit)
        }
        Command::CheckConfig { file } => check_config::run(&file),
        Command::Explain(args) => explain_cmd::run(args),
        // As root these read the trail only from a state dir root alone controls (see
        // config::root_only): JITD_CONFIG may come from another user's environment.
        Command::Audit(args) => match load_with_state_dir(&args.config) {
            Ok(c) => audit_cmd::run_audit(&args, &c.state_dir, &c.recordings_dir),
            Err(e) => config_error(e),
        },
        Command::Report(args) => match load_with_state_dir(&args.config) {
            Ok(c) => {
                audit_cmd::run_report(&args, &c.state_dir, &c.sudoers_dir, &c.policy.role_names())
            }
            Err(e) => config_error(e),
        },
        Command::Replay(args) => replay_cmd::run(&cli.socket, &args),
        other => commands::run(&cli.socket, other),
    }
}

fn load_with_state_dir(
    path: &std::path::Path,
) -> Result<config_file::Config, config_file::ConfigError> {
    let config = config_file::Config::load(path, false)?;
    config.check_state_dir()?;
    Ok(config)
}

fn config_error(e: config_file::ConfigError) -> ExitCode {
    eprintln!("jitd: invalid configuration: {e}");
    ExitCode::from(4)
}

/// Rust ignores SIGPIPE, so `println!` into a closed pipe (`jitd show --json | head -1`)
/// would panic; a command-line tool should just stop, as others do. The daemon keeps it
/// ignored: a client hanging up must never kill it.
fn restore_sigpipe() {
    // SAFETY: resetting a signal's disposition to the default has no other effect.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
}
