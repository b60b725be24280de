//! pam_sm_open_session / pam_sm_close_session: register the session with jitd so it can end
//! the session when its grant closes, and deregister it at the end.
//!
//! Policy. Open: a registered session succeeds; a refusal from jitd (no grant covers the
//! session) fails ([`REFUSED`]) whatever `fail=` says, except for members of
//! `exempt_group` (break-glass), so a skipped account check gains nothing; when jitd cannot answer, `fail=closed` fails the session so that no
//! session runs unregistered (jitd could not end it), except for members of `exempt_group`,
//! whose break-glass access must survive a dead daemon; `fail=open` lets it run and logs at
//! LOG_ALERT. Close: never blocks a logout; problems are logged and PAM_SUCCESS returned.

use std::ffi::CStr;

use jit_proto::{Request, SessionInfo};
use pam::constants::PamResultCode;

use crate::args::FailMode;
use crate::context::{Context, Phase};
use crate::daemon::Daemon;
use crate::deny_message;
use crate::host::{Host, Severity};
use crate::process::Origin;
use crate::reply::{classify, Reply};

/// What a refused session returns. Not PAM_SESSION_ERR: sudo treats that one as non-fatal
/// and runs the command anyway (plugins/sudoers/auth/pam.c); any other failure ends sudo, and
/// sshd ends the connection on every failure of pam_open_session.
pub const REFUSED: PamResultCode = PamResultCode::PAM_PERM_DENIED;

/// Where tlog-rec-session reads its settings from (over its configuration files).
const TLOG_CONF_ENV: &str = "TLOG_REC_SESSION_CONF_TEXT";

pub fn open<H: Host, D: Daemon>(
    host: &H,
    daemon: &D,
    raw_args: &[&CStr],
    origin: Origin,
) -> PamResultCode {
    let Some(cx) = Context::prepare(host, Phase::OpenSession, raw_args) else {
        host.tell_user(&deny_message::misconfigured());
        return REFUSED;
    };
    let answer = daemon.ask(
        &cx.args.socket,
        cx.args.timeout,
        Request::OpenSession(info(&cx, origin)),
    );
    match classify(answer) {
        Reply::Registered {
            grant_id,
            tlog_conf,
        } => {
            let under = grant_id.as_deref().unwrap_or("no grant");
            // The recorder (the holder's login shell now) runs the session unrecorded
            // without its settings: a recorded session that cannot have them does not run.
            if let Some(conf) = tlog_conf {
                if !host.put_env(TLOG_CONF_ENV, &conf) {
                    cx.log(
                        host,
                        Severity::Err,
                        &format!("session refused: cannot set {TLOG_CONF_ENV} for its recording"),
                    );
                    host.tell_user(&deny_message::unavailable());
                    return REFUSED;
                }
            }
            cx.log(
                host,
                Severity::Info,
                &format!("session {} registered under {under}", origin.pid),
            );
            PamResultCode::PAM_SUCCESS
        }
        Reply::Refused(reason) => {
            if exempt(host, &cx).is_some() {
                cx.log(
                    host,
                    Severity::Notice,
                    &format!(
                        "session without a grant allowed: member of the exempt group ({reason})"
                    ),
                );
                return PamResultCode::PAM_SUCCESS;
            }
            cx.log(
                host,
                Severity::Notice,
                &format!("session refused: {reason}"),
            );
            host.tell_user(&deny_message::no_grant(cx.kind(), cx.grant_holder()));
            REFUSED
        }
        Reply::Allowed { .. } => open_trouble(
            host,
            &cx,
            "jitd answered a session with a check result",
            FailMode::Closed,
        ),
        Reply::Unavailable(why) => open_trouble(host, &cx, &why, cx.args.fail),
        // A running but slow or busy jitd: fail=open does not apply (see account.rs).
        Reply::Trouble(why) => open_trouble(host, &cx, &why, FailMode::Closed),
    }
}

pub fn close<H: Host, D: Daemon>(
    host: &H,
    daemon: &D,
    raw_args: &[&CStr],
    origin: Origin,
) -> PamResultCode {
    let Some(cx) = Context::prepare(host, Phase::CloseSession, raw_args) else {
        return PamResultCode::PAM_SESSION_ERR;
    };
    let answer = daemon.ask(
        &cx.args.socket,
        cx.args.timeout,
        Request::CloseSession(info(&cx, origin)),
    );
    match classify(answer) {
        Reply::Registered { .. } => cx.log(host, Severity::Debug, "session deregistered"),
        Reply::Refused(why) | Reply::Unavailable(why) | Reply::Trouble(why) => cx.log(
            host,
            Severity::Warning,
            &format!("session {} not deregistered: {why}", origin.pid),
        ),
        Reply::Allowed { .. } => cx.log(
            host,
            Severity::Warning,
            "session not deregistered: jitd answered with a check result",
        ),
    }
    PamResultCode::PAM_SUCCESS
}

fn info(cx: &Context, origin: Origin) -> SessionInfo {
    SessionInfo {
        pam: cx.pam.clone(),
        pid: origin.pid,
        audit_session: origin.audit_session,
    }
}

/// Whether the grant holder is in `exempt_group` (break-glass), asked only once jitd has not
/// registered the session: the cheap test first (primary group, or the group's member list:
/// certain when it says yes), the full NSS lookup only when it does not. An unreadable group
/// is "no". The group, when the holder is in it.
fn exempt<'a, H: Host>(host: &H, cx: &'a Context) -> Option<&'a str> {
    let group = cx.args.exempt_group.as_deref()?;
    let holder = cx.grant_holder();
    let member = matches!(host.user_listed_in_group(holder, group), Ok(true))
        || matches!(host.user_in_group(holder, group), Ok(true));
    member.then_some(group)
}

fn open_trouble<H: Host>(host: &H, cx: &Context, why: &str, fail: FailMode) -> PamResultCode {
    if let Some(group) = exempt(host, cx) {
        cx.log(
            host,
            Severity::Warning,
            &format!("session not registered, allowed for exempt group {group}: {why}"),
        );
        return PamResultCode::PAM_SUCCESS;
    }
    match fail {
        FailMode::Closed => {
            cx.log(host, Severity::Err, &format!("session refused: {why}"));
            host.tell_user(&deny_message::unavailable());
            REFUSED
        }
        FailMode::Open => {
            cx.log(
                host,
                Severity::Alert,
                &format!("SESSION RUNS UNREGISTERED (fail=open): {why}"),
            );
            PamResultCode::PAM_SUCCESS
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::path::PathBuf;

    use jit_proto::{ClientError, ErrorCode, GrantKind, PamContext, Response};

    use super::*;
    use crate::host::Item;
    use crate::script::{Expect, Script};

    const ORIGIN: Origin = Origin {
        pid: 4242,
        audit_session: Some(7),
    };

    /// sudo's session phase: PAM_USER is the target, PAM_RUSER the invoking user.
    fn sudo_session_items() -> Vec<(Item, &'static str)> {
        vec![
            (Item::Service, "sudo"),
            (Item::User, "root"),
            (Item::Ruser, "alice"),
        ]
    }

    fn sudo_session() -> SessionInfo {
        SessionInfo {
            pam: PamContext {
                user: "root".into(),
                kind: GrantKind::Sudo,
                service: "sudo".into(),
                tty: None,
                rhost: None,
                ruser: Some("alice".into()),
            },
            pid: 4242,
            audit_session: Some(7),
        }
    }

    fn down() -> ClientError {
        ClientError::NotRunning(PathBuf::from("/x"), io::ErrorKind::ConnectionRefused.into())
    }

    #[test]
    fn a_refused_session_is_not_the_code_sudo_shrugs_off() {
        // sudo runs the command anyway after PAM_SESSION_ERR.
        assert_ne!(REFUSED, PamResultCode::PAM_SESSION_ERR);
        assert_ne!(REFUSED, PamResultCode::PAM_SUCCESS);
    }

    #[test]
    fn a_sudo_session_is_registered_with_target_and_invoking_user() {
        let script = Script::new(
            &sudo_session_items(),
            vec![
                Expect::Ask(
                    Request::OpenSession(sudo_session()),
                    Ok(Response::SessionRegistered {
                        grant_id: Some("g1".into()),
                        tlog_conf: None,
                    }),
                ),
                Expect::Log(Severity::Info, "session 4242 registered under g1"),
            ],
        );
        assert_eq!(
            open(&script, &script, &[], ORIGIN),
            PamResultCode::PAM_SUCCESS
        );
    }

    #[test]
    fn a_recorded_session_gets_its_recorder_settings_or_does_not_run() {
        for works in [true, false] {
            let mut expected = vec![
                Expect::Ask(
                    Request::OpenSession(sudo_session()),
                    Ok(Response::SessionRegistered {
                        grant_id: Some("g1".into()),
                        tlog_conf: Some("{\"writer\":\"file\"}".into()),
                    }),
                ),
                Expect::PutEnv(TLOG_CONF_ENV, "{\"writer\":\"file\"}".into(), works),
            ];
            if works {
                expected.push(Expect::Log(Severity::Info, "registered under g1"));
            } else {
                expected.push(Expect::Log(
                    Severity::Err,
                    "cannot set TLOG_REC_SESSION_CONF_TEXT",
                ));
                expected.push(Expect::Tell("not answering"));
            }
            let script = Script::new(&sudo_session_items(), expected);
            let want = if works {
                PamResultCode::PAM_SUCCESS
            } else {
                REFUSED
            };
            // fail=open changes nothing: the daemon answered.
            assert_eq!(
                open(&script, &script, &[c"fail=open"], ORIGIN),
                want,
                "works={works}"
            );
        }
    }

    #[test]
    fn a_session_jitd_refuses_does_not_start_even_with_fail_open() {
        let script = Script::new(
            &sudo_session_items(),
            vec![
                Expect::Ask(
                    Request::OpenSession(sudo_session()),
                    Ok(Response::Error {
                        code: ErrorCode::PolicyDenied,
                        message: "no grant".into(),
                    }),
                ),
                Expect::Log(Severity::Notice, "session refused"),
                Expect::Tell("alice has no active sudo grant"),
            ],
        );
        let code = open(&script, &script, &[c"fail=open"], ORIGIN);
        assert_eq!(code, REFUSED);
    }

    /// Listed in the group's entry, a member through another NSS source, or not a member.
    #[test]
    fn a_session_no_grant_covers_is_refused_unless_the_invoker_is_break_glass() {
        for (listed, in_group, code) in [
            (false, Some(false), REFUSED),
            (true, None, PamResultCode::PAM_SUCCESS),
            (false, Some(true), PamResultCode::PAM_SUCCESS),
        ] {
            let mut expected = vec![
                Expect::Ask(
                    Request::OpenSession(sudo_session()),
                    Ok(Response::Denied {
                        reason: "alice holds no active sudo grant".into(),
                    }),
                ),
                // The invoking user is asked about, never the target (root).
                Expect::Listed {
                    user: "alice",
                    group: "breakglass",
                    answer: Ok(listed),
                },
            ];
            // The full lookup only when the cheap test did not say yes.
            if let Some(answer) = in_group {
                expected.push(Expect::InGroup {
                    user: "alice",
                    group: "breakglass",
                    answer: Ok(answer),
                });
            }
            let member = listed || in_group == Some(true);
            if member {
                expected.push(Expect::Log(Severity::Notice, "member of the exempt group"));
            } else {
                expected.push(Expect::Log(Severity::Notice, "session refused"));
                expected.push(Expect::Tell("alice has no active sudo grant"));
            }
            let script = Script::new(&sudo_session_items(), expected);
            let got = open(&script, &script, &[c"exempt_group=breakglass"], ORIGIN);
            assert_eq!(got, code, "listed={listed} in_group={in_group:?}");
        }
    }

    #[test]
    fn an_unregistrable_session_fails_closed() {
        let script = Script::new(
            &sudo_session_items(),
            vec![
                Expect::Ask(Request::OpenSession(sudo_session()), Err(down())),
                Expect::Log(Severity::Err, "session refused"),
                Expect::Tell("not answering"),
            ],
        );
        assert_eq!(open(&script, &script, &[], ORIGIN), REFUSED);
    }

    #[test]
    fn fail_open_lets_an_unregistered_session_run_loudly() {
        let script = Script::new(
            &sudo_session_items(),
            vec![
                Expect::Ask(Request::OpenSession(sudo_session()), Err(down())),
                Expect::Log(Severity::Alert, "SESSION RUNS UNREGISTERED"),
            ],
        );
        let code = open(&script, &script, &[c"fail=open"], ORIGIN);
        assert_eq!(code, PamResultCode::PAM_SUCCESS);
    }

    #[test]
    fn fail_open_does_not_run_a_session_past_a_slow_daemon() {
        let script = Script::new(
            &sudo_session_items(),
            vec![
                Expect::Ask(
                    Request::OpenSession(sudo_session()),
                    Err(ClientError::TimedOut(std::time::Duration::from_millis(200))),
                ),
                Expect::Log(Severity::Err, "session refused"),
                Expect::Tell("not answering"),
            ],
        );
        assert_eq!(open(&script, &script, &[c"fail=open"], ORIGIN), REFUSED);
    }

    #[test]
    fn break_glass_survives_a_dead_daemon_in_the_session_phase_too() {
        let script = Script::new(
            &sudo_session_items(),
            vec![
                Expect::Ask(Request::OpenSession(sudo_session()), Err(down())),
                // The invoking user, not root, is checked.
                Expect::Listed {
                    user: "alice",
                    group: "breakglass",
                    answer: Ok(true),
                },
                Expect::Log(Severity::Warning, "allowed for exempt group breakglass"),
            ],
        );
        let code = open(&script, &script, &[c"exempt_group=breakglass"], ORIGIN);
        assert_eq!(code, PamResultCode::PAM_SUCCESS);
    }

    #[test]
    fn bad_arguments_fail_the_session() {
        let script = Script::new(
            &sudo_session_items(),
            vec![
                Expect::Log(Severity::Err, "bad module arguments"),
                Expect::Tell("misconfigured"),
            ],
        );
        assert_eq!(open(&script, &script, &[c"bogus"], ORIGIN), REFUSED);
        drop(script);
        let script = Script::new(
            &sudo_session_items(),
            vec![Expect::Log(Severity::Err, "bad module arguments")],
        );
        assert_eq!(
            close(&script, &script, &[c"bogus"], ORIGIN),
            PamResultCode::PAM_SESSION_ERR
        );
    }

    #[test]
    fn closing_deregisters_and_never_blocks_a_logout() {
        let script = Script::new(
            &sudo_session_items(),
            vec![Expect::Ask(
                Request::CloseSession(sudo_session()),
                Ok(Response::SessionRegistered {
                    grant_id: Some("g1".into()),
                    tlog_conf: None,
                }),
            )],
        );
        assert_eq!(
            close(&script, &script, &[], ORIGIN),
            PamResultCode::PAM_SUCCESS
        );
        drop(script);
        let script = Script::new(
            &sudo_session_items(),
            vec![
                Expect::Ask(Request::CloseSession(sudo_session()), Err(down())),
                Expect::Log(Severity::Warning, "session 4242 not deregistered"),
            ],
        );
        assert_eq!(
            close(&script, &script, &[], ORIGIN),
            PamResultCode::PAM_SUCCESS
        );
    }
}
