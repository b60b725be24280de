//! Audit stories through the real daemon: every step lands in a real journald with its
//! fields and its audit record's position, the audit log verifies and detects tampering, also
//! across rotated files and after a crash at any step of a rotation, and a full disk refuses
//! new grants while a running grant still ends on time.

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

/// Names of the audit log's files in the state directory, in chain order: the rotated
/// `audit-<seq>.log` files (their zero-padded names sort in order), then `audit.log`.
fn audit_files(d: &Daemon) -> Vec<String> {
    let mut rotated: Vec<String> = std::fs::read_dir(d.state_dir())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("audit-") && n.ends_with(".log"))
        .collect();
    rotated.sort();
    if d.state_dir().join("audit.log").exists() {
        rotated.push("audit.log".into());
    }
    rotated
}

/// Every line of the chain, in order, with the file it is in.
fn audit_lines(d: &Daemon) -> Vec<(String, String)> {
    audit_files(d)
        .into_iter()
        .flat_map(|f| {
            let text = std::fs::read_to_string(d.state_dir().join(&f)).unwrap();
            text.lines()
                .map(|l| (f.clone(), l.to_string()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Hex SHA-256 of `bytes`, by coreutils' sha256sum.
fn sha256(bytes: &[u8]) -> String {
    use std::io::Write;
    let mut child = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    text(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// The line of record `seq`.
fn line_of(lines: &[(String, String)], seq: u64) -> String {
    lines
        .iter()
        .map(|(_, l)| l)
        .find(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["seq"].as_u64() == Some(seq)
        })
        .unwrap_or_else(|| panic!("no audit record {seq}"))
        .clone()
}

const ROTATE_SMALL: &str = "audit_rotate_size = \"4KiB\"";

#[test]
fn a_rotated_log_verifies_across_its_files_and_an_old_approval_still_counts_at_restart() {
    let mut d = Daemon::start_with(ROTATE_SMALL);
    let op = TestUser::create("op");
    let first = ok(d.jitd(&["grant", &op.name, "--for", "1h", "--reason", "x", "--ssh"]));
    let mut grants = 0;
    while audit_files(&d).len() < 4 {
        ok(d.jitd(&["grant", &op.name, "--for", "1h", "--reason", "y", "--ssh"]));
        grants += 1;
        assert!(grants < 100, "no rotation: {:?}", audit_files(&d));
    }
    let files = audit_files(&d);
    assert_eq!(files[0], "audit-00000000000000000001.log", "{files:?}");
    // The first grant's records are in the oldest file only.
    let in_file = |f: &str| std::fs::read_to_string(d.state_dir().join(f)).unwrap();
    assert!(in_file(&files[0]).contains(&first));
    assert!(files[1..].iter().all(|f| !in_file(f).contains(&first)));

    let out = audit(&d, &["verify"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(&format!("in {} files", files.len())),
        "{}",
        text(&out.stdout)
    );
    let history = audit(&d, &["--id", &first, "--json"]);
    assert!(history.status.success(), "{}", text(&history.stderr));
    let events: Vec<String> = text(&history.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["event"].to_string())
        .collect();
    assert_eq!(events, ["\"approved\"", "\"grant_installed\""]);

    // At startup jitd looks for each active grant's approval; the first one's is in the
    // oldest file, and the grant stays enforced rather than set aside.
    d.restart();
    assert_eq!(d.state_of(&first), "active");
    let all = text(&audit(&d, &["--json"]).stdout);
    assert!(!all.contains("\"quarantined\""), "{all}");
    assert!(audit(&d, &["verify"]).status.success());
}

#[test]
fn verify_names_the_rotated_file_that_was_tampered_with_or_deleted() {
    let mut d = Daemon::start_with(ROTATE_SMALL);
    let op = TestUser::create("op");
    while audit_files(&d).len() < 4 {
        ok(d.jitd(&["grant", &op.name, "--for", "1h", "--reason", "y", "--ssh"]));
    }
    d.kill9();
    assert!(audit(&d, &["verify"]).status.success());
    let files = audit_files(&d);
    let said = |out: std::process::Output| {
        assert_eq!(out.status.code(), Some(1), "tampering went unnoticed");
        text(&out.stderr)
    };

    // An approver's name changed in the oldest file.
    let oldest = d.state_dir().join(&files[0]);
    let original = std::fs::read_to_string(&oldest).unwrap();
    std::fs::write(
        &oldest,
        original.replacen("\"approver\":\"root\"", "\"approver\":\"nobody\"", 1),
    )
    .unwrap();
    let err = said(audit(&d, &["verify"]));
    assert!(err.contains(&files[0]) || err.contains(&files[1]), "{err}");
    std::fs::write(&oldest, &original).unwrap();

    // A whole file in the middle deleted.
    std::fs::remove_file(d.state_dir().join(&files[1])).unwrap();
    let err = said(audit(&d, &["verify"]));
    assert!(
        err.contains(&files[2]) && err.contains("a rotated file was deleted"),
        "{err}"
    );
}

#[test]
fn every_journald_event_carries_its_audit_position_and_a_rewritten_chain_shows_against_it() {
    let journald = PrivateJournald::start();
    let wrapper = journald.enter();
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    let mut d = Daemon::start_custom(ROTATE_SMALL, &wrapper, |_| {});
    let op = TestUser::create("op");
    let id = ok(d.elevate_as(&op, &["--no-wait", "--reason", "x", "--", "/usr/bin/id"]));
    ok(d.jitd(&["approve", &id, "--comment", "ok"]));
    ok(d.jitd(&["revoke", &id, "--reason", "enough"]));

    let entries = journald.query(&[format!("JIT_REQUEST_ID={id}")], 4);
    assert!(entries.len() >= 4, "{entries:?}");
    let lines = audit_lines(&d);
    for e in &entries {
        let seq = e["JIT_AUDIT_SEQ"]
            .as_str()
            .unwrap_or_else(|| panic!("no JIT_AUDIT_SEQ in {e}"));
        let line = line_of(&lines, seq.parse().unwrap());
        let record: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(record["event"], e["JIT_EVENT"], "{line}");
        assert_eq!(record["request_id"], id.as_str());
        assert_eq!(
            e["JIT_AUDIT_HASH"].as_str(),
            Some(sha256(line.as_bytes()).as_str())
        );
    }

    // Root rewrites the approval and recomputes the chain and the head: the log verifies...
    d.kill9();
    let approved = entries
        .iter()
        .find(|e| e["JIT_EVENT"] == "approved")
        .expect("the approval is in the journal");
    let approved_seq: u64 = approved["JIT_AUDIT_SEQ"].as_str().unwrap().parse().unwrap();
    let mut prev: Option<String> = None;
    let mut rewritten: Vec<(String, String)> = Vec::new();
    for (file, line) in audit_lines(&d) {
        let mut record: serde_json::Value = serde_json::from_str(&line).unwrap();
        if record["seq"].as_u64() == Some(approved_seq) {
            record["approver"] = "nobody".into();
        }
        if let Some(p) = &prev {
            record["prev"] = p.as_str().into();
        }
        let line = record.to_string();
        prev = Some(sha256(line.as_bytes()));
        rewritten.push((file, line));
    }
    for file in audit_files(&d) {
        let text: String = rewritten
            .iter()
            .filter(|(f, _)| *f == file)
            .map(|(_, l)| format!("{l}\n"))
            .collect();
        std::fs::write(d.state_dir().join(&file), text).unwrap();
    }
    let last_seq = rewritten.len();
    std::fs::write(
        d.state_dir().join("audit.head"),
        format!("{last_seq:020} {}\n", prev.unwrap()),
    )
    .unwrap();
    let out = audit(&d, &["verify"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // ...but the copy in the journal (forwarded off the host) says what record N hashed to.
    let now = line_of(&audit_lines(&d), approved_seq);
    assert!(now.contains("\"approver\":\"nobody\""));
    assert_ne!(
        approved["JIT_AUDIT_HASH"].as_str(),
        Some(sha256(now.as_bytes()).as_str()),
        "the rewrite does not show against the journal"
    );
}

#[test]
fn a_crash_at_every_rotation_failpoint_leaves_a_host_matching_the_records_and_a_sound_chain() {
    let mut d = Daemon::start_with(ROTATE_SMALL);
    let op = TestUser::create("op");
    let mut acknowledged: Vec<String> = Vec::new();
    for failpoint in [
        "audit_rotate_before_rename",
        "audit_rotate_after_rename",
        "audit_rotate_after_create",
        "audit_rotate_before_head",
    ] {
        d.restart_through(&["env", &format!("JITD_FAILPOINT={failpoint}")]);
        // Sudo grants (a drop-in each) until one lands on a rotation and jitd dies there.
        let mut tries = 0;
        loop {
            let out = d.jitd(&[
                "grant",
                &op.name,
                "--for",
                "1h",
                "--reason",
                "x",
                "--",
                "/usr/bin/id",
            ]);
            if !out.status.success() {
                break;
            }
            acknowledged.push(jit_tests::stdout(&out));
            tries += 1;
            assert!(tries < 50, "jitd never reached {failpoint}:\n{}", d.log());
        }
        assert!(
            d.log().contains(&format!("failpoint {failpoint} hit")),
            "jitd failed otherwise:\n{}",
            d.log()
        );
        d.restart_through(&[]);

        let out = audit(&d, &["verify"]);
        assert!(
            out.status.success(),
            "after a crash at {failpoint}: {}",
            text(&out.stderr)
        );
        // Every grant acknowledged before the crash is still enforced, and the host holds a
        // drop-in for exactly the active grants.
        for id in &acknowledged {
            assert_eq!(d.state_of(id), "active", "{id} after {failpoint}");
        }
        let list: serde_json::Value =
            serde_json::from_str(&ok(d.jitd(&["list", "--json"]))).unwrap();
        let mut active: Vec<String> = list
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["state"] == "active")
            .map(|r| format!("jit_{}", r["id"].as_str().unwrap()))
            .collect();
        active.sort();
        let mut drop_ins: Vec<String> = std::fs::read_dir(d.dir().join("sudoers.d"))
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        drop_ins.sort();
        assert_eq!(drop_ins, active, "after a crash at {failpoint}");
    }
    assert!(audit_files(&d).len() >= 4, "{:?}", audit_files(&d));
    let all = text(&audit(&d, &["--json"]).stdout);
    assert!(!all.contains("\"quarantined\""), "{all}");
}

#[test]
fn a_torn_final_line_is_cut_recorded_once_and_published_with_its_position() {
    let journald = PrivateJournald::start();
    let wrapper = journald.enter();
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    let mut d = Daemon::start_custom("", &wrapper, |_| {});
    let op = TestUser::create("op");
    ok(d.elevate_as(&op, &["--no-wait", "--reason", "x", "--", "/usr/bin/id"]));
    // What a crash in the middle of an append leaves: part of a line, the head one behind.
    d.kill9();
    let log = d.state_dir().join("audit.log");
    let mut torn = std::fs::read_to_string(&log).unwrap();
    torn.push_str("{\"seq\":99,\"time\":\"20");
    std::fs::write(&log, torn).unwrap();
    d.restart();

    let repairs: Vec<serde_json::Value> = text(&audit(&d, &["--json"]).stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|r: &serde_json::Value| r["extra"]["TORN_BYTES"].is_string())
        .collect();
    assert_eq!(repairs.len(), 1, "recorded once: {repairs:?}");
    let seq = repairs[0]["seq"].to_string();
    let found = journald.query(&["JIT_TORN_BYTES=20".into()], 1);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["JIT_AUDIT_SEQ"].as_str(), Some(seq.as_str()));
    assert!(audit(&d, &["verify"]).status.success());
}
