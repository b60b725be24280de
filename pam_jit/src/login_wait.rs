//! `wait=`: an SSH login without a grant asks for one and waits for the decision, Duo-push
//! style. jitd creates the request on the user's behalf (as their own `jit-elevate --ssh`
//! would be judged); the module then polls it, one short exchange every [`POLL`], until it is
//! approved (the login proceeds under the new grant), denied, timed out or cancelled (the
//! login fails), the client goes away (the request is cancelled), or the wait runs out (the
//! request times out). Nothing is left pending: jitd's own deadline for the request is the
//! login's wait, and jitd cancels it when sshd's process ends without a word from here.
//!
//! What the user sees depends on how sshd runs the account phase. With keyboard-interactive
//! it runs in sshd's PAM process with a live conversation: the module asks for a reason (when
//! the role wants one) and shows the request inside a prompt, the only way to show a line
//! while waiting (sshd holds PAM_TEXT_INFO until the next prompt or the end: OpenSSH bug
//! 2876). After a public-key login sshd cannot prompt there and shows messages only when the
//! phase ends: the wait is silent, and the request's id goes to the log and to the approvers.

use std::time::Duration;

use jit_proto::{LoginEnd, LoginWait, Request, RequestView, Response, State};

use crate::context::Context;
use crate::daemon::Daemon;
use crate::host::{Host, Severity};
use crate::log_line::escape;
use crate::reply::{classify, Reply};
use crate::waiting::Waiting;

/// How often the module asks jitd how the request stands: a decision reaches the login within
/// this (plus one exchange).
pub const POLL: Duration = Duration::from_millis(250);
/// Longest reason passed on (jitd refuses longer ones, and a login would fail on it).
const MAX_REASON_BYTES: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// An active grant now covers the login.
    Granted,
    /// No grant: the user was told why (where sshd shows it) and it was logged.
    Refused,
}

/// Asks for approval of the login `cx` describes and waits up to `wait` for it.
pub fn run<H: Host, D: Daemon, W: Waiting>(
    host: &H,
    daemon: &D,
    waiting: &W,
    cx: &Context,
    wait: Duration,
) -> Outcome {
    let ask = |reason: Option<String>| {
        daemon.ask(
            &cx.args.socket,
            cx.args.timeout,
            Request::LoginWait(LoginWait {
                pam: cx.pam.clone(),
                reason,
                wait_secs: wait.as_secs(),
            }),
        )
    };
    let mut answer = ask(None);
    if let Ok(Response::ReasonWanted { message }) = &answer {
        // Where sshd cannot ask (a public-key login), the default reason it is.
        let given = host
            .prompt(&format!("jit: {}\nReason: ", escape(message)))
            .map(|r| bounded_reason(&r))
            .unwrap_or_default();
        answer = ask(Some(given));
    }
    // The wait is counted from the request's creation, as jitd counts it.
    let started = waiting.elapsed();
    let view = match answer {
        Ok(Response::Request { request }) => *request,
        other => return not_asked(host, cx, other),
    };
    match view.state {
        State::Active => return granted(host, cx, &view, "approved at once"),
        State::Pending => {}
        _ => return ended(host, cx, &view),
    }
    let id = view.id.clone();
    let who = approvers(&view.approver_groups);
    let how_long = jit_proto::duration::format(wait);
    cx.log(
        host,
        Severity::Notice,
        &format!("no grant: waiting up to {how_long} for approval of {id} by {who}"),
    );
    if !waiting.watch_client(cx.pam.rhost.as_deref()) {
        cx.log(
            host,
            Severity::Debug,
            "the client's connection was not found: jitd cancels the request if sshd ends the login",
        );
    }
    // Shown live only inside a prompt (see the module's comment); refused where sshd cannot
    // prompt, and then the wait is silent.
    host.prompt(&format!(
        "jit: waiting for approval of {} by {}… (up to {how_long})\nPress Enter to keep waiting, Ctrl-C to give up: ",
        escape(&id),
        escape(&who)
    ));
    let deadline = started + wait;
    loop {
        let now = waiting.elapsed();
        if now >= deadline {
            return stop(host, daemon, cx, &id, LoginEnd::TimedOut, wait);
        }
        waiting.pause(POLL.min(deadline - now));
        if waiting.client_gone() {
            return stop(host, daemon, cx, &id, LoginEnd::ClientGone, wait);
        }
        let status = daemon.ask(
            &cx.args.socket,
            cx.args.timeout,
            Request::LoginStatus { id: id.clone() },
        );
        match status {
            Ok(Response::Request { request }) => match request.state {
                State::Pending => {}
                State::Active => {
                    let after = waiting.elapsed().saturating_sub(started);
                    let how = format!("approved after {:.1} s of waiting", after.as_secs_f64());
                    return granted(host, cx, &request, &how);
                }
                _ => return ended(host, cx, &request),
            },
            other => match classify(other) {
                // jitd said something final about the request (it was forgotten, say).
                Reply::Refused(why) => {
                    cx.log(host, Severity::Notice, &format!("denied: {id}: {why}"));
                    host.tell_user(&format!(
                        "jit: login request {} cannot be followed: {}",
                        escape(&id),
                        escape(&why)
                    ));
                    return Outcome::Refused;
                }
                // Busy, restarting, slow: ask again until the wait runs out.
                trouble => cx.log(
                    host,
                    Severity::Debug,
                    &format!("no answer about {id} this time ({trouble:?}); asking again"),
                ),
            },
        }
    }
}

/// jitd did not put the login up for approval: no role covers SSH for the user, another
/// login of theirs is waiting, or jitd could not answer.
fn not_asked<H: Host>(
    host: &H,
    cx: &Context,
    answer: Result<Response, jit_proto::ClientError>,
) -> Outcome {
    match classify(answer) {
        Reply::Refused(why) => {
            cx.log(
                host,
                Severity::Notice,
                &format!("denied: no grant, and the login cannot ask for one: {why}"),
            );
            host.tell_user(&format!(
                "jit: {} has no active SSH grant and this login cannot ask for one: {}",
                escape(&cx.pam.user),
                escape(&why)
            ));
        }
        // jitd answered the check a moment ago, so fail= (about a daemon that is not there)
        // does not apply: no answer is a no.
        Reply::Unavailable(why) | Reply::Trouble(why) => {
            cx.log(
                host,
                Severity::Err,
                &format!("denied: cannot ask jitd for approval of this login: {why}"),
            );
            host.tell_user(&crate::deny_message::unavailable());
        }
        other => {
            cx.log(
                host,
                Severity::Err,
                &format!("denied: unexpected answer to a login's request: {other:?}"),
            );
            host.tell_user(&crate::deny_message::unavailable());
        }
    }
    Outcome::Refused
}

fn granted<H: Host>(host: &H, cx: &Context, view: &RequestView, how: &str) -> Outcome {
    cx.log(
        host,
        Severity::Info,
        &format!("allowed by grant {} ({how})", view.id),
    );
    let until = view.expires_at.as_deref().unwrap_or("?");
    host.tell_user(&format!(
        "jit: approved: grant {} lets {} in until {}",
        escape(&view.id),
        escape(&cx.pam.user),
        escape(until)
    ));
    Outcome::Granted
}

/// The request ended without a grant (or with one that already ended).
fn ended<H: Host>(host: &H, cx: &Context, view: &RequestView) -> Outcome {
    let id = escape(&view.id);
    let last = view.decisions.last();
    let by = last.map(|d| escape(&d.by)).unwrap_or_else(|| "?".into());
    let note = last
        .and_then(|d| d.note.as_deref())
        .map(|n| format!(": {}", escape(n)))
        .unwrap_or_default();
    let told = match view.state {
        State::Denied => format!("jit: login request {id} was denied by {by}{note}"),
        State::TimedOut => format!(
            "jit: nobody decided on login request {id} in time; it timed out. Log in again to ask again, or ask an approver for: jitd grant {} --ssh",
            escape(&cx.pam.user)
        ),
        State::Cancelled => format!("jit: login request {id} was cancelled by {by}{note}"),
        State::Failed => format!(
            "jit: login request {id} was approved but the grant could not be installed: {}",
            escape(view.failure.as_deref().unwrap_or("?"))
        ),
        other => format!("jit: login request {id} is {}", other.as_str()),
    };
    cx.log(
        host,
        Severity::Notice,
        &format!("denied: request {} is {}", view.id, view.state.as_str()),
    );
    host.tell_user(&told);
    Outcome::Refused
}

/// The login stops waiting on `id`: jitd ends the request (`cancelled` or `timed_out`) unless
/// it was decided meanwhile; approved at the last moment, the login proceeds.
fn stop<H: Host, D: Daemon>(
    host: &H,
    daemon: &D,
    cx: &Context,
    id: &str,
    why: LoginEnd,
    wait: Duration,
) -> Outcome {
    let answer = daemon.ask(
        &cx.args.socket,
        cx.args.timeout,
        Request::LoginAbandon {
            id: id.to_string(),
            why,
        },
    );
    let view = match answer {
        Ok(Response::Request { request }) => Some(*request),
        other => {
            cx.log(
                host,
                Severity::Warning,
                &format!("jitd was not told that the login stopped waiting on {id} ({:?}); its own deadline ends the request", classify(other)),
            );
            None
        }
    };
    if let Some(v) = view.as_ref().filter(|v| v.state == State::Active) {
        return granted(host, cx, v, "approved as the wait ended");
    }
    match why {
        LoginEnd::ClientGone => {
            // Nobody is left to tell.
            cx.log(
                host,
                Severity::Notice,
                &format!("denied: the client went away while waiting for approval of {id}; the request is cancelled"),
            );
        }
        LoginEnd::TimedOut => {
            let how_long = jit_proto::duration::format(wait);
            cx.log(
                host,
                Severity::Notice,
                &format!("denied: nobody decided on {id} within {how_long}; the request timed out"),
            );
            host.tell_user(&format!(
                "jit: nobody decided on login request {} within {how_long}; it timed out. Log in again to ask again, or ask an approver for: jitd grant {} --ssh",
                escape(id),
                escape(&cx.pam.user)
            ));
        }
    }
    Outcome::Refused
}

/// Who may approve, as the user should read it.
fn approvers(groups: &[String]) -> String {
    if groups.is_empty() {
        "root".into()
    } else {
        format!("root or members of {}", groups.join(", "))
    }
}

/// The answer to the reason prompt as jitd will take it: trimmed and cut to what it accepts.
fn bounded_reason(answer: &str) -> String {
    let mut reason = answer.trim().to_string();
    if reason.len() > MAX_REASON_BYTES {
        let mut cut = MAX_REASON_BYTES;
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        reason.truncate(cut);
    }
    reason
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::path::PathBuf;

    use jit_proto::{ClientError, DecisionView, ErrorCode, GrantKind, PamContext};
    use pam::constants::PamResultCode;

    use super::*;
    use crate::account::check;
    use crate::host::Item;
    use crate::script::{Expect, Script};

    const ID: &str = "abcdefghij";

    fn items() -> Vec<(Item, &'static str)> {
        vec![
            (Item::Service, "sshd"),
            (Item::User, "bob"),
            (Item::Tty, "ssh"),
            (Item::Rhost, "10.201.0.2"),
        ]
    }

    fn bob() -> PamContext {
        PamContext {
            user: "bob".into(),
            kind: GrantKind::Ssh,
            service: "sshd".into(),
            tty: Some("ssh".into()),
            rhost: Some("10.201.0.2".into()),
            ruser: None,
        }
    }

    fn no_grant() -> Expect {
        Expect::Ask(
            Request::Check(bob()),
            Ok(Response::Denied {
                reason: "bob holds no active ssh grant".into(),
            }),
        )
    }

    fn login_wait(
        reason: Option<&str>,
        secs: u64,
        answer: Result<Response, ClientError>,
    ) -> Expect {
        Expect::Ask(
            Request::LoginWait(LoginWait {
                pam: bob(),
                reason: reason.map(String::from),
                wait_secs: secs,
            }),
            answer,
        )
    }

    fn view(state: State) -> Response {
        let mut decisions = Vec::new();
        let decided = |action: &str, by: &str, note: Option<&str>| DecisionView {
            action: action.into(),
            by: by.into(),
            at: "2026-06-10T01:00:05Z".into(),
            note: note.map(String::from),
            voided: false,
        };
        match state {
            State::Active => decisions.push(decided("approve", "carol", None)),
            State::Denied => decisions.push(decided("deny", "carol", Some("not now"))),
            State::Cancelled => decisions.push(decided(
                "cancel",
                "jitd",
                Some("the client went away while the login waited"),
            )),
            State::TimedOut => decisions.push(decided("time_out", "jitd", None)),
            _ => {}
        }
        Response::Request {
            request: Box::new(RequestView {
                id: ID.into(),
                user: "bob".into(),
                uid: 1001,
                state,
                command: None,
                ssh: true,
                reason: "login from 10.201.0.2".into(),
                ticket: None,
                role: None,
                duration_secs: 3600,
                requested_at: "2026-06-10T01:00:00Z".into(),
                pending_until: None,
                approved_at: None,
                expires_at: (state == State::Active).then(|| "2026-06-10T02:00:05Z".into()),
                ended_at: None,
                approvals_missing: 1,
                approver_groups: vec!["ops".into()],
                decisions,
                sessions: Vec::new(),
                failure: None,
                approvals_required: 1,
                extension: None,
                break_glass: false,
                review: None,
                clipped: false,
                approval_token: String::new(),
                fleet: None,
                hosts: Vec::new(),
            }),
        }
    }

    fn status(answer: Result<Response, ClientError>) -> Expect {
        Expect::Ask(Request::LoginStatus { id: ID.into() }, answer)
    }

    fn abandon(why: LoginEnd, answer: Result<Response, ClientError>) -> Expect {
        Expect::Ask(Request::LoginAbandon { id: ID.into(), why }, answer)
    }

    /// The first part of every wait that gets a pending request, after a public-key login
    /// (no prompts).
    fn pending_after_pubkey(secs: u64, how_long: &'static str) -> Vec<Expect> {
        vec![
            no_grant(),
            login_wait(None, secs, Ok(view(State::Pending))),
            Expect::Log(Severity::Notice, how_long),
            Expect::Prompt(
                "waiting for approval of abcdefghij by root or members of ops",
                None,
            ),
        ]
    }

    #[test]
    fn an_approved_login_proceeds_within_a_poll_of_the_approval() {
        let mut expected = pending_after_pubkey(
            30,
            "waiting up to 30s for approval of abcdefghij by root or members of ops",
        );
        expected.extend([
            status(Ok(view(State::Pending))),
            status(Ok(view(State::Active))),
            Expect::Log(
                Severity::Info,
                "allowed by grant abcdefghij (approved after 0.5 s",
            ),
            Expect::Tell("jit: approved: grant abcdefghij lets bob in until 2026-06-10T02:00:05Z"),
        ]);
        let script = Script::new(&items(), expected);
        let code = check(&script, &script, &script, &[c"wait=30s"]);
        assert_eq!(code, PamResultCode::PAM_SUCCESS);
        assert_eq!(script.now(), 2 * POLL);
    }

    #[test]
    fn a_denied_login_fails_with_who_denied_it_and_why() {
        let mut expected = pending_after_pubkey(30, "waiting up to 30s");
        expected.extend([
            status(Ok(view(State::Denied))),
            Expect::Log(Severity::Notice, "denied: request abcdefghij is denied"),
            Expect::Tell("jit: login request abcdefghij was denied by carol: not now"),
        ]);
        let script = Script::new(&items(), expected);
        let code = check(&script, &script, &script, &[c"wait=30s"]);
        assert_eq!(code, PamResultCode::PAM_PERM_DENIED);
    }

    /// Nobody decides: the login asks jitd to time the request out when its wait ends, and a
    /// jitd that is slow meanwhile only costs polls.
    #[test]
    fn an_undecided_login_fails_when_its_wait_ends_and_the_request_times_out() {
        let mut expected = pending_after_pubkey(1, "waiting up to 1s");
        expected.extend([
            status(Ok(view(State::Pending))),
            status(Err(ClientError::TimedOut(Duration::from_millis(1500)))),
            status(Ok(view(State::Pending))),
            status(Ok(Response::Error {
                code: ErrorCode::Busy,
                message: "later".into(),
            })),
            abandon(LoginEnd::TimedOut, Ok(view(State::TimedOut))),
            Expect::Log(
                Severity::Notice,
                "nobody decided on abcdefghij within 1s; the request timed out",
            ),
            Expect::Tell("nobody decided on login request abcdefghij within 1s; it timed out"),
        ]);
        let script = Script::new(&items(), expected);
        let code = check(&script, &script, &script, &[c"wait=1s"]);
        assert_eq!(code, PamResultCode::PAM_PERM_DENIED);
        assert_eq!(script.now(), Duration::from_secs(1));
    }

    /// Approved in the last moment of the wait: the approval wins.
    #[test]
    fn an_approval_that_beats_the_time_out_lets_the_login_in() {
        let mut expected = pending_after_pubkey(1, "waiting up to 1s");
        expected.extend((0..4).map(|_| status(Ok(view(State::Pending)))));
        expected.extend([
            abandon(LoginEnd::TimedOut, Ok(view(State::Active))),
            Expect::Log(Severity::Info, "approved as the wait ended"),
            Expect::Tell("jit: approved"),
        ]);
        let script = Script::new(&items(), expected);
        let code = check(&script, &script, &script, &[c"wait=1s"]);
        assert_eq!(code, PamResultCode::PAM_SUCCESS);
    }

    #[test]
    fn a_client_that_goes_away_cancels_the_request_at_the_next_poll() {
        let mut expected = pending_after_pubkey(30, "waiting up to 30s");
        expected.extend([
            status(Ok(view(State::Pending))),
            status(Ok(view(State::Pending))),
            abandon(LoginEnd::ClientGone, Ok(view(State::Cancelled))),
            Expect::Log(Severity::Notice, "the client went away while waiting for approval of abcdefghij; the request is cancelled"),
        ]);
        let script =
            Script::new(&items(), expected).with_client_gone_at(Some(Duration::from_millis(600)));
        let code = check(&script, &script, &script, &[c"wait=30s"]);
        assert_eq!(code, PamResultCode::PAM_PERM_DENIED);
        assert_eq!(script.now(), 3 * POLL);
    }

    /// With keyboard-interactive sshd lets the module ask: the role wants a reason, so the
    /// user is asked, and what they typed is what jitd gets. An automatic approval does not
    /// wait.
    #[test]
    fn the_reason_typed_at_the_prompt_is_the_requests_and_an_automatic_approval_does_not_wait() {
        let script = Script::new(
            &items(),
            vec![
                no_grant(),
                login_wait(
                    None,
                    120,
                    Ok(Response::ReasonWanted {
                        message: "a reason is asked for this SSH login (Enter for \"login from 10.201.0.2\")".into(),
                    }),
                ),
                Expect::Prompt("Enter for \"login from 10.201.0.2\")\nReason: ", Some("  INC-7 disk full \n")),
                login_wait(Some("INC-7 disk full"), 120, Ok(view(State::Active))),
                Expect::Log(Severity::Info, "allowed by grant abcdefghij (approved at once)"),
                Expect::Tell("jit: approved"),
            ],
        );
        let code = check(&script, &script, &script, &[c"wait=2m"]);
        assert_eq!(code, PamResultCode::PAM_SUCCESS);
        assert_eq!(script.now(), Duration::ZERO);
    }

    /// After a public-key login sshd cannot prompt in the account phase: the default reason.
    #[test]
    fn where_the_user_cannot_be_asked_the_default_reason_is_taken() {
        let script = Script::new(
            &items(),
            vec![
                no_grant(),
                login_wait(
                    None,
                    120,
                    Ok(Response::ReasonWanted {
                        message: "a reason is asked".into(),
                    }),
                ),
                Expect::Prompt("Reason: ", None),
                login_wait(Some(""), 120, Ok(view(State::Denied))),
                Expect::Log(Severity::Notice, "denied: request abcdefghij is denied"),
                Expect::Tell("denied by carol"),
            ],
        );
        let code = check(&script, &script, &script, &[c"wait=2m"]);
        assert_eq!(code, PamResultCode::PAM_PERM_DENIED);
    }

    /// Another login of the user waits already, or no role covers SSH for them: refused at
    /// once, saying why; jitd not answering is a refusal too, whatever fail= says (it answered
    /// the check a moment ago).
    #[test]
    fn a_login_that_cannot_ask_is_refused_at_once_and_never_let_through() {
        let already = Response::Error {
            code: ErrorCode::PolicyDenied,
            message: "bob is already waiting for approval of kkkkkkkkkk at another login".into(),
        };
        let script = Script::new(
            &items(),
            vec![
                no_grant(),
                login_wait(None, 30, Ok(already)),
                Expect::Log(
                    Severity::Notice,
                    "cannot ask for one: PolicyDenied: bob is already waiting",
                ),
                Expect::Tell("already waiting for approval of kkkkkkkkkk"),
            ],
        );
        let code = check(&script, &script, &script, &[c"wait=30s", c"fail=open"]);
        assert_eq!(code, PamResultCode::PAM_PERM_DENIED);
        drop(script);
        let gone = ClientError::NotRunning(
            PathBuf::from("/run/jitd/jitd.sock"),
            io::ErrorKind::ConnectionRefused.into(),
        );
        let script = Script::new(
            &items(),
            vec![
                no_grant(),
                login_wait(None, 30, Err(gone)),
                Expect::Log(Severity::Err, "cannot ask jitd for approval of this login"),
                Expect::Tell("not answering"),
            ],
        );
        let code = check(&script, &script, &script, &[c"wait=30s", c"fail=open"]);
        assert_eq!(code, PamResultCode::PAM_PERM_DENIED);
    }

    /// `wait=` is for SSH logins; in a stack sudo shares it changes nothing for sudo.
    #[test]
    fn sudo_never_waits() {
        let ctx = PamContext {
            user: "alice".into(),
            kind: GrantKind::Sudo,
            service: "sudo".into(),
            tty: None,
            rhost: None,
            ruser: Some("alice".into()),
        };
        let script = Script::new(
            &[
                (Item::Service, "sudo"),
                (Item::User, "alice"),
                (Item::Ruser, "alice"),
            ],
            vec![
                Expect::Ask(
                    Request::Check(ctx),
                    Ok(Response::Denied {
                        reason: "no grant".into(),
                    }),
                ),
                Expect::Log(Severity::Notice, "denied: no grant"),
                Expect::Tell("jit-elevate"),
            ],
        );
        let code = check(&script, &script, &script, &[c"wait=30s"]);
        assert_eq!(code, PamResultCode::PAM_PERM_DENIED);
    }

    #[test]
    fn hostile_text_from_jitd_cannot_rewrite_the_users_terminal() {
        let mut expected = pending_after_pubkey(30, "waiting up to 30s");
        let mut denied = view(State::Denied);
        if let Response::Request { request } = &mut denied {
            request.decisions[0].note = Some("no\x1b[2J\nroot ok".into());
        }
        expected.extend([
            status(Ok(denied)),
            Expect::Log(Severity::Notice, "denied"),
            Expect::Tell("denied by carol: no\\u{1b}[2J\\u{a}root ok"),
        ]);
        let script = Script::new(&items(), expected);
        let code = check(&script, &script, &script, &[c"wait=30s"]);
        assert_eq!(code, PamResultCode::PAM_PERM_DENIED);
    }

    #[test]
    fn a_long_reason_is_cut_where_jitd_would_refuse_it() {
        let long = "é".repeat(600);
        let cut = bounded_reason(&long);
        assert!(cut.len() <= MAX_REASON_BYTES && cut.len() > 990);
        assert_eq!(bounded_reason("  x \n"), "x");
    }
}
