//! pam_jit.so loaded by the real libpam in this process (pam_start_confdir with a private
//! config directory), talking to stand-ins for jitd over a real Unix socket.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;
use std::time::Duration;

use jit_proto::{GrantKind, PamContext, Request, Response};
use jit_tests::pam::*;
use jit_tests::{unique, Daemon, TempDir, TestGroup, TestUser};

const SERVICE: &str = "jit-test-libpam";

fn allowed(_: &Request) -> Response {
    Response::Allowed {
        grant_id: "g-allowed".into(),
    }
}

fn denied(_: &Request) -> Response {
    Response::Denied {
        reason: "no active grant".into(),
    }
}

fn registered(_: &Request) -> Response {
    Response::SessionRegistered {
        grant_id: Some("g-sess".into()),
        tlog_conf: None,
    }
}

#[test]
fn a_user_with_a_grant_passes_and_only_for_that_kind_of_access() {
    let jitd = Daemon::start();
    let alice = TestUser::create("jitlp");
    let sudo = ServiceDir::new(
        SERVICE,
        &format!("socket={} kind=sudo", jitd.socket().display()),
    );
    let ssh = ServiceDir::new(
        SERVICE,
        &format!("socket={} kind=ssh", jitd.socket().display()),
    );

    let mut pam = Pam::start(ssh.path(), SERVICE, &alice.name);
    assert_eq!(pam.acct_mgmt(), PAM_PERM_DENIED);

    let id = grant(&jitd, &alice.name, "2m", &["--ssh"]);
    let mut pam = Pam::start(ssh.path(), SERVICE, &alice.name);
    assert_eq!(pam.acct_mgmt(), PAM_SUCCESS);
    assert!(pam.messages().is_empty(), "{:?}", pam.messages());
    // An SSH grant is not sudo.
    let mut pam = Pam::start(sudo.path(), SERVICE, &alice.name);
    assert_eq!(pam.acct_mgmt(), PAM_PERM_DENIED);

    revoke(&jitd, &id);
    let mut pam = Pam::start(ssh.path(), SERVICE, &alice.name);
    assert_eq!(pam.acct_mgmt(), PAM_PERM_DENIED);
}

/// A sudo grant covers the command sudo runs; a `kind=sudo` service in a program that is not
/// sudo (this test, a misconfigured `su`) has no command to bind to, so it is refused.
#[test]
fn a_sudo_grant_opens_nothing_for_a_program_that_is_not_sudo() {
    let jitd = Daemon::start();
    let alice = TestUser::create("jitlp");
    let sudo = ServiceDir::new(
        SERVICE,
        &format!("socket={} kind=sudo", jitd.socket().display()),
    );
    grant(&jitd, &alice.name, "2m", &["--", "/usr/bin/id"]);
    let mut pam = Pam::start(sudo.path(), SERVICE, &alice.name);
    assert_eq!(pam.acct_mgmt(), PAM_PERM_DENIED);
    // What jitd answers such a caller (this test process is not sudo either).
    let client = jit_proto::Client::new(jitd.socket(), Duration::from_secs(5));
    let answer = client
        .call(Request::Check(PamContext {
            user: alice.name.clone(),
            kind: GrantKind::Sudo,
            service: SERVICE.into(),
            tty: None,
            rhost: None,
            ruser: None,
        }))
        .unwrap();
    let Response::Denied { reason } = answer else {
        panic!("expected a denial, got {answer:?}");
    };
    assert!(reason.contains("not sudo"), "{reason}");
}

#[test]
fn a_user_without_a_grant_is_denied_with_one_line_saying_what_to_run() {
    let jitd = Daemon::start();
    let bob = TestUser::create("jitlp");
    let conf = ServiceDir::new(
        SERVICE,
        &format!("socket={} kind=sudo", jitd.socket().display()),
    );
    let mut pam = Pam::start(conf.path(), SERVICE, &bob.name);
    assert_eq!(pam.acct_mgmt(), PAM_PERM_DENIED);
    let messages = pam.messages();
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert!(
        messages[0].contains("jit-elevate --reason \"why\" -- <command>"),
        "{messages:?}"
    );

    let conf = ServiceDir::new(
        SERVICE,
        &format!("socket={} kind=ssh", jitd.socket().display()),
    );
    let mut pam = Pam::start(conf.path(), SERVICE, &bob.name);
    assert_eq!(pam.acct_mgmt(), PAM_PERM_DENIED);
    assert!(pam.messages()[0].contains("jit-elevate --ssh --reason \"why\""));
    assert!(pam.messages()[0].contains(&format!("jitd grant {} --ssh", bob.name)));
}

/// What the daemon is told, seen by a stand-in that records the request.
#[test]
fn the_daemon_hears_who_asks_from_where() {
    let jitd = FakeJitd::answering(allowed);
    let conf = ServiceDir::new(
        SERVICE,
        &format!("socket={} kind=sudo", jitd.socket().display()),
    );
    let mut pam = Pam::start(conf.path(), SERVICE, "alice")
        .ruser("alice")
        .tty("/dev/pts/9")
        .rhost("192.0.2.7");
    assert_eq!(pam.acct_mgmt(), PAM_SUCCESS);
    let Request::Check(ctx) = &jitd.requests()[0] else {
        panic!("expected a check, got {:?}", jitd.requests());
    };
    assert_eq!(ctx.user, "alice");
    assert_eq!(ctx.kind, GrantKind::Sudo);
    assert_eq!(ctx.service, SERVICE);
    assert_eq!(ctx.tty.as_deref(), Some("/dev/pts/9"));
    assert_eq!(ctx.rhost.as_deref(), Some("192.0.2.7"));
    assert_eq!(ctx.ruser.as_deref(), Some("alice"));
}

#[test]
fn no_daemon_means_no_access() {
    let dir = TempDir::new("nodaemon");
    let conf = ServiceDir::new(
        SERVICE,
        &format!(
            "socket={} kind=sudo",
            dir.path().join("absent.sock").display()
        ),
    );
    let mut pam = Pam::start(conf.path(), SERVICE, "alice");
    assert_eq!(pam.acct_mgmt(), PAM_PERM_DENIED);
    assert!(
        pam.messages()[0].contains("not answering"),
        "{:?}",
        pam.messages()
    );
    assert_eq!(pam.open_session(), PAM_PERM_DENIED);
}

#[test]
fn a_stopped_daemon_is_denied_within_the_timeout() {
    let jitd = Daemon::start();
    jitd.signal(libc::SIGSTOP);
    let conf = ServiceDir::new(
        SERVICE,
        &format!(
            "socket={} kind=sudo timeout_ms=1000",
            jitd.socket().display()
        ),
    );
    let mut pam = Pam::start(conf.path(), SERVICE, "alice");
    let (code, took) = timed(|| pam.acct_mgmt());
    assert_eq!(code, PAM_PERM_DENIED);
    assert!(
        took >= Duration::from_millis(950),
        "gave up early: {took:?}"
    );
    // Other tests share this process: the upper bound tells a deadline kept from one
    // restarted or ignored (several timeouts in a row) with room for a loaded machine.
    assert!(
        took < Duration::from_millis(2500),
        "overran its deadline: {took:?}"
    );
}

#[test]
fn a_daemon_answering_garbage_is_not_trusted() {
    for garbage in [
        &b"HTTP/1.1 200 OK\r\n\r\n"[..],
        b"\x00\x00\x00\x02{}",
        b"\x00\x00\x00\x0bnot json!!!",
        b"\x00\x00",
    ] {
        let jitd = FakeJitd::raw(garbage);
        let conf = ServiceDir::new(
            SERVICE,
            &format!(
                "socket={} kind=sudo timeout_ms=500",
                jitd.socket().display()
            ),
        );
        let mut pam = Pam::start(conf.path(), SERVICE, "alice");
        let (code, took) = timed(|| pam.acct_mgmt());
        assert_eq!(code, PAM_PERM_DENIED, "garbage {garbage:?}");
        // Refused at once or at its deadline (500 ms), never waited on past it.
        assert!(took < Duration::from_secs(3), "{took:?}");
    }
}

#[test]
fn a_daemon_that_is_not_root_is_not_trusted_even_when_it_says_yes() {
    let impostor = PeerProcess::start(Some("nobody"));
    let conf = ServiceDir::new(
        SERVICE,
        &format!("socket={} kind=sudo", impostor.socket().display()),
    );
    let mut pam = Pam::start(conf.path(), SERVICE, "alice");
    assert_eq!(pam.acct_mgmt(), PAM_PERM_DENIED);

    // The same program run as root is believed: the peer's uid is what made the difference.
    let root_peer = PeerProcess::start(None);
    let conf = ServiceDir::new(
        SERVICE,
        &format!("socket={} kind=sudo", root_peer.socket().display()),
    );
    let mut pam = Pam::start(conf.path(), SERVICE, "alice");
    assert_eq!(pam.acct_mgmt(), PAM_SUCCESS);
}

#[test]
fn members_of_the_exempt_group_pass_without_a_daemon() {
    let dir = TempDir::new("exempt");
    let conf = ServiceDir::new(
        SERVICE,
        &format!(
            "socket={} kind=sudo exempt_group=root",
            dir.path().join("absent.sock").display()
        ),
    );
    // root is in group root: break-glass works with jitd down.
    let mut pam = Pam::start(conf.path(), SERVICE, "root");
    assert_eq!(pam.acct_mgmt(), PAM_SUCCESS);
    assert_eq!(pam.open_session(), PAM_SUCCESS);
    assert_eq!(pam.close_session(), PAM_SUCCESS);
    // nobody is not: denied.
    let mut pam = Pam::start(conf.path(), SERVICE, "nobody");
    assert_eq!(pam.acct_mgmt(), PAM_PERM_DENIED);
}

/// Break-glass through the real libpam and NSS, tier by tier: a member the group's entry lists
/// passes without jitd being asked; a member only through another entry of the group's gid
/// (what another NSS source looks like to that first test) passes once jitd refuses, or once
/// a hung jitd's `timeout_ms=` is over; someone outside the group never.
#[test]
fn break_glass_members_pass_when_jitd_refuses_or_hangs_and_others_never() {
    let breakglass = TestGroup::create("bg");
    let twin = TestGroup::create_sharing_gid("bg", &breakglass);
    let listed = TestUser::create("jitlp");
    breakglass.add(&listed);
    let unlisted = TestUser::create("jitlp");
    twin.add(&unlisted);
    let outsider = TestUser::create("jitlp");
    let checks = |jitd: &FakeJitd| {
        jitd.requests()
            .into_iter()
            .filter(|r| matches!(r, Request::Check(_)))
            .count()
    };

    let refusing = FakeJitd::answering(denied);
    let conf = ServiceDir::new(
        SERVICE,
        &format!(
            "socket={} kind=sudo exempt_group={}",
            refusing.socket().display(),
            breakglass.name
        ),
    );
    let mut pam = Pam::start(conf.path(), SERVICE, &listed.name);
    assert_eq!(pam.acct_mgmt(), PAM_SUCCESS);
    assert_eq!(
        checks(&refusing),
        0,
        "a listed member was checked against jitd"
    );
    let mut pam = Pam::start(conf.path(), SERVICE, &unlisted.name);
    assert_eq!(pam.acct_mgmt(), PAM_SUCCESS);
    assert_eq!(
        checks(&refusing),
        1,
        "jitd is asked before the full group test"
    );
    let mut pam = Pam::start(conf.path(), SERVICE, &outsider.name);
    assert_eq!(pam.acct_mgmt(), PAM_PERM_DENIED);

    let hung = Daemon::start();
    hung.signal(libc::SIGSTOP);
    let conf = ServiceDir::new(
        SERVICE,
        &format!(
            "socket={} kind=sudo timeout_ms=300 fail=open exempt_group={}",
            hung.socket().display(),
            breakglass.name
        ),
    );
    for member in [&listed, &unlisted] {
        let mut pam = Pam::start(conf.path(), SERVICE, &member.name);
        assert_eq!(pam.acct_mgmt(), PAM_SUCCESS, "{}", member.name);
    }
    let mut pam = Pam::start(conf.path(), SERVICE, &outsider.name);
    assert_eq!(pam.acct_mgmt(), PAM_PERM_DENIED);
    hung.signal(libc::SIGCONT);
}

#[test]
fn fail_open_lets_users_in_when_the_daemon_is_down_but_not_when_it_says_no() {
    let dir = TempDir::new("failopen");
    let conf = ServiceDir::new(
        SERVICE,
        &format!(
            "socket={} kind=sudo fail=open",
            dir.path().join("absent.sock").display()
        ),
    );
    let mut pam = Pam::start(conf.path(), SERVICE, "alice");
    assert_eq!(pam.acct_mgmt(), PAM_SUCCESS);
    assert_eq!(pam.open_session(), PAM_SUCCESS);

    // A running jitd that says no is obeyed: fail=open is about outages only.
    let jitd = Daemon::start();
    let conf = ServiceDir::new(
        SERVICE,
        &format!("socket={} kind=sudo fail=open", jitd.socket().display()),
    );
    let mut pam = Pam::start(conf.path(), SERVICE, "root");
    assert_eq!(pam.acct_mgmt(), PAM_PERM_DENIED);
}

/// Anyone can make jitd slow; slow is not down. A stopped (SIGSTOP) jitd that never answers
/// within the deadline is refused even with fail=open.
#[test]
fn fail_open_does_not_open_for_a_daemon_that_is_there_but_slow() {
    let jitd = Daemon::start();
    jitd.signal(libc::SIGSTOP);
    let conf = ServiceDir::new(
        SERVICE,
        &format!(
            "socket={} kind=ssh fail=open timeout_ms=300",
            jitd.socket().display()
        ),
    );
    let mut pam = Pam::start(conf.path(), SERVICE, "alice");
    let code = pam.acct_mgmt();
    let session = pam.open_session();
    jitd.signal(libc::SIGCONT);
    assert_eq!(code, PAM_PERM_DENIED);
    assert_eq!(session, PAM_PERM_DENIED);
}

#[test]
fn a_typo_in_the_module_arguments_denies() {
    let jitd = FakeJitd::answering(allowed);
    for args in [
        "fail=opne",
        "timeout_ms=0",
        "kind=root",
        "exempt-group=root",
        "socket=rel",
    ] {
        let conf = ServiceDir::new(
            SERVICE,
            &format!("socket={} kind=sudo {args}", jitd.socket().display()),
        );
        let mut pam = Pam::start(conf.path(), SERVICE, "alice");
        assert_eq!(pam.acct_mgmt(), PAM_PERM_DENIED, "{args}");
        assert_eq!(pam.open_session(), PAM_PERM_DENIED, "{args}");
    }
    assert!(
        jitd.requests().is_empty(),
        "a misconfigured module asked jitd"
    );
}

#[test]
fn a_service_with_no_known_kind_is_denied() {
    let jitd = FakeJitd::answering(allowed);
    let conf = ServiceDir::new(SERVICE, &format!("socket={}", jitd.socket().display()));
    let mut pam = Pam::start(conf.path(), SERVICE, "alice");
    assert_eq!(pam.acct_mgmt(), PAM_PERM_DENIED);
    assert!(jitd.requests().is_empty());
}

#[test]
fn sessions_are_registered_and_deregistered_with_pid_and_both_users() {
    let jitd = FakeJitd::answering(registered);
    let conf = ServiceDir::new(
        SERVICE,
        &format!("socket={} kind=sudo", jitd.socket().display()),
    );
    // sudo's session phase: PAM_USER is the target, PAM_RUSER the invoking user.
    let mut pam = Pam::start(conf.path(), SERVICE, "root").ruser("alice");
    assert_eq!(pam.open_session(), PAM_SUCCESS);
    assert_eq!(pam.close_session(), PAM_SUCCESS);
    let requests = jitd.requests();
    let (Request::OpenSession(open), Request::CloseSession(close)) = (&requests[0], &requests[1])
    else {
        panic!("expected open then close, got {requests:?}");
    };
    assert_eq!(open.pid, std::process::id());
    assert_eq!(open.pam.user, "root");
    assert_eq!(open.pam.ruser.as_deref(), Some("alice"));
    assert_eq!(open, close);
}

#[test]
fn a_session_jitd_refuses_does_not_open() {
    let jitd = FakeJitd::answering(denied);
    let conf = ServiceDir::new(
        SERVICE,
        &format!("socket={} kind=sudo fail=open", jitd.socket().display()),
    );
    let mut pam = Pam::start(conf.path(), SERVICE, "root").ruser("alice");
    assert_eq!(pam.open_session(), PAM_PERM_DENIED);
}

#[test]
fn the_module_exports_only_the_pam_hooks() {
    let out = Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(module_path())
        .output()
        .expect("run nm (binutils)");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let symbols: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .collect();
    assert!(symbols.contains(&"pam_sm_acct_mgmt"), "{symbols:?}");
    assert!(symbols.contains(&"pam_sm_open_session"), "{symbols:?}");
    assert!(
        symbols.iter().all(|s| s.starts_with("pam_sm_")),
        "unexpected exports: {symbols:?}"
    );
}

/// sshd and sudo are C programs: every library pam_jit.so needs that they do not already load
/// is loaded and unloaded again in each PAM transaction. libgcc_s alone cost ~140 µs per
/// transaction before the module linked its unwinder statically (pam_jit/build.rs).
#[test]
fn the_module_needs_no_library_sshd_and_sudo_do_not_already_load() {
    let out = Command::new("readelf")
        .arg("-d")
        .arg(module_path())
        .output()
        .expect("run readelf (binutils)");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let needed: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| l.split('[').nth(1)?.split(']').next())
        .collect();
    assert!(needed.contains(&"libpam.so.0"), "{needed:?}");
    for lib in &needed {
        assert!(
            ["libpam.so.0", "libc.so.6"].contains(lib) || lib.starts_with("ld-linux"),
            "pam_jit.so needs {lib}: {needed:?}"
        );
    }
}

#[test]
fn denials_reach_syslog_authpriv_with_service_user_and_reason_escaped() {
    let dir = TempDir::new("syslog-test");
    let service = unique("jit-test-syslog");
    let _pam = PlacedFile::write(
        format!("/etc/pam.d/{service}"),
        &format!(
            "account required {} socket={} kind=ssh\n",
            module_path().display(),
            dir.path().join("absent.sock").display()
        ),
        0o644,
    );
    let (out, syslog) = pamtester_with_syslog(&[
        "-I",
        "rhost=evil\nFAKE: accepted",
        &service,
        "nobody",
        "acct_mgmt",
    ]);
    assert!(!out.status.success(), "pamtester: {out:?}");
    assert_eq!(syslog.len(), 1, "{syslog:?}");
    let line = &syslog[0];
    // <83>: facility authpriv (10 << 3) + LOG_ERR (3).
    assert!(line.starts_with("<83>"), "{line}");
    assert!(
        line.contains(&format!("pam_jit({service}:account): user=nobody")),
        "{line}"
    );
    assert!(line.contains("rhost=evil\\u{a}FAKE: accepted"), "{line}");
    assert!(
        line.contains("denied (fail=closed): cannot reach jitd"),
        "{line}"
    );
}
