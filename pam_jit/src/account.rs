//! pam_sm_acct_mgmt: does the user hold an active grant for this access? For sshd, an SSH
//! grant; under sudo, a grant for exactly the command sudo is about to run (jitd reads it from
//! the sudo process itself), held by the invoking user.
//!
//! The gate is in the account phase because sshd skips the auth stack for public-key logins
//! and sudo runs the account stack even with NOPASSWD or cached credentials.

use std::ffi::CStr;

use jit_proto::{PassKind, PassReport, Request};
use pam::constants::PamResultCode;

use crate::args::FailMode;
use crate::context::{Context, Phase};
use crate::daemon::Daemon;
use crate::deny_message;
use crate::host::{Host, Severity};
use crate::login_wait::{self, Outcome};
use crate::reply::{classify, Reply};
use crate::waiting::Waiting;

pub fn check<H: Host, D: Daemon, W: Waiting>(
    host: &H,
    daemon: &D,
    waiting: &W,
    raw_args: &[&CStr],
) -> PamResultCode {
    let Some(cx) = Context::prepare(host, Phase::Account, raw_args) else {
        host.tell_user(&deny_message::misconfigured());
        return PamResultCode::PAM_PERM_DENIED;
    };
    if exempt(host, daemon, &cx) {
        return PamResultCode::PAM_SUCCESS;
    }
    cx.log(host, Severity::Debug, "asking jitd");
    let answer = daemon.ask(
        &cx.args.socket,
        cx.args.timeout,
        Request::Check(cx.pam.clone()),
    );
    match classify(answer) {
        Reply::Allowed { grant_id } => {
            cx.log(
                host,
                Severity::Info,
                &format!("allowed by grant {grant_id}"),
            );
            PamResultCode::PAM_SUCCESS
        }
        Reply::Refused(reason) => {
            // `wait=`: an SSH login asks for the grant it lacks and waits for the decision.
            // (sudo has jit-elevate; a `wait=` in a stack sudo shares is ignored there.)
            if let (Some(wait), jit_proto::GrantKind::Ssh) = (cx.args.wait, cx.kind()) {
                cx.log(
                    host,
                    Severity::Debug,
                    &format!("{reason}: asking for approval"),
                );
                return match login_wait::run(host, daemon, waiting, &cx, wait) {
                    Outcome::Granted => PamResultCode::PAM_SUCCESS,
                    Outcome::Refused => PamResultCode::PAM_PERM_DENIED,
                };
            }
            cx.log(host, Severity::Notice, &format!("denied: {reason}"));
            host.tell_user(&deny_message::no_grant(cx.kind(), cx.grant_holder()));
            PamResultCode::PAM_PERM_DENIED
        }
        Reply::Registered { .. } => trouble(
            host,
            &cx,
            "jitd answered a check with a session registration",
        ),
        Reply::Unavailable(why) => trouble(host, &cx, &why),
        Reply::Trouble(why) => {
            // Slow or busy is not "down": fail=open must not open because someone flooded
            // jitd, so this denies whatever the fail mode.
            cx.log(
                host,
                Severity::Err,
                &format!("denied: jitd is running but gave no usable answer (fail= does not apply): {why}"),
            );
            host.tell_user(&deny_message::unavailable());
            PamResultCode::PAM_PERM_DENIED
        }
    }
}

/// Members of `exempt_group` pass without asking jitd, so break-glass works with jitd down.
/// jitd is told at once, without waiting (it records the pass for review and alerts); when it
/// cannot be told, it reads the log line back later. The key in both lets it record one pass.
fn exempt<H: Host, D: Daemon>(host: &H, daemon: &D, cx: &Context) -> bool {
    let Some(group) = &cx.args.exempt_group else {
        return false;
    };
    match host.user_in_group(cx.grant_holder(), group) {
        Ok(true) => {
            let key = host.pass_key();
            cx.log(
                host,
                Severity::Notice,
                &format!("pass={key} allowed without a grant: member of exempt group {group}"),
            );
            let command = match cx.kind() {
                jit_proto::GrantKind::Sudo => host.own_command_line(),
                jit_proto::GrantKind::Ssh => None,
            };
            let report = Request::Passed(PassReport {
                pam: cx.pam.clone(),
                how: PassKind::Exempt,
                key,
                command,
            });
            if let Err(e) = daemon.report(&cx.args.socket, report) {
                cx.log(
                    host,
                    Severity::Debug,
                    &format!("jitd not told of the pass ({e}); it reads this log line later"),
                );
            }
            true
        }
        Ok(false) => false,
        Err(e) => {
            cx.log(
                host,
                Severity::Err,
                &format!("cannot check membership of exempt group {group}: {e}; treating as not a member"),
            );
            false
        }
    }
}

fn trouble<H: Host>(host: &H, cx: &Context, why: &str) -> PamResultCode {
    match cx.args.fail {
        FailMode::Closed => {
            cx.log(host, Severity::Err, &format!("denied (fail=closed): {why}"));
            host.tell_user(&deny_message::unavailable());
            PamResultCode::PAM_PERM_DENIED
        }
        FailMode::Open => {
            // jitd cannot be told now (that is why this opens): it reads this line back.
            cx.log(
                host,
                Severity::Alert,
                &format!(
                    "pass={} ALLOWED WITHOUT A GRANT (fail=open): {why}",
                    host.pass_key()
                ),
            );
            PamResultCode::PAM_SUCCESS
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::path::PathBuf;
    use std::time::Duration;

    use jit_proto::{ClientError, ErrorCode, GrantKind, PamContext, Response};

    use super::*;
    use crate::host::Item;
    use crate::script::{Expect, Script};

    fn sudo_items() -> Vec<(Item, &'static str)> {
        vec![
            (Item::Service, "sudo"),
            (Item::User, "alice"),
            (Item::Ruser, "alice"),
            (Item::Tty, "/dev/pts/3"),
        ]
    }

    fn alice_sudo() -> PamContext {
        PamContext {
            user: "alice".into(),
            kind: GrantKind::Sudo,
            service: "sudo".into(),
            tty: Some("/dev/pts/3".into()),
            rhost: None,
            ruser: Some("alice".into()),
        }
    }

    fn not_running() -> ClientError {
        ClientError::NotRunning(
            PathBuf::from("/run/jitd/jitd.sock"),
            io::ErrorKind::NotFound.into(),
        )
    }

    #[test]
    fn alice_with_an_active_sudo_grant_is_let_through() {
        let script = Script::new(
            &sudo_items(),
            vec![
                Expect::Ask(
                    Request::Check(alice_sudo()),
                    Ok(Response::Allowed {
                        grant_id: "g1".into(),
                    }),
                ),
                Expect::Log(Severity::Info, "allowed by grant g1"),
            ],
        );
        assert_eq!(
            check(&script, &script, &script, &[]),
            PamResultCode::PAM_SUCCESS
        );
        assert_eq!(
            script.asked_with.borrow()[0],
            (
                PathBuf::from(jit_proto::DEFAULT_SOCKET),
                Duration::from_millis(1500)
            )
        );
    }

    #[test]
    fn alice_without_a_grant_is_denied_and_told_how_to_ask() {
        let script = Script::new(
            &sudo_items(),
            vec![
                Expect::Ask(
                    Request::Check(alice_sudo()),
                    Ok(Response::Denied { reason: "no active grant".into() }),
                ),
                Expect::Log(Severity::Notice, "user=alice ruser=alice rhost=- tty=/dev/pts/3 kind=sudo: denied: no active grant"),
                Expect::Tell("jit-elevate --reason \"why\" -- <command>"),
            ],
        );
        assert_eq!(
            check(&script, &script, &script, &[]),
            PamResultCode::PAM_PERM_DENIED
        );
    }

    #[test]
    fn an_ssh_login_asks_for_an_ssh_grant_with_the_remote_host() {
        let ctx = PamContext {
            user: "bob".into(),
            kind: GrantKind::Ssh,
            service: "sshd".into(),
            tty: Some("ssh".into()),
            rhost: Some("10.201.0.2".into()),
            ruser: None,
        };
        let script = Script::new(
            &[
                (Item::Service, "sshd"),
                (Item::User, "bob"),
                (Item::Tty, "ssh"),
                (Item::Rhost, "10.201.0.2"),
            ],
            vec![
                Expect::Ask(
                    Request::Check(ctx),
                    Ok(Response::Denied {
                        reason: "none".into(),
                    }),
                ),
                Expect::Log(Severity::Notice, "denied"),
                Expect::Tell("jitd grant bob --ssh"),
            ],
        );
        assert_eq!(
            check(&script, &script, &script, &[]),
            PamResultCode::PAM_PERM_DENIED
        );
    }

    #[test]
    fn kind_argument_overrides_the_service_name() {
        let mut ctx = alice_sudo();
        ctx.service = "jit-test-sshd".into();
        ctx.kind = GrantKind::Ssh;
        let script = Script::new(
            &[
                (Item::Service, "jit-test-sshd"),
                (Item::User, "alice"),
                (Item::Ruser, "alice"),
                (Item::Tty, "/dev/pts/3"),
            ],
            vec![
                Expect::Ask(
                    Request::Check(ctx),
                    Ok(Response::Allowed {
                        grant_id: "g2".into(),
                    }),
                ),
                Expect::Log(Severity::Info, "allowed"),
            ],
        );
        assert_eq!(
            check(&script, &script, &script, &[c"kind=ssh"]),
            PamResultCode::PAM_SUCCESS
        );
    }

    #[test]
    fn an_unknown_service_without_kind_is_denied_without_asking() {
        let script = Script::new(
            &[(Item::Service, "login"), (Item::User, "alice")],
            vec![
                Expect::Log(Severity::Err, "add kind=ssh or kind=sudo"),
                Expect::Tell("misconfigured"),
            ],
        );
        assert_eq!(
            check(&script, &script, &script, &[]),
            PamResultCode::PAM_PERM_DENIED
        );
    }

    #[test]
    fn a_typo_in_the_arguments_denies() {
        let script = Script::new(
            &sudo_items(),
            vec![
                Expect::Log(Severity::Err, "unknown or malformed argument \"fail=opne\""),
                Expect::Tell("misconfigured"),
            ],
        );
        assert_eq!(
            check(&script, &script, &script, &[c"fail=opne"]),
            PamResultCode::PAM_PERM_DENIED
        );
    }

    #[test]
    fn a_missing_or_unreadable_user_denies() {
        let script = Script::new(
            &[(Item::Service, "sudo")],
            vec![
                Expect::Log(Severity::Err, "User is not set"),
                Expect::Tell("misconfigured"),
            ],
        );
        assert_eq!(
            check(&script, &script, &script, &[]),
            PamResultCode::PAM_PERM_DENIED
        );
        drop(script);
        let script = Script::new(
            &[(Item::Service, "sudo")],
            vec![
                Expect::Log(Severity::Err, "not UTF-8"),
                Expect::Tell("misconfigured"),
            ],
        )
        .with_item_error(Item::User, "not UTF-8");
        assert_eq!(
            check(&script, &script, &script, &[]),
            PamResultCode::PAM_PERM_DENIED
        );
    }

    #[test]
    fn an_unreachable_daemon_denies_by_default() {
        let script = Script::new(
            &sudo_items(),
            vec![
                Expect::Ask(Request::Check(alice_sudo()), Err(not_running())),
                Expect::Log(Severity::Err, "denied (fail=closed): cannot reach jitd"),
                Expect::Tell("not answering"),
            ],
        );
        assert_eq!(
            check(&script, &script, &script, &[]),
            PamResultCode::PAM_PERM_DENIED
        );
    }

    #[test]
    fn fail_open_allows_an_unreachable_daemon_loudly() {
        let script = Script::new(
            &sudo_items(),
            vec![
                Expect::Ask(Request::Check(alice_sudo()), Err(not_running())),
                Expect::Log(Severity::Alert, "ALLOWED WITHOUT A GRANT (fail=open)"),
            ],
        );
        let code = check(
            &script,
            &script,
            &script,
            &[c"fail=open", c"timeout_ms=200"],
        );
        assert_eq!(code, PamResultCode::PAM_SUCCESS);
        assert_eq!(script.asked_with.borrow()[0].1, Duration::from_millis(200));
    }

    /// Any local user can make jitd slow (a flood of requests); fail=open is for a daemon
    /// that is not there, so a slow or busy one still means no.
    #[test]
    fn fail_open_does_not_open_for_a_slow_or_busy_daemon() {
        for answer in [
            Err(ClientError::TimedOut(Duration::from_millis(200))),
            Ok(Response::Error {
                code: ErrorCode::Busy,
                message: "too many connections".into(),
            }),
            Ok(Response::Error {
                code: ErrorCode::Unavailable,
                message: "audit log cannot be written".into(),
            }),
        ] {
            let script = Script::new(
                &sudo_items(),
                vec![
                    Expect::Ask(Request::Check(alice_sudo()), answer),
                    Expect::Log(Severity::Err, "fail= does not apply"),
                    Expect::Tell("not answering"),
                ],
            );
            let code = check(
                &script,
                &script,
                &script,
                &[c"fail=open", c"timeout_ms=200"],
            );
            assert_eq!(code, PamResultCode::PAM_PERM_DENIED);
        }
    }

    #[test]
    fn fail_open_never_overrides_a_refusal() {
        let script = Script::new(
            &sudo_items(),
            vec![
                Expect::Ask(
                    Request::Check(alice_sudo()),
                    Ok(Response::Error {
                        code: ErrorCode::Forbidden,
                        message: "root only".into(),
                    }),
                ),
                Expect::Log(Severity::Notice, "denied: Forbidden"),
                Expect::Tell("no active sudo grant"),
            ],
        );
        assert_eq!(
            check(&script, &script, &script, &[c"fail=open"]),
            PamResultCode::PAM_PERM_DENIED
        );
    }

    #[test]
    fn an_untrusted_or_confused_daemon_is_trouble() {
        for answer in [
            Err(ClientError::UntrustedPeer(1000)),
            Ok(Response::SessionRegistered {
                grant_id: None,
                tlog_conf: None,
            }),
            Ok(Response::Requests {
                requests: vec![],
                omitted: 0,
            }),
        ] {
            let script = Script::new(
                &sudo_items(),
                vec![
                    Expect::Ask(Request::Check(alice_sudo()), answer),
                    Expect::Log(Severity::Err, "denied"),
                    Expect::Tell("not answering"),
                ],
            );
            assert_eq!(
                check(&script, &script, &script, &[]),
                PamResultCode::PAM_PERM_DENIED
            );
        }
    }

    #[test]
    fn a_break_glass_member_passes_without_asking_jitd() {
        let script = Script::new(
            &sudo_items(),
            vec![
                Expect::InGroup {
                    user: "alice",
                    group: "breakglass",
                    answer: Ok(true),
                },
                Expect::Log(
                    Severity::Notice,
                    "pass=k1 allowed without a grant: member of exempt group breakglass",
                ),
                Expect::Report(
                    Request::Passed(PassReport {
                        pam: alice_sudo(),
                        how: PassKind::Exempt,
                        key: "k1".into(),
                        command: Some(vec!["sudo".into(), "/usr/bin/id".into()]),
                    }),
                    Ok(()),
                ),
            ],
        );
        let code = check(&script, &script, &script, &[c"exempt_group=breakglass"]);
        assert_eq!(code, PamResultCode::PAM_SUCCESS);
    }

    /// jitd down: the pass still goes through (break-glass is for exactly that), and its log
    /// line, which jitd reads back later, carries the key.
    #[test]
    fn a_break_glass_member_passes_when_jitd_cannot_be_told() {
        let script = Script::new(
            &sudo_items(),
            vec![
                Expect::InGroup {
                    user: "alice",
                    group: "breakglass",
                    answer: Ok(true),
                },
                Expect::Log(Severity::Notice, "pass=k1 allowed without a grant"),
                Expect::Report(
                    Request::Passed(PassReport {
                        pam: alice_sudo(),
                        how: PassKind::Exempt,
                        key: "k1".into(),
                        command: Some(vec!["sudo".into(), "/usr/bin/id".into()]),
                    }),
                    Err(not_running()),
                ),
            ],
        );
        let code = check(&script, &script, &script, &[c"exempt_group=breakglass"]);
        assert_eq!(code, PamResultCode::PAM_SUCCESS);
    }

    /// With `Defaults rootpw` (or targetpw, runaspw) sudo's account phase has PAM_USER =
    /// root; the invoking user is PAM_RUSER. An exempt root must not exempt alice.
    #[test]
    fn under_rootpw_the_invoking_user_not_root_is_checked_for_the_exempt_group() {
        let mut ctx = alice_sudo();
        ctx.user = "root".into();
        let script = Script::new(
            &[
                (Item::Service, "sudo"),
                (Item::User, "root"),
                (Item::Ruser, "alice"),
                (Item::Tty, "/dev/pts/3"),
            ],
            vec![
                Expect::InGroup {
                    user: "alice",
                    group: "breakglass",
                    answer: Ok(false),
                },
                Expect::Ask(
                    Request::Check(ctx),
                    Ok(Response::Denied {
                        reason: "alice holds no active sudo grant".into(),
                    }),
                ),
                Expect::Log(Severity::Notice, "denied"),
                Expect::Tell("jit-elevate"),
            ],
        );
        let code = check(&script, &script, &script, &[c"exempt_group=breakglass"]);
        assert_eq!(code, PamResultCode::PAM_PERM_DENIED);
    }

    #[test]
    fn a_non_member_or_a_failed_lookup_still_needs_a_grant() {
        for (answer, log) in [
            (Ok(false), None),
            (
                Err("no such group".to_string()),
                Some("cannot check membership"),
            ),
        ] {
            let mut expected = vec![Expect::InGroup {
                user: "alice",
                group: "breakglass",
                answer,
            }];
            if let Some(text) = log {
                expected.push(Expect::Log(Severity::Err, text));
            }
            expected.push(Expect::Ask(
                Request::Check(alice_sudo()),
                Ok(Response::Denied {
                    reason: "no grant".into(),
                }),
            ));
            expected.push(Expect::Log(Severity::Notice, "denied"));
            expected.push(Expect::Tell("jit-elevate"));
            let script = Script::new(&sudo_items(), expected);
            let code = check(&script, &script, &script, &[c"exempt_group=breakglass"]);
            assert_eq!(code, PamResultCode::PAM_PERM_DENIED);
        }
    }

    #[test]
    fn debug_logs_the_question_and_hostile_items_are_escaped_in_logs() {
        let mut ctx = alice_sudo();
        ctx.tty = Some("/dev/pts/3\nFAKE LOG LINE".into());
        let script = Script::new(
            &[
                (Item::Service, "sudo"),
                (Item::User, "alice"),
                (Item::Ruser, "alice"),
                (Item::Tty, "/dev/pts/3\nFAKE LOG LINE"),
            ],
            vec![
                Expect::Log(Severity::Debug, "tty=/dev/pts/3\\u{a}FAKE LOG LINE"),
                Expect::Ask(
                    Request::Check(ctx),
                    Ok(Response::Allowed {
                        grant_id: "g".into(),
                    }),
                ),
                Expect::Log(Severity::Info, "allowed"),
            ],
        );
        assert_eq!(
            check(&script, &script, &script, &[c"debug"]),
            PamResultCode::PAM_SUCCESS
        );
    }
}
