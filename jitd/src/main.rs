//! jitd: the just-in-time access daemon and the approvers' CLI.

mod cli;
mod commands;
mod config;
mod core;
mod events;
mod output;
mod serve;
mod shell;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config } => {
            let explicit = std::env::args().any(|a| a.starts_with("--config")) || std::env::var_os(config::CONFIG_ENV).is_some();
            serve::run(&config, explicit)
        }
        Command::CheckConfig { file } => match config::Config::load(&file, true) {
            Ok(_) => {
                println!("{}: configuration is valid", file.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("jitd: {e}");
                ExitCode::from(4)
            }
        },
        other => commands::run(&cli.socket, other),
    }
}
