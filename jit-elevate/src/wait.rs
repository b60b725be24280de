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

/// The live line on a terminal: the gist first, so that cutting it to the terminal's width
/// keeps what changes (the time, the approvals). The rest was said once, on a line of its own.
fn live_line(r: &RequestView, waited: Duration) -> String {
    let required = r.approvals_required.max(r.approvals_missing);
    format!(
        "waiting for approval of {} ({}s): {} of {} approval(s) in; Ctrl-C cancels",
        r.id,
        waited.as_secs(),
        required - r.approvals_missing,
        required
    )
}

/// `line` cut to fit `columns` (one column kept free: writing the last one makes some
/// terminals wrap), marked with `…` where cut. A line that wraps is redrawn below itself on
/// every tick and fills the screen.
fn fit(line: &str, columns: usize) -> String {
    let room = columns.saturating_sub(1).max(1);
    if line.chars().count() <= room {
        return line.to_string();
    }
    let mut cut: String = line.chars().take(room.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// The width of the terminal on stderr, read again on every redraw (it may be resized).
fn terminal_columns() -> usize {
    // SAFETY: TIOCGWINSZ fills the winsize struct passed by pointer; it is plain old data.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: ioctl on fd 2 with a valid pointer to a winsize; failure leaves it zeroed.
    let rc = unsafe { libc::ioctl(2, libc::TIOCGWINSZ, &mut size) };
    if rc == 0 && size.ws_col > 0 {
        usize::from(size.ws_col)
    } else {
        80
    }
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
    if tty && current.state == State::Pending {
        eprintln!(
            "jit-elevate: request {} needs {} more approval(s) from {}: approvers run `jitd approve {}`",
            current.id,
            current.approvals_missing,
            who_approves(&current),
            current.id
        );
    }
    loop {
        if current.state != State::Pending {
            if tty {
                eprint!("\r\x1b[K");
            }
            return Ok(current);
        }
        if tty {
            let line = fit(&live_line(&current, start.elapsed()), terminal_columns());
            eprint!("\r\x1b[K{line}");
            let _ = std::io::stderr().flush();
        } else {
            let line = status_line(&current, start.elapsed());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_cut_to_the_terminal_and_marked() {
        assert_eq!(fit("abcdef", 80), "abcdef");
        assert_eq!(fit("abcdef", 6), "abcd…");
        assert_eq!(fit("abcdef", 6).chars().count(), 5);
        assert_eq!(fit("äöüäöü", 5), "äöü…");
        assert_eq!(fit("abc", 0), "…");
    }
}
