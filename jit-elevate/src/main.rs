//! jit-elevate: ask jitd for just-in-time root for one command (or SSH login), wait visibly
//! for the decision, then run the command through sudo.

mod cli;
mod exit;
mod interrupt;
mod run;
mod wait;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use jit_proto::{Client, NewRequest, Request, RequestView, Response, State, Target};

use cli::{Action, Cli};

/// Enough for jitd to install a sudoers drop-in on an automatic approval.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `jit-elevate list --json | head` must stop quietly, not panic on a closed pipe; sudo
    // and the command then start with the usual default disposition too.
    // SAFETY: resetting a signal's disposition to the default has no other effect.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let client = Client::new(&cli.socket, CALL_TIMEOUT);
    if cli.action.is_some() && cli.has_request_options() {
        eprintln!("jit-elevate: request options (--for, --reason, -- CMD, …) do not go with status/list/cancel/done");
        return ExitCode::from(2);
    }
    match cli.action {
        Some(Action::Status { id: Some(id), json }) => show(&client, Request::Show { id }, json),
        Some(Action::Status { id: None, json }) => show(
            &client,
            Request::List {
                all: true,
                unreviewed: false,
                page: None,
            },
            json,
        ),
        Some(Action::List { json }) => show(
            &client,
            Request::List {
                all: false,
                unreviewed: false,
                page: None,
            },
            json,
        ),
        Some(Action::Extend { id, more }) => extend(&client, id, more),
        Some(Action::Cancel { id }) => show(&client, Request::Cancel { id }, false),
        Some(Action::Done { id }) => show(&client, Request::Done { id }, false),
        None => elevate(&client, &cli),
    }
}

fn call(client: &Client, request: Request) -> Result<Response, ExitCode> {
    client.call(request).map_err(|e| {
        eprintln!("jit-elevate: {e}");
        ExitCode::from(exit::UNREACHABLE)
    })
}

fn refused(message: &str) -> ExitCode {
    eprintln!("jit-elevate: {message}");
    ExitCode::from(exit::REFUSED)
}

fn describe(r: &RequestView) -> String {
    let what = match &r.command {
        Some(argv) => argv.join(" "),
        None => "ssh login".into(),
    };
    let until = match r.state {
        State::Pending => r
            .pending_until
            .as_deref()
            .map(|t| format!(", decision due by {t}")),
        _ => r.expires_at.as_deref().map(|t| format!(", until {t}")),
    }
    .unwrap_or_default();
    format!("{}  {:<9}  {what}{until}", r.id, r.state.as_str())
}

fn show(client: &Client, request: Request, json: bool) -> ExitCode {
    match call(client, request) {
        Err(code) => code,
        Ok(Response::Request { request }) => {
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&request).unwrap_or_default()
                );
            } else {
                println!("{}", describe(&request));
            }
            ExitCode::SUCCESS
        }
        Ok(Response::Requests { requests, .. }) => {
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&requests).unwrap_or_default()
                );
            } else if requests.is_empty() {
                println!("no requests");
            } else {
                for r in &requests {
                    println!("{}", describe(r));
                }
            }
            ExitCode::SUCCESS
        }
        Ok(Response::Error { message, .. }) => refused(&message),
        Ok(other) => refused(&format!("unexpected answer from jitd: {other:?}")),
    }
}

fn extend(client: &Client, id: String, more: Duration) -> ExitCode {
    let answer = call(
        client,
        Request::Extend {
            id,
            duration_secs: more.as_secs(),
        },
    );
    match answer {
        Err(code) => code,
        Ok(Response::Request { request }) => {
            match &request.extension {
                Some(x) => eprintln!(
                    "jit-elevate: extension of {} asked; it needs {} approval(s) from {} (approvers run `jitd approve {}`)",
                    request.id,
                    x.approvals_missing,
                    wait::who_approves(&request),
                    request.id
                ),
                None => eprintln!(
                    "jit-elevate: grant {} extended; it lasts until {}",
                    request.id,
                    request.expires_at.as_deref().unwrap_or("?")
                ),
            }
            println!("{}", describe(&request));
            ExitCode::SUCCESS
        }
        Ok(Response::Error { message, .. }) => refused(&message),
        Ok(other) => refused(&format!("unexpected answer from jitd: {other:?}")),
    }
}

fn elevate(client: &Client, cli: &Cli) -> ExitCode {
    let target = if cli.ssh {
        if !cli.command.is_empty() {
            eprintln!("jit-elevate: --ssh asks for a login, not a command: drop the command, or drop --ssh");
            return ExitCode::from(2);
        }
        Target::Ssh
    } else {
        // Sent as typed: jitd looks a bare name up in its fixed secure PATH, never in ours.
        if let Err(e) = jit_proto::command::check_form(&cli.command) {
            eprintln!("jit-elevate: {e}");
            return ExitCode::from(2);
        }
        Target::Sudo {
            command: cli.command.clone(),
        }
    };

    // From here on Ctrl-C means "nothing runs": it sets a flag read before every step that
    // could run something, and a request made meanwhile is cancelled or its grant ended.
    interrupt::install();

    // Already covered by an active grant for exactly this command line: run it now, as jitd
    // recorded it.
    if let (Target::Sudo { command }, false, None) = (&target, cli.no_wait, &cli.hosts) {
        if let Ok(asked) = jit_proto::command::resolve(command) {
            if let Ok(Response::Requests { requests, .. }) = call(
                client,
                Request::List {
                    all: false,
                    unreviewed: false,
                    page: None,
                },
            ) {
                let held = requests
                    .iter()
                    .filter(|r| r.state == State::Active && !r.clipped)
                    .find_map(|r| Some((r, r.command.as_ref().filter(|c| **c == asked)?)));
                if let Some((r, granted)) = held {
                    if interrupt::happened() {
                        eprintln!("jit-elevate: interrupted: nothing was run");
                        return ExitCode::from(exit::INTERRUPTED);
                    }
                    eprintln!(
                        "jit-elevate: using your active grant {} (until {})",
                        r.id,
                        r.expires_at.as_deref().unwrap_or("?")
                    );
                    return run::through_sudo(granted);
                }
            }
        }
    }

    if interrupt::happened() {
        eprintln!("jit-elevate: interrupted: nothing was asked for");
        return ExitCode::from(exit::INTERRUPTED);
    }
    let submitted = call(
        client,
        Request::Submit(NewRequest {
            target: target.clone(),
            duration_secs: cli.duration.map(|d| d.as_secs()),
            reason: cli.reason.clone(),
            ticket: cli.ticket.clone(),
            role: cli.role.clone(),
            hosts: cli
                .hosts
                .as_ref()
                .map(|h| h.split(',').map(|p| p.trim().to_string()).collect()),
        }),
    );
    let request = match submitted {
        Err(code) => return code,
        Ok(Response::Request { request }) => request,
        Ok(Response::Error { message, .. }) => return refused(&message),
        Ok(other) => return refused(&format!("unexpected answer from jitd: {other:?}")),
    };
    // Ctrl-C while the request was being made (an automatic approval answers with an active
    // grant at once): nothing runs.
    if interrupt::happened() {
        return stop_waiting(client, &request.id, wait::Stopped::Interrupted);
    }
    if cli.no_wait {
        println!("{}", request.id);
        return ExitCode::SUCCESS;
    }
    if request.state == State::Pending {
        eprintln!(
            "jit-elevate: request {} created; it needs approval from {}",
            request.id,
            wait::who_approves(&request)
        );
    }
    let decided = match wait::until_decided(client, (*request).clone(), cli.timeout) {
        Ok(r) => r,
        Err(stopped) => return stop_waiting(client, &request.id, stopped),
    };
    // Ctrl-C between the approval and this point: the user asked to stop, so the grant is
    // ended rather than used.
    if interrupt::happened() {
        return stop_waiting(client, &request.id, wait::Stopped::Interrupted);
    }
    if decided.fleet.as_ref().is_some_and(|f| !f.for_this_host) {
        return finish_elsewhere(&decided);
    }
    finish(&decided)
}

/// A fleet request for hosts other than this one: say what was decided and where it holds.
fn finish_elsewhere(r: &RequestView) -> ExitCode {
    let hosts = r
        .fleet
        .as_ref()
        .map(|f| f.hosts.join(","))
        .unwrap_or_default();
    if r.state != State::Active {
        return finish(r);
    }
    eprintln!(
        "jit-elevate: approved: fleet grant {} for hosts {hosts} until {}; each host installs it within a second (`jit-elevate status {}` shows them)",
        r.id,
        r.expires_at.as_deref().unwrap_or("?"),
        r.id
    );
    for h in &r.hosts {
        eprintln!(
            "  {} {}{}",
            h.host,
            h.state,
            h.why
                .as_deref()
                .map(|w| format!(": {w}"))
                .unwrap_or_default()
        );
    }
    println!("{}", r.id);
    ExitCode::SUCCESS
}

fn stop_waiting(client: &Client, id: &str, stopped: wait::Stopped) -> ExitCode {
    let (why, code) = match stopped {
        wait::Stopped::Interrupted => ("interrupted", exit::INTERRUPTED),
        wait::Stopped::TimedOut => ("no decision within --timeout", exit::TIMED_OUT),
        wait::Stopped::Daemon(message) => {
            eprintln!("jit-elevate: lost track of request {id}: {message}; check it with `jit-elevate status {id}`");
            return ExitCode::from(exit::UNREACHABLE);
        }
    };
    // Approved meanwhile (or at once, by a rule): end the grant instead, so nothing is left
    // open that the user walked away from.
    if let Ok(Response::Request { request }) = client.call(Request::Show { id: id.to_string() }) {
        if request.state == State::Active {
            match client.call(Request::Done { id: id.to_string() }) {
                Ok(Response::Request { .. }) => {
                    eprintln!("jit-elevate: {why}: grant {id} ended unused")
                }
                _ => eprintln!(
                    "jit-elevate: {why}; could not end grant {id}: run `jit-elevate done {id}`"
                ),
            }
            return ExitCode::from(code);
        }
    }
    match client.call(Request::Cancel { id: id.to_string() }) {
        Ok(Response::Request { .. }) => eprintln!("jit-elevate: {why}: request {id} cancelled"),
        Ok(Response::Error { message, .. }) => {
            eprintln!("jit-elevate: {why}; could not cancel {id}: {message}")
        }
        Ok(_) | Err(_) => {
            eprintln!("jit-elevate: {why}; could not cancel {id}: run `jit-elevate cancel {id}`")
        }
    }
    ExitCode::from(code)
}

/// Runs what jitd granted (the program as jitd resolved it), never the command line as typed.
fn finish(r: &RequestView) -> ExitCode {
    let last_note = r
        .decisions
        .last()
        .map(|d| {
            format!(
                " by {}{}",
                d.by,
                d.note
                    .as_deref()
                    .map(|n| format!(": {n}"))
                    .unwrap_or_default()
            )
        })
        .unwrap_or_default();
    match r.state {
        State::Active => match &r.command {
            None => {
                println!(
                    "SSH login to this host granted until {} (grant {})",
                    r.expires_at.as_deref().unwrap_or("?"),
                    r.id
                );
                ExitCode::SUCCESS
            }
            Some(command) => {
                eprintln!(
                    "jit-elevate: approved{last_note}; grant {} lasts until {} (end it early with `jit-elevate done {}`)",
                    r.id,
                    r.expires_at.as_deref().unwrap_or("?"),
                    r.id
                );
                run::through_sudo(command)
            }
        },
        State::Denied => {
            eprintln!("jit-elevate: request {} was denied{last_note}", r.id);
            ExitCode::from(exit::DENIED)
        }
        State::TimedOut => {
            eprintln!("jit-elevate: request {} timed out without a decision; ask an approver, then try again", r.id);
            ExitCode::from(exit::TIMED_OUT)
        }
        State::Cancelled => {
            eprintln!("jit-elevate: request {} was cancelled", r.id);
            ExitCode::from(exit::CANCELLED)
        }
        State::Failed => refused(&format!(
            "request {} was approved but could not be installed: {}",
            r.id,
            r.failure.as_deref().unwrap_or("unknown error")
        )),
        other => refused(&format!(
            "request {} ended as {} before it could be used",
            r.id,
            other.as_str()
        )),
    }
}
