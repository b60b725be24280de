//! Real OpenSSH consults pam_jit in the account phase: a public-key login needs an SSH grant.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Output;
use std::time::Duration;

use jit_tests::pam::*;
use jit_tests::sshd::*;

fn assert_logged_in(out: &Output) {
    assert!(out.status.success(), "login failed: {out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "logged-in");
}

fn assert_turned_away(sshd: &Sshd, user: &User, out: &Output) {
    assert!(!out.status.success(), "login succeeded: {out:?}");
    let denial = format!(
        "Access denied for user {} by PAM account configuration",
        user.name
    );
    // sshd writes the line as the connection ends; give it a moment.
    for _ in 0..50 {
        if sshd.log().contains(&denial) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("sshd did not log {denial:?}:\n{}", sshd.log());
}

#[test]
fn an_ssh_login_needs_an_ssh_grant_and_ends_with_its_revocation() {
    let jitd = Jitd::start();
    let erin = User::create("jitsh");
    let sshd = Sshd::start(&erin, &jitd.socket(), None);

    let out = sshd.login(&erin, None);
    assert_turned_away(&sshd, &erin, &out);

    // A sudo grant is not an SSH login.
    let sudo_grant = jitd.grant(&erin.name, "2m", &["--", "/usr/bin/id"]);
    assert!(!sshd.login(&erin, None).status.success());
    jitd.revoke(&sudo_grant);

    let id = jitd.grant(&erin.name, "2m", &["--ssh"]);
    assert_logged_in(&sshd.login(&erin, None));

    jitd.revoke(&id);
    let out = sshd.login(&erin, None);
    assert!(
        !out.status.success(),
        "login after revoke succeeded: {out:?}"
    );
}

#[test]
fn a_login_from_another_host_is_recorded_with_its_address() {
    let jitd = Jitd::start();
    let frank = User::create("jitsh");
    let net = NetnsPair::create();
    let sshd = Sshd::start(&frank, &jitd.socket(), Some(&net));

    let out = sshd.login(&frank, Some(&net));
    assert_turned_away(&sshd, &frank, &out);

    let id = jitd.grant(&frank.name, "2m", &["--ssh"]);
    let mut session = sshd
        .ssh(&frank, Some(&net), &["sleep", "3"])
        .spawn()
        .unwrap();
    let view = jitd.wait_for(&id, Duration::from_secs(5), |v| !v.sessions.is_empty());
    let recorded = &view.sessions[0];
    assert_eq!(recorded.rhost.as_deref(), Some(NetnsPair::CLIENT_ADDR));
    assert_eq!(recorded.user, frank.name);
    assert_eq!(recorded.service, sshd.service);
    assert!(session.wait().unwrap().success());
    jitd.wait_for(&id, Duration::from_secs(5), |v| v.sessions.is_empty());

    jitd.revoke(&id);
    assert!(!sshd.login(&frank, Some(&net)).status.success());
}
