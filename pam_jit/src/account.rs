//! pam_sm_acct_mgmt: does the user hold an active grant for this access? For sshd, an SSH
//! grant; under sudo, a grant for exactly the command sudo is about to run (jitd reads it from
//! the sudo process itself), held by the invoking user.
//!
//! The gate is in the account phase because sshd skips the auth stack for public-key logins
//! and sudo runs the account stack even with NOPASSWD or cached credentials.
//!
//! Break-glass (`exempt_group=`) in three tiers, so that a user with a grant never pays for
//! the full NSS group lookup (on Debian's `group: files systemd` it costs more than asking
//! jitd): a cheap test that is certain when it says yes (primary group, or the group's member
//! list) passes a member before jitd is asked; otherwise jitd is asked, and its yes is
//! enough; only when jitd says no or cannot answer does the full test (getgrouplist) run,
//! and a member passes. A non-member gets what they would without `exempt_group=`.

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
    if let Some(group) = listed_in_exempt_group(host, &cx) {
        return exempt_pass(host, daemon, &cx, group);
    }
    cx.log(host, Severity::Debug, "asking jitd");
    let answer = daemon.ask(
        &cx.args.socket,
        cx.args.timeout,
        Request::Check(cx.pam.clone()),
    );
    let reply = classify(answer);
    // jitd did not let this through (a refusal, or no usable answer): only now the full
    // membership test, which on a stock Debian costs more than asking jitd, so a member of
    // the exempt group through any NSS source still passes — before `wait=` would make them
    // ask for a grant, and whatever `fail=` says.
    if !matches!(reply, Reply::Allowed { .. }) {
        if let Some(group) = member_of_exempt_group(host, &cx) {
            return exempt_pass(host, daemon, &cx, group);
        }
    }
    match reply {
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

/// The first, cheap test for break-glass, before jitd is asked: the grant holder's primary
/// group is `exempt_group`, or the group's entry lists them. Certain when it says yes, so a
/// listed member passes without jitd, fast, whether jitd is up, down or hung. A "no" (or a
/// failed lookup) proves nothing: jitd is asked, and the full test follows if it says no.
fn listed_in_exempt_group<'a, H: Host>(host: &H, cx: &'a Context) -> Option<&'a str> {
    let group = cx.args.exempt_group.as_deref()?;
    match host.user_listed_in_group(cx.grant_holder(), group) {
        Ok(true) => Some(group),
        Ok(false) => None,
        Err(e) => {
            cx.log(
                host,
                Severity::Debug,
                &format!("exempt group {group} not read from the entries ({e}); asking jitd"),
            );
            None
        }
    }
}

/// The full test for break-glass (every NSS source: sssd, LDAP, systemd's userdb), once jitd
/// has not let the access through. A failed lookup is "not a member": it never opens.
fn member_of_exempt_group<'a, H: Host>(host: &H, cx: &'a Context) -> Option<&'a str> {
    let group = cx.args.exempt_group.as_deref()?;
    match host.user_in_group(cx.grant_holder(), group) {
        Ok(true) => Some(group),
        Ok(false) => None,
        Err(e) => {
            cx.log(
                host,
                Severity::Err,
                &format!("cannot check membership of exempt group {group}: {e}; treating as not a member"),
            );
            None
        }
    }
}

/// Members of `exempt_group` pass without a grant, so break-glass works with jitd down.
/// jitd is told at once, without waiting (it records the pass for review and alerts); when it
/// cannot be told, it reads the log line back later. The key in both lets it record one pass.
fn exempt_pass<H: Host, D: Daemon>(
    host: &H,
    daemon: &D,
    cx: &Context,
    group: &str,
) -> PamResultCode {
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
    PamResultCode::PAM_SUCCESS
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

    fn listed(answer: Result<bool, String>) -> Expect {
        Expect::Listed {
            user: "alice",
            group: "breakglass",
            answer,
        }
    }

    fn in_group(answer: Result<bool, String>) -> Expect {
        Expect::InGroup {
            user: "alice",
            group: "breakglass",
            answer,
        }
    }

    /// The exempt pass of alice under sudo: its log line (which jitd reads back) and its
    /// report to jitd, which goes as `told`.
    fn alice_passes(told: Result<(), ClientError>) -> [Expect; 2] {
        [
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
                told,
            ),
        ]
    }

    const EXEMPT: &[&CStr] = &[c"exempt_group=breakglass"];

    /// Tier one: a member by the user's own entries (primary group, or the group's member
    /// list: what a break-glass group in /etc/group is) passes before jitd is asked.
    #[test]
    fn a_listed_break_glass_member_passes_without_asking_jitd() {
        let mut expected = vec![listed(Ok(true))];
        expected.extend(alice_passes(Ok(())));
        let script = Script::new(&sudo_items(), expected);
        assert_eq!(
            check(&script, &script, &script, EXEMPT),
            PamResultCode::PAM_SUCCESS
        );
    }

    /// jitd down: the pass still goes through (break-glass is for exactly that), and its log
    /// line, which jitd reads back later, carries the key.
    #[test]
    fn a_listed_break_glass_member_passes_when_jitd_cannot_be_told() {
        let mut expected = vec![listed(Ok(true))];
        expected.extend(alice_passes(Err(not_running())));
        let script = Script::new(&sudo_items(), expected);
        assert_eq!(
            check(&script, &script, &script, EXEMPT),
            PamResultCode::PAM_SUCCESS
        );
    }

    /// Tier two: not listed, so jitd is asked; its yes is enough, and the expensive full
    /// membership test is never made (a member through another NSS source who also holds a
    /// grant is recorded as using the grant).
    #[test]
    fn an_unlisted_user_with_a_grant_is_let_through_without_the_full_group_test() {
        let script = Script::new(
            &sudo_items(),
            vec![
                listed(Ok(false)),
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
            check(&script, &script, &script, EXEMPT),
            PamResultCode::PAM_SUCCESS
        );
    }

    /// Tier three: a member only through another NSS source (sssd, LDAP, systemd's userdb)
    /// is found by the full test once jitd has said no, or cannot answer at all — down
    /// (fast) or hung (after `timeout_ms=`) — and passes as break-glass, reported as such.
    #[test]
    fn a_member_through_another_source_passes_when_jitd_refuses_is_down_or_hung() {
        for answer in [
            Ok(Response::Denied {
                reason: "no active sudo grant".into(),
            }),
            Err(not_running()),
            Err(ClientError::TimedOut(Duration::from_millis(1500))),
            Ok(Response::Error {
                code: ErrorCode::Busy,
                message: "too many connections".into(),
            }),
        ] {
            let mut expected = vec![
                listed(Ok(false)),
                Expect::Ask(Request::Check(alice_sudo()), answer),
                in_group(Ok(true)),
            ];
            expected.extend(alice_passes(Ok(())));
            let script = Script::new(&sudo_items(), expected);
            assert_eq!(
                check(&script, &script, &script, EXEMPT),
                PamResultCode::PAM_SUCCESS
            );
        }
    }

    /// A non-member gets exactly what they would get without `exempt_group=`: jitd's no, a
    /// closed door when jitd is down, and no door when it is hung even under fail=open.
    #[test]
    fn a_non_member_never_passes_as_break_glass() {
        let refused = Script::new(
            &sudo_items(),
            vec![
                listed(Ok(false)),
                Expect::Ask(
                    Request::Check(alice_sudo()),
                    Ok(Response::Denied {
                        reason: "no grant".into(),
                    }),
                ),
                in_group(Ok(false)),
                Expect::Log(Severity::Notice, "denied: no grant"),
                Expect::Tell("jit-elevate"),
            ],
        );
        assert_eq!(
            check(
                &refused,
                &refused,
                &refused,
                &[c"exempt_group=breakglass", c"fail=open"]
            ),
            PamResultCode::PAM_PERM_DENIED
        );
        drop(refused);
        let down = Script::new(
            &sudo_items(),
            vec![
                listed(Ok(false)),
                Expect::Ask(Request::Check(alice_sudo()), Err(not_running())),
                in_group(Ok(false)),
                Expect::Log(Severity::Err, "denied (fail=closed): cannot reach jitd"),
                Expect::Tell("not answering"),
            ],
        );
        assert_eq!(
            check(&down, &down, &down, EXEMPT),
            PamResultCode::PAM_PERM_DENIED
        );
        drop(down);
        let hung = Script::new(
            &sudo_items(),
            vec![
                listed(Ok(false)),
                Expect::Ask(
                    Request::Check(alice_sudo()),
                    Err(ClientError::TimedOut(Duration::from_millis(200))),
                ),
                in_group(Ok(false)),
                Expect::Log(Severity::Err, "fail= does not apply"),
                Expect::Tell("not answering"),
            ],
        );
        assert_eq!(
            check(
                &hung,
                &hung,
                &hung,
                &[c"exempt_group=breakglass", c"fail=open", c"timeout_ms=200"]
            ),
            PamResultCode::PAM_PERM_DENIED
        );
    }

    /// fail=open still opens for a non-member when jitd is down, loudly and as fail-open,
    /// not as break-glass.
    #[test]
    fn fail_open_for_a_non_member_is_not_a_break_glass_pass() {
        let script = Script::new(
            &sudo_items(),
            vec![
                listed(Ok(false)),
                Expect::Ask(Request::Check(alice_sudo()), Err(not_running())),
                in_group(Ok(false)),
                Expect::Log(Severity::Alert, "ALLOWED WITHOUT A GRANT (fail=open)"),
            ],
        );
        assert_eq!(
            check(
                &script,
                &script,
                &script,
                &[c"exempt_group=breakglass", c"fail=open"]
            ),
            PamResultCode::PAM_SUCCESS
        );
    }

    /// Lookups that fail open nothing: a failed cheap test only means jitd is asked, a failed
    /// full test means "not a member" (logged), and the refusal stands.
    #[test]
    fn failed_group_lookups_still_need_a_grant() {
        let script = Script::new(
            &sudo_items(),
            vec![
                listed(Err("no such group \"breakglass\"".into())),
                Expect::Log(
                    Severity::Debug,
                    "exempt group breakglass not read from the entries",
                ),
                Expect::Log(Severity::Debug, "asking jitd"),
                Expect::Ask(
                    Request::Check(alice_sudo()),
                    Ok(Response::Denied {
                        reason: "no grant".into(),
                    }),
                ),
                in_group(Err("no such group \"breakglass\"".into())),
                Expect::Log(
                    Severity::Err,
                    "cannot check membership of exempt group breakglass: no such group",
                ),
                Expect::Log(Severity::Notice, "denied: no grant"),
                Expect::Tell("jit-elevate"),
            ],
        );
        assert_eq!(
            check(
                &script,
                &script,
                &script,
                &[c"exempt_group=breakglass", c"debug"]
            ),
            PamResultCode::PAM_PERM_DENIED
        );
    }

    /// With `Defaults rootpw` (or targetpw, runaspw) sudo's account phase has PAM_USER =
    /// root; the invoking user is PAM_RUSER. An exempt root must not exempt alice, in either
    /// test.
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
                listed(Ok(false)),
                Expect::Ask(
                    Request::Check(ctx),
                    Ok(Response::Denied {
                        reason: "alice holds no active sudo grant".into(),
                    }),
                ),
                in_group(Ok(false)),
                Expect::Log(Severity::Notice, "denied"),
                Expect::Tell("jit-elevate"),
            ],
        );
        let code = check(&script, &script, &script, EXEMPT);
        assert_eq!(code, PamResultCode::PAM_PERM_DENIED);
    }

    /// `wait=`: a member found by the full test passes as break-glass instead of being made
    /// to ask for a grant and wait; a non-member goes on to ask.
    #[test]
    fn wait_sends_non_members_to_ask_and_lets_members_through() {
        let bob = PamContext {
            user: "bob".into(),
            kind: GrantKind::Ssh,
            service: "sshd".into(),
            tty: Some("ssh".into()),
            rhost: Some("10.201.0.2".into()),
            ruser: None,
        };
        let items = [
            (Item::Service, "sshd"),
            (Item::User, "bob"),
            (Item::Tty, "ssh"),
            (Item::Rhost, "10.201.0.2"),
        ];
        let args = [c"exempt_group=breakglass", c"wait=30s"];
        let no_grant = || {
            Expect::Ask(
                Request::Check(bob.clone()),
                Ok(Response::Denied {
                    reason: "bob holds no active ssh grant".into(),
                }),
            )
        };
        let bob_listed = |answer| Expect::Listed {
            user: "bob",
            group: "breakglass",
            answer,
        };
        let bob_in_group = |answer| Expect::InGroup {
            user: "bob",
            group: "breakglass",
            answer,
        };
        let member = Script::new(
            &items,
            vec![
                bob_listed(Ok(false)),
                no_grant(),
                bob_in_group(Ok(true)),
                Expect::Log(Severity::Notice, "pass=k1 allowed without a grant"),
                Expect::Report(
                    Request::Passed(PassReport {
                        pam: bob.clone(),
                        how: PassKind::Exempt,
                        key: "k1".into(),
                        command: None,
                    }),
                    Ok(()),
                ),
            ],
        );
        assert_eq!(
            check(&member, &member, &member, &args),
            PamResultCode::PAM_SUCCESS
        );
        drop(member);
        let other = Script::new(
            &items,
            vec![
                bob_listed(Ok(false)),
                no_grant(),
                bob_in_group(Ok(false)),
                Expect::Ask(
                    Request::LoginWait(jit_proto::LoginWait {
                        pam: bob.clone(),
                        reason: None,
                        wait_secs: 30,
                    }),
                    Err(not_running()),
                ),
                Expect::Log(Severity::Err, "cannot ask jitd for approval of this login"),
                Expect::Tell("not answering"),
            ],
        );
        assert_eq!(
            check(&other, &other, &other, &args),
            PamResultCode::PAM_PERM_DENIED
        );
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
