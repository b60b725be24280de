//! The gate cannot be skipped or widened. Each test is an attack from the security review,
//! told as the attacker would try it, against real sudo, real libpam (Debian's own
//! common-account included) and a real jitd. The users here hold standing sudoers rules
//! (`NOPASSWD: ALL`), as many real users do: pam_jit alone stands between them and root.
//! jitd runs with the capabilities its systemd unit leaves it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use jit_proto::State;
use jit_tests::pam::*;
use jit_tests::{workspace_root, Daemon, TempDir, TestGroup, TestUser};

/// How the account include is placed in Debian's /etc/pam.d/sudo.
#[derive(Clone, Copy, PartialEq)]
enum Wiring {
    /// What `jit-pam-setup enable sudo` writes today.
    JitPamSetup,
    /// What it wrote before: after the last account line (`@include common-account`).
    AfterCommonAccount,
}

/// A user with a standing `NOPASSWD: ALL` rule whose sudo goes through a copy of this host's
/// /etc/pam.d/sudo wired with pam_jit. Everything is removed on drop.
struct StandingUser {
    user: TestUser,
    _files: Vec<PlacedFile>,
}

impl StandingUser {
    fn new(user: TestUser, socket: &Path, wiring: Wiring, args: &str, defaults: &str) -> Self {
        let service = format!("jit-test-{}", user.name);
        let module = module_path();
        let line = |kind: &str| {
            format!(
                "{kind} required {} socket={} kind=sudo {args}\n",
                module.display(),
                socket.display()
            )
        };
        let stack = match wiring {
            Wiring::JitPamSetup => jit_pam_setup_wires_sudo(),
            Wiring::AfterCommonAccount => {
                let debian = std::fs::read_to_string("/etc/pam.d/sudo").unwrap();
                assert!(debian.contains("@include common-account"), "{debian}");
                debian
                    .replace(
                        "@include common-account",
                        "@include common-account\n@include jit-account",
                    )
                    .replace(
                        "@include common-session-noninteractive",
                        "@include common-session-noninteractive\n@include jit-session",
                    )
            }
        };
        let stack = stack
            .replace(
                "@include jit-account",
                &format!("@include {service}-account"),
            )
            .replace(
                "@include jit-session",
                &format!("@include {service}-session"),
            );
        let files = vec![
            PlacedFile::write(
                format!("/etc/pam.d/{service}-account"),
                &line("account"),
                0o644,
            ),
            PlacedFile::write(
                format!("/etc/pam.d/{service}-session"),
                &line("session"),
                0o644,
            ),
            PlacedFile::write(format!("/etc/pam.d/{service}"), &stack, 0o644),
            // The drop-in's name has no dot, or sudo's #includedir would skip it.
            PlacedFile::write(
                format!("/etc/sudoers.d/jit_test_{}", user.name),
                &format!(
                    "Defaults:{u} pam_service={service}, pam_login_service={service}\n{defaults}{u} ALL=(ALL:ALL) NOPASSWD: ALL\n",
                    u = user.name
                ),
                0o440,
            ),
        ];
        let check = Command::new("visudo")
            .arg("-cf")
            .arg(&files[3].0)
            .output()
            .unwrap();
        assert!(check.status.success(), "{check:?}");
        StandingUser {
            user,
            _files: files,
        }
    }

    fn simple(socket: &Path) -> Self {
        Self::new(
            TestUser::create("jitgate"),
            socket,
            Wiring::JitPamSetup,
            "",
            "",
        )
    }

    fn run(&self, program: &str, args: &[&str]) -> Output {
        Command::new("runuser")
            .args(["-u", &self.user.name, "--", program])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn sudo(&self, args: &[&str]) -> Output {
        let mut all = vec!["-n"];
        all.extend_from_slice(args);
        self.run("sudo", &all)
    }
}

/// Debian's /etc/pam.d/sudo as `jit-pam-setup enable sudo` leaves it (run on a copy).
fn jit_pam_setup_wires_sudo() -> String {
    let dir = TempDir::new("pam-setup");
    std::fs::copy("/etc/pam.d/sudo", dir.path().join("sudo")).unwrap();
    std::fs::write(dir.path().join("jit-account"), "").unwrap();
    std::fs::write(dir.path().join("jit-session"), "").unwrap();
    let out = Command::new(workspace_root().join("packaging/jit-pam-setup"))
        .args(["enable", "sudo", "--force"])
        .env("JIT_PAM_DIR", dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "jit-pam-setup: {out:?}");
    std::fs::read_to_string(dir.path().join("sudo")).unwrap()
}

fn assert_root(out: &Output) {
    assert!(out.status.success(), "sudo failed: {out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("uid=0(root)"),
        "{out:?}"
    );
}

fn assert_refused(out: &Output, what: &str) {
    assert!(!out.status.success(), "{what}: sudo succeeded: {out:?}");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("uid=0"),
        "{what}: ran as root: {out:?}"
    );
}

fn expire_password(user: &TestUser) {
    let out = Command::new("chage")
        .args(["-d", "0", &user.name])
        .output()
        .unwrap();
    assert!(out.status.success(), "chage: {out:?}");
}

#[test]
fn an_expired_password_does_not_let_a_standing_rule_skip_the_gate() {
    let jitd = Daemon::start_as_unit("");

    // The hole, shown: wired after common-account, the expired password ends the account
    // stack (new_authtok_reqd=done) before pam_jit, and sudo ignores that for NOPASSWD. The
    // account check never runs; only the session check still stops it.
    let old = StandingUser::new(
        TestUser::create("jitexp"),
        &jitd.socket(),
        Wiring::AfterCommonAccount,
        "",
        "",
    );
    expire_password(&old.user);
    let out = old.sudo(&["/usr/bin/id"]);
    assert_refused(&out, "old wiring");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("PAM account management error") && stderr.contains("pam_open_session"),
        "the account check was skipped, the session check refused: {stderr}"
    );

    // Wired by jit-pam-setup, nothing comes before pam_jit: no grant, no root.
    let alice = StandingUser::new(
        TestUser::create("jitexp"),
        &jitd.socket(),
        Wiring::JitPamSetup,
        "",
        "",
    );
    expire_password(&alice.user);
    let out = alice.sudo(&["/usr/bin/id"]);
    assert_refused(&out, "expired password, no grant");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("PAM account management error"),
        "{out:?}"
    );

    // With a grant the same user gets exactly that command.
    grant(&jitd, &alice.user.name, "2m", &["--", "/usr/bin/id"]);
    assert_root(&alice.sudo(&["/usr/bin/id"]));
}

#[test]
fn a_grant_for_one_command_does_not_open_the_users_standing_rules() {
    let jitd = Daemon::start_as_unit("");
    let alice = StandingUser::simple(&jitd.socket());
    grant(&jitd, &alice.user.name, "2m", &["--", "/usr/bin/id", "-u"]);

    let out = alice.sudo(&["/usr/bin/id", "-u"]);
    assert!(out.status.success(), "the granted command: {out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0");

    for attempt in [
        vec!["/usr/bin/id"],
        vec!["/usr/bin/id", "-u", "-n"],
        vec!["/bin/bash", "-c", "id"],
        vec!["-s", "/usr/bin/id", "-u"],
        vec!["-i", "/usr/bin/id", "-u"],
        vec!["-s"],
        vec!["-E", "/usr/bin/id", "-u"],
        vec!["-u", "nobody", "/usr/bin/id", "-u"],
        vec!["id", "-u"],
    ] {
        let out = alice.sudo(&attempt);
        assert_refused(&out, &attempt.join(" "));
        assert!(
            !String::from_utf8_lossy(&out.stdout).trim().eq("0"),
            "{attempt:?} ran as root: {out:?}"
        );
    }
    let out = alice.run("sudoedit", &["-n", "/etc/hostname"]);
    assert!(!out.status.success(), "sudoedit: {out:?}");
}

#[test]
fn under_rootpw_the_invoking_user_needs_the_grant_and_an_exempt_root_exempts_nobody() {
    let jitd = Daemon::start_as_unit("");
    // root is a break-glass member, as docs/pam.md recommends.
    let breakglass = TestGroup::create("jitbg");
    let added = Command::new("gpasswd")
        .args(["-a", "root", &breakglass.name])
        .output()
        .unwrap();
    assert!(added.status.success(), "{added:?}");
    let user = TestUser::create("jitrpw");
    let name = user.name.clone();
    let mallory = StandingUser::new(
        user,
        &jitd.socket(),
        Wiring::JitPamSetup,
        &format!("exempt_group={}", breakglass.name),
        &format!("Defaults:{name} rootpw\n"),
    );

    assert_refused(&mallory.sudo(&["/usr/bin/id"]), "rootpw, no grant");
    grant(&jitd, &mallory.user.name, "2m", &["--", "/usr/bin/id"]);
    assert_root(&mallory.sudo(&["/usr/bin/id"]));
}

#[test]
fn skipping_the_account_check_gains_nothing_the_session_needs_a_grant_too() {
    let jitd = Daemon::start_as_unit("");
    let user = TestUser::create("jitnoacct");
    let name = user.name.clone();
    let eve = StandingUser::new(
        user,
        &jitd.socket(),
        Wiring::JitPamSetup,
        "",
        &format!("Defaults:{name} !pam_acct_mgmt\n"),
    );
    assert_refused(&eve.sudo(&["/usr/bin/id"]), "no account check, no grant");
    grant(&jitd, &name, "2m", &["--", "/usr/bin/id"]);
    assert_root(&eve.sudo(&["/usr/bin/id"]));
}

/// sudo runs the account check, then opens the session; a grant can end in between. Many
/// sudo runs started around the deadline: whichever got in must be ended with the grant.
#[test]
fn a_sudo_racing_the_end_of_its_grant_never_outlives_it() {
    let jitd = Daemon::start_as_unit("kill_grace = \"1s\"");
    let alice = StandingUser::simple(&jitd.socket());
    // A unique argument names this test's processes among everything on the machine.
    let seconds = format!("{}", 86_000 + (std::process::id() % 400));
    // The command and the sudo running it, both root.
    let marker = format!("(sudo -n )?/usr/bin/sleep {seconds}");
    let id = grant(
        &jitd,
        &alice.user.name,
        "3s",
        &["--", "/usr/bin/sleep", &seconds],
    );
    let view = wait_for_view(&jitd, &id, Duration::from_secs(5), |v| {
        v.state == State::Active
    });
    let expires = view.expires_at.clone().expect("an active grant has an end");
    let expires = chrono_like_secs(&expires);

    // From 700 ms before the end to 500 ms after it, a sudo every 20 ms.
    let mut children = Vec::new();
    while unix_now() < expires - 0.7 {
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut seen_running = 0;
    while unix_now() < expires + 0.5 {
        if unix_now() < expires - 0.1 {
            seen_running = seen_running.max(pids_running(&marker).len());
        }
        children.push(
            Command::new("runuser")
                .args(["-u", &alice.user.name, "--", "sudo", "-n", "/usr/bin/sleep"])
                .arg(&seconds)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        seen_running > 0,
        "no sudo got in before the end: the race was not run"
    );
    wait_for_view(&jitd, &id, Duration::from_secs(10), |v| {
        v.state == State::Expired
    });
    // kill_grace is 1 s; every process of the grant is gone within a few seconds of the end.
    let deadline = Instant::now() + Duration::from_secs(15);
    let survivors = loop {
        let alive = pids_running(&marker);
        if alive.is_empty() || Instant::now() > deadline {
            break alive;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    for mut c in children {
        let _ = c.kill();
        let _ = c.wait();
    }
    for pid in &survivors {
        let _ = Command::new("kill").args(["-9", pid]).status();
    }
    assert!(
        survivors.is_empty(),
        "root processes outlived their grant: {survivors:?}"
    );
}

fn pids_running(command_line: &str) -> Vec<String> {
    let out = Command::new("pgrep")
        .args(["-u", "root", "-f", &format!("^{command_line}$")])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Seconds since the epoch of `2026-11-29T22:40:01Z` (the form jitd shows).
fn chrono_like_secs(stamp: &str) -> f64 {
    let out = Command::new("date")
        .args(["-u", "-d", stamp, "+%s"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}
