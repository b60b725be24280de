//! `jitd replay ID [--session N]`: plays a grant's recorded sessions.
//!
//! Root plays them here with `sudoreplay` and their original timing. Anyone else asks the
//! daemon, which answers members of `auditor_groups` with the sessions' output (the recordings
//! are root's alone, so an auditor never reads them directly, and the grant holder never can).

use std::process::ExitCode;
use std::time::Duration;

use jit_proto::{Client, Request, Response};

use crate::cli::args::ReplayArgs;
use crate::cli::commands::{EXIT_REFUSED, EXIT_UNREACHABLE};
use crate::config::config_file::Config;
use crate::core::recording::RecordingsDir;
use crate::shell::host::recordings;

pub fn run(socket: &std::path::Path, args: &ReplayArgs) -> ExitCode {
    if nix::unistd::getuid().is_root() {
        return play_as_root(args);
    }
    let client = Client::new(socket, Duration::from_secs(30));
    match client.call(Request::Replay {
        id: args.id.clone(),
        session: args.session,
    }) {
        Ok(Response::Replay { text, truncated }) => {
            print!("{text}");
            if truncated {
                eprintln!(
                    "jitd: the output was cut to fit one answer; root sees it whole with `jitd replay`"
                );
            }
            ExitCode::SUCCESS
        }
        Ok(Response::Error { message, .. }) => {
            eprintln!("jitd: {message}");
            ExitCode::from(EXIT_REFUSED)
        }
        Ok(other) => {
            eprintln!("jitd: unexpected answer: {other:?}");
            ExitCode::from(EXIT_UNREACHABLE)
        }
        Err(e) => {
            eprintln!("jitd: {e}");
            ExitCode::from(EXIT_UNREACHABLE)
        }
    }
}

fn play_as_root(args: &ReplayArgs) -> ExitCode {
    let config = match Config::load(&args.config, false) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("jitd: invalid configuration: {e}");
            return ExitCode::from(4);
        }
    };
    let played = RecordingsDir::parse(&config.recordings_dir).and_then(|dir| {
        let plain = !args.id.is_empty()
            && args.id.len() <= 64
            && args
                .id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !plain {
            return Err(format!("{:?} is not a grant id", args.id));
        }
        let sessions = recordings::sessions(&dir, &args.id)
            .map_err(|e| format!("cannot list the recordings of {}: {e}", args.id))?;
        for (n, s) in recordings::pick(&sessions, &args.id, args.session)? {
            println!("--- session {n} ({s}) ---");
            let status = recordings::player(&dir, &args.id, s)
                .status()
                .map_err(|e| format!("cannot run {}: {e}", recordings::SUDOREPLAY))?;
            if !status.success() {
                return Err(format!("sudoreplay failed on session {n}: {status}"));
            }
        }
        Ok(())
    });
    match played {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("jitd: {e}");
            ExitCode::from(EXIT_REFUSED)
        }
    }
}
