//! Waiting visibly for the decision: a live one-line status on a terminal, plain lines
//! otherwise (logs, CI), one per change.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use jit_proto::{Client, Request, RequestView, Response, State};

use crate::interrupt;

/// Why waiting stopped without a decision.
pub enum Stopped {
    Interrupted,
    TimedOut,
    Daemon(String),
}

const POLL: Duration = Duration::from_millis(500);

pub fn who_approves(r: &RequestView) -> String {
    if r.approver_groups.is_empty() {
        "root".into()
    } else {
        format!("a member of {}", r.approver_groups.join(", "))
    }
}

fn status_line(r: &RequestView, waited: Duration) -> String {
    let required = r.approvals_required.max(r.approvals_missing);
    format!(
        "waiting for approval of {} ({}s): {} of {} approval(s) in, {} more from {} — approvers run `jitd approve {}`; Ctrl-C cancels",
        r.id,
        waited.as_secs(),
        required - r.approvals_missing,
        required,
        r.approvals_missing,
        who_approves(r),
        r.id
    )
}

/// Polls the request until it leaves `pending`; returns its final view.
pub fn until_decided(
    client: &Client,
    first: RequestView,
    timeout: Option<Duration>,
) -> Result<RequestView, Stopped> {
    let tty = std::io::stderr().is_terminal();
    let start = Instant::now();
    let mut current = first;
    let mut last_plain = String::new();
    loop {
        if current.state != State::Pending {
            if tty {
                eprint!("\r\x1b[K");
            }
            return Ok(current);
        }
        let line = status_line(&current, start.elapsed());
        if tty {
            eprint!("\r\x1b[K{line}");
            let _ = std::io::stderr().flush();
        } else {
            // One line per change of what matters, not per tick.
            let gist = format!(
                "{} {}",
                current.approvals_missing,
                current.approver_groups.join(",")
            );
            if gist != last_plain {
                eprintln!("{}", line.replace(" — ", ". "));
                last_plain = gist;
            }
        }
        let tick_end = Instant::now() + POLL;
        while Instant::now() < tick_end {
            if interrupt::happened() {
                if tty {
                    eprintln!();
                }
                return Err(Stopped::Interrupted);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if timeout.is_some_and(|t| start.elapsed() >= t) {
            if tty {
                eprintln!();
            }
            return Err(Stopped::TimedOut);
        }
        current = match client.call(Request::Show {
            id: current.id.clone(),
        }) {
            Ok(Response::Request { request }) => *request,
            Ok(Response::Error { message, .. }) => return Err(Stopped::Daemon(message)),
            Ok(other) => return Err(Stopped::Daemon(format!("unexpected answer: {other:?}"))),
            Err(e) => return Err(Stopped::Daemon(e.to_string())),
        };
    }
}
