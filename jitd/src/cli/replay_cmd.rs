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
use crate::core::tlog::{Recording, TLOG_PLAY};
use crate::shell::host::recordings;
use crate::shell::host::ssh_recording::SshRecorder;
use std::io::{IsTerminal, Write};

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
        let ssh = SshRecorder::new(&dir, &config.state_dir);
        let recorded = ssh
            .sessions(&args.id)
            .map_err(|e| format!("cannot read the SSH recording of {}: {e}", args.id))?;
        if !recorded.is_empty() {
            return play_ssh(&ssh, &args.id, &recorded, args.session);
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

/// An SSH grant's sessions, recorded by tlog: on a terminal with `tlog-play` and their timing,
/// otherwise (a pipe, a file) their output as it was printed.
fn play_ssh(
    ssh: &SshRecorder,
    id: &str,
    recorded: &[Recording],
    session: Option<u32>,
) -> Result<(), String> {
    let names: Vec<String> = recorded.iter().map(|r| r.rec.clone()).collect();
    let on_terminal = std::io::stdout().is_terminal();
    for (n, rec) in recordings::pick(&names, id, session)? {
        println!("--- session {n} (tlog {rec}) ---");
        if on_terminal {
            let status = ssh
                .player(id, rec)
                .status()
                .map_err(|e| format!("cannot run {TLOG_PLAY}: {e}"))?;
            if !status.success() {
                return Err(format!("tlog-play failed on session {n}: {status}"));
            }
        } else {
            let output = &recorded[n - 1].output;
            let mut out = std::io::stdout().lock();
            out.write_all(output)
                .and_then(|()| out.flush())
                .map_err(|e| format!("cannot write session {n}: {e}"))?;
        }
    }
    Ok(())
}
