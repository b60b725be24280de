//! The approvers' commands: each sends one request to the running daemon and prints the answer.

use std::process::ExitCode;
use std::time::Duration;

use jit_proto::{Client, NewRequest, Request, RequestView, Response, Target};

use crate::cli::args::{Command, FleetCommand, GrantArgs};
use crate::cli::fleet_sign::{self, KeySource};
use crate::cli::output;
use crate::core::fleet::allowed_signers::AllowedSigners;
use crate::core::fleet::records::approval_message;
use crate::core::fleet::sshsig::{PublicKey, NAMESPACE};
use crate::core::model::GrantId;
use crate::core::timestamp::rfc3339;

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
            key,
            json,
        } => {
            let shown = match shown_for_approval(&client, &id) {
                Ok(v) => v,
                Err(code) => return code,
            };
            if let Some(view) = shown.as_ref().filter(|v| v.fleet.is_some()) {
                match fleet_approval(view, expect.as_deref(), key) {
                    Ok(r) => (r, json, Style::Detail),
                    Err(e) => {
                        eprintln!("jitd: {e}");
                        return ExitCode::from(EXIT_REFUSED);
                    }
                }
            } else {
                let expect = expect.or(shown.map(|v| v.approval_token));
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
        }
        Command::Fleet(FleetCommand::Status { json }) => {
            (Request::FleetStatus, json, Style::Detail)
        }
        Command::Fleet(FleetCommand::Gc {
            older_than,
            dry_run,
            json,
        }) => (
            Request::FleetGc {
                older_than_secs: Some(older_than.as_secs()),
                dry_run,
            },
            json,
            Style::Detail,
        ),
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
fn shown_for_approval(client: &Client, id: &str) -> Result<Option<Box<RequestView>>, ExitCode> {
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
    Ok(Some(view))
}

/// A fleet approval: the approver signs, in this process and with their own SSH key, what
/// they were just shown (the request's hash, its id, their name and the time); jitd checks
/// the signature and writes it to the store, where every host checks it again.
fn fleet_approval(
    view: &RequestView,
    expect: Option<&str>,
    key: Option<std::path::PathBuf>,
) -> Result<Request, String> {
    let fleet = view.fleet.as_ref().ok_or("not a fleet request")?;
    if expect.is_some_and(|t| t != fleet.request_sha256) {
        return Err(format!(
            "{} changed since the token was taken: nothing was approved; look again (jitd show {})",
            view.id, view.id
        ));
    }
    let me = nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .ok_or("cannot find your user name")?
        .name;
    let id = GrantId::try_from(view.id.clone())?;
    // Whole seconds: the signed text names the time as the hosts will write it back.
    let now = chrono::Utc::now();
    let at = now - chrono::Duration::nanoseconds(now.timestamp_subsec_nanos() as i64);
    let message = approval_message(&fleet.request_sha256, &id, &me, at);
    let source = match key {
        Some(path) => KeySource::File(path),
        None => KeySource::Agent,
    };
    let signers_path = std::path::PathBuf::from(
        fleet
            .allowed_signers
            .as_deref()
            .unwrap_or(crate::config::fleet_table::DEFAULT_ALLOWED_SIGNERS),
    );
    let wanted = fleet_sign_filter(&signers_path, &me);
    let signature = fleet_sign::sign(message.as_bytes(), &source, &*wanted)
        .map_err(|e| e.describe(&signers_path, &me))?;
    Ok(Request::FleetApprove {
        id: view.id.clone(),
        request_sha256: fleet.request_sha256.clone(),
        approved_at: rfc3339(at),
        signature,
    })
}

/// Which agent keys to offer: those listed for `me` in this host's allowed_signers when it can
/// be read (it is the hosts' trust anchor, not a secret), otherwise any (jitd will say if the
/// key is not accepted).
fn fleet_sign_filter(path: &std::path::Path, me: &str) -> Box<dyn Fn(&PublicKey) -> bool> {
    let parsed = std::fs::read_to_string(path)
        .ok()
        .and_then(|text| AllowedSigners::parse(&text).ok());
    match parsed {
        Some((signers, _)) => {
            let me = me.to_string();
            Box::new(move |key| signers.allows(&me, key, NAMESPACE, chrono::Utc::now()))
        }
        None => Box::new(|_| true),
    }
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
            hosts: None,
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
        Response::FleetStatus { fleet } => {
            if json {
                println!("{}", json_text(&fleet));
            } else {
                print!("{}", output::fleet_status(&fleet));
            }
        }
        Response::FleetGc { gc } => {
            if json {
                println!("{}", json_text(&gc));
            } else {
                print!("{}", output::fleet_gc(&gc));
            }
            if gc.error.is_some() {
                return ExitCode::from(EXIT_REFUSED);
            }
        }
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
