//! Audit stories through the real daemon: every step lands in a real journald with its
//! fields, the audit log verifies and detects tampering, and a full disk refuses new grants
//! while a running grant still ends on time.

use std::process::Command;
use std::time::Duration;

use jit_tests::journal::PrivateJournald;
use jit_tests::{ok, text, Daemon, TestUser};

const REQUESTED: &str = "6a1b0f2e8c7d4e31a9f05b3c2d1e0f01";
const APPROVED: &str = "6a1b0f2e8c7d4e31a9f05b3c2d1e0f02";
const REVOKED: &str = "6a1b0f2e8c7d4e31a9f05b3c2d1e0f0c";

fn audit(d: &Daemon, args: &[&str]) -> std::process::Output {
    Command::new(jit_tests::bin("jitd"))
        .arg("audit")
        .arg("--config")
        .arg(d.config_path())
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn an_sre_finds_every_step_in_the_journal_with_its_fields() {
    let journald = PrivateJournald::start();
    let wrapper = journald.enter();
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    let d = Daemon::start_custom("", &wrapper, |_| {});
    let op = TestUser::create("op");
    let forged = "deploy\nMESSAGE_ID=00000000000000000000000000000bad\n_UID=0\x1b[31m";
    let id = ok(d.elevate_as(&op, &["--no-wait", "--reason", forged, "--", "/usr/bin/id"]));
    ok(d.jitd(&["approve", &id, "--comment", "ok"]));
    ok(d.jitd(&["revoke", &id, "--reason", "enough"]));

    let user = format!("JIT_USER={}", op.name);
    let requested = journald.query(&[format!("MESSAGE_ID={REQUESTED}"), user.clone()], 1);
    assert_eq!(
        requested.len(),
        1,
        "journalctl MESSAGE_ID=… JIT_USER=… answers"
    );
    let r = &requested[0];
    assert_eq!(r["JIT_REQUEST_ID"], id.as_str());
    assert_eq!(r["SYSLOG_IDENTIFIER"], "jitd");
    assert_eq!(r["JIT_COMMAND"], "/usr/bin/id");
    let reason = r["JIT_REASON"].as_str().unwrap();
    assert!(
        !reason.contains('\n') && !reason.contains('\x1b'),
        "escaped: {reason:?}"
    );
    assert_eq!(r["_UID"], "0", "trusted fields are journald's own");

    let approved = journald.query(&[format!("MESSAGE_ID={APPROVED}"), user.clone()], 1);
    assert_eq!(approved[0]["JIT_APPROVER"], "root");
    assert!(approved[0]["JIT_EXPIRES"].as_str().unwrap().ends_with('Z'));
    let revoked = journald.query(&[format!("MESSAGE_ID={REVOKED}"), user.clone()], 1);
    assert_eq!(revoked.len(), 1);
    // The forged id in the reason is not a field of any entry.
    assert!(journald
        .query(&["MESSAGE_ID=00000000000000000000000000000bad".into()], 0)
        .is_empty());

    // The audit log holds the same history, and verifies.
    let history = audit(&d, &["--id", &id, "--json"]);
    assert!(history.status.success(), "{}", text(&history.stderr));
    let events: Vec<String> = text(&history.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["event"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    for e in ["requested", "approved", "grant_installed", "revoked"] {
        assert!(
            events.contains(&e.to_string()),
            "{e} missing from {events:?}"
        );
    }
    assert!(audit(&d, &["verify"]).status.success());
}

#[test]
fn audit_verify_names_the_first_tampered_line_even_with_the_daemon_down() {
    let mut d = Daemon::start();
    let op = TestUser::create("op");
    for _ in 0..3 {
        ok(d.elevate_as(&op, &["--no-wait", "--reason", "x", "--", "/usr/bin/id"]));
    }
    d.kill9();
    assert!(audit(&d, &["verify"]).status.success());
    let log = d.state_dir().join("audit.log");
    let original = std::fs::read_to_string(&log).unwrap();
    let edited = original.replacen("\"reason\":\"x\"", "\"reason\":\"y\"", 2);
    std::fs::write(&log, edited).unwrap();
    let out = audit(&d, &["verify"]);
    assert_eq!(out.status.code(), Some(1));
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(said.contains("line 2"), "names the first bad line: {said}");
}

/// Unmounts on drop.
struct Mounted(std::path::PathBuf);
impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_refuses_new_grants_while_a_running_grant_still_expires() {
    let mut mounted = None;
    let d = Daemon::start_custom("", &[], |dir| {
        let state = dir.join("state");
        assert!(Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=256k,mode=0700", "jit-test-full"])
            .arg(&state)
            .status()
            .unwrap()
            .success());
        mounted = Some(Mounted(state));
    });
    let _unmount = mounted;
    let op = TestUser::create("op");
    let running = ok(d.jitd(&["grant", &op.name, "--for", "3s", "--reason", "x", "--ssh"]));
    // Fill the state file system.
    let _ = Command::new("dd")
        .arg("if=/dev/zero")
        .arg(format!("of={}", d.state_dir().join("filler").display()))
        .args(["bs=4k", "count=1000"])
        .output();
    let out = d.elevate_as(&op, &["--no-wait", "--reason", "x", "--", "/usr/bin/id"]);
    assert_eq!(out.status.code(), Some(14));
    let said = text(&out.stderr);
    assert!(
        said.contains("cannot be written") && said.contains("No space left"),
        "{said}"
    );
    let out = d.jitd(&["grant", &op.name, "--for", "1m", "--reason", "x", "--ssh"]);
    assert_eq!(out.status.code(), Some(1));
    // The grant that was already running ends on time all the same.
    d.wait_for_state(&running, "expired", Duration::from_secs(5));
}

/// `logger` into the private journal's syslog socket, as `uid` (0 = root), from inside its
/// mount namespace.
fn log_as(journald: &PrivateJournald, uid: u32, ident: &str, line: &str) {
    let mut cmd = Command::new("nsenter");
    cmd.args(["-t", &journald.pid().to_string(), "-m", "--"]);
    if uid != 0 {
        cmd.args([
            "setpriv",
            &format!("--reuid={uid}"),
            &format!("--regid={uid}"),
            "--clear-groups",
        ]);
    }
    let status = cmd
        .args([
            "logger",
            "--socket-errors=on",
            "-u",
            "/run/systemd/journal/dev-log",
            "-p",
            "authpriv.notice",
            "-t",
            ident,
            line,
        ])
        .status()
        .unwrap();
    assert!(status.success(), "logger failed");
}

#[test]
fn break_glass_passes_taken_while_jitd_was_down_are_recorded_when_it_is_back() {
    let journald = PrivateJournald::start();
    let carol = TestUser::create("carol");
    let mallory = TestUser::create("mal");
    // pam_jit's line for a break-glass SSH login while no jitd runs, logged by sshd (root).
    let pass = format!(
        "pam_jit(sshd:account): user={} ruser=- rhost=10.9.8.7 tty=ssh kind=ssh: allowed without a grant: member of exempt group jit-breakglass",
        carol.name
    );
    log_as(&journald, 0, "sshd", &pass);
    // The same text from an ordinary user is a forgery and must not count.
    log_as(
        &journald,
        mallory.uid,
        "sshd",
        &pass.replace(&carol.name, &mallory.name),
    );
    assert_eq!(
        journald.query(&["SYSLOG_IDENTIFIER=sshd".into()], 2).len(),
        2
    );

    let wrapper = journald.enter();
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    let d = Daemon::start_custom("", &wrapper, |_| {});
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let records = loop {
        let out = audit(&d, &["--json"]);
        let records: Vec<serde_json::Value> = text(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        if records.iter().any(|r| r["event"] == "break_glass")
            || std::time::Instant::now() > deadline
        {
            break records;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let glass: Vec<_> = records
        .iter()
        .filter(|r| r["event"] == "break_glass")
        .collect();
    assert_eq!(glass.len(), 1, "{records:?}");
    assert_eq!(glass[0]["user"], carol.name.as_str());
    assert!(
        !records.iter().any(|r| r["user"] == mallory.name.as_str()),
        "the forgery was recorded"
    );
    // And it is a journald event of its own now, findable by its MESSAGE_ID.
    let found = journald.query(
        &[
            "MESSAGE_ID=6a1b0f2e8c7d4e31a9f05b3c2d1e0f0f".into(),
            format!("JIT_USER={}", carol.name),
        ],
        1,
    );
    assert_eq!(found.len(), 1);
    assert!(audit(&d, &["verify"]).status.success());
}
