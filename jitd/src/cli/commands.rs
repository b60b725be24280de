//! The approvers' commands: each sends one request to the running daemon and prints the answer.

use std::process::ExitCode;
use std::time::Duration;

use jit_proto::{Client, NewRequest, Request, Response, Target};

use crate::cli::args::{Command, GrantArgs};
use crate::cli::output;

pub const EXIT_REFUSED: u8 = 1;
pub const EXIT_UNREACHABLE: u8 = 3;

/// Long enough for a decision that installs a sudoers drop-in (visudo runs twice).
const CLI_TIMEOUT: Duration = Duration::from_secs(30);

pub fn run(socket: &std::path::Path, command: Command) -> ExitCode {
    let client = Client::new(socket, CLI_TIMEOUT);
    let (request, json, style) = match command {
        Command::List {
            all,
            unreviewed,
            page,
            json,
        } => (
            Request::List {
                all,
                unreviewed,
                page: Some(page),
            },
            json,
            Style::Table,
        ),
        Command::Review { id, comment, json } => {
            (Request::Review { id, comment }, json, Style::Detail)
        }
        Command::Reload => (Request::Reload, false, Style::Detail),
        Command::Metrics => (Request::Metrics, false, Style::Detail),
        Command::Show { id, json } => (Request::Show { id }, json, Style::Detail),
        Command::Approve {
            id,
            comment,
            expect,
            json,
        } => {
            let expect = match expect {
                Some(token) => Some(token),
                None => match shown_for_approval(&client, &id) {
                    Ok(token) => token,
                    Err(code) => return code,
                },
            };
            (
                Request::Approve {
                    id,
                    comment,
                    expect,
                },
                json,
                Style::Detail,
            )
        }
        Command::Deny { id, reason, json } => (Request::Deny { id, reason }, json, Style::Detail),
        Command::Revoke { id, reason, json } => {
            (Request::Revoke { id, reason }, json, Style::Detail)
        }
        Command::Grant(args) => match grant_request(args) {
            Ok(r) => (r, false, Style::IdOnly),
            Err(e) => {
                eprintln!("jitd: {e}");
                return ExitCode::from(2);
            }
        },
        Command::Serve { .. }
        | Command::CheckConfig { .. }
        | Command::Explain(_)
        | Command::Audit(_)
        | Command::Report(_)
        | Command::Replay(_) => {
            unreachable!("handled in main")
        }
    };
    let response = match client.call(request) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("jitd: {e}");
            return ExitCode::from(EXIT_UNREACHABLE);
        }
    };
    print(response, json, style)
}

/// Shows the approver (on stderr) what `jitd approve ID` is about to approve, and returns its
/// token, so that the approval counts only for that. When jitd will not show it (not the
/// caller's to see, no such request), the approval goes without a token and jitd's refusal
/// of it says why, as it would have without this look.
fn shown_for_approval(client: &Client, id: &str) -> Result<Option<String>, ExitCode> {
    let view = match client.call(Request::Show { id: id.to_string() }) {
        Ok(Response::Request { request }) => request,
        Ok(Response::Error { .. }) => return Ok(None),
        Ok(other) => return Err(print(other, false, Style::Detail)),
        Err(e) => {
            eprintln!("jitd: {e}");
            return Err(ExitCode::from(EXIT_UNREACHABLE));
        }
    };
    eprintln!("jitd: approving {}", output::up_for_decision(&view));
    Ok(Some(view.approval_token))
}

enum Style {
    Table,
    Detail,
    IdOnly,
}

fn grant_request(args: GrantArgs) -> Result<Request, String> {
    let target = if args.ssh {
        Target::Ssh
    } else {
        Target::Sudo {
            command: jit_proto::command::resolve(&args.command)?,
        }
    };
    Ok(Request::Grant {
        user: args.user,
        request: NewRequest {
            target,
            duration_secs: args.duration.map(|d| d.as_secs()),
            reason: Some(args.reason),
            ticket: args.ticket,
            role: None,
        },
    })
}

fn print(response: Response, json: bool, style: Style) -> ExitCode {
    match response {
        Response::Request { request } => match style {
            Style::IdOnly => println!("{}", request.id),
            _ if json => println!("{}", json_text(&request)),
            _ => print!("{}", output::detail(&request)),
        },
        Response::Requests { requests, omitted } => {
            if json {
                println!("{}", json_text(&requests));
            } else {
                print!("{}", output::table(&requests));
            }
            if omitted > 0 {
                eprintln!(
                    "jitd: {omitted} older request(s) not shown: `jitd list --page N` shows the hundred \
                     before (N = 2, 3, ...), `jitd show ID` any request"
                );
            }
        }
        Response::Reloaded { message } => println!("{message}"),
        Response::Metrics { text } => print!("{text}"),
        Response::Error { code, message } => {
            eprintln!("jitd: {message}");
            if json {
                println!("{}", serde_json::json!({"error": code, "message": message}));
            }
            return ExitCode::from(EXIT_REFUSED);
        }
        other => {
            eprintln!("jitd: unexpected answer from the daemon: {other:?}");
            return ExitCode::from(EXIT_UNREACHABLE);
        }
    }
    ExitCode::SUCCESS
}

fn json_text<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}
