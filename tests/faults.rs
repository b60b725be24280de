//! Faults (issue #15): jitd killed at every step of installing, removing and approving a grant;
//! a state directory that fills up; the wall clock stepped by hours under active grants. Each
//! story injects the fault into a real jitd and checks what must hold afterwards: the host
//! matches the records, the audit chain verifies, nothing acknowledged is lost, no grant lasts
//! longer than approved. The figures these stories print are in docs/faults.md.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jit_tests::{json, ok, text, Daemon, RootDir, TestUser};

// ---- helpers ------------------------------------------------------------------------------

/// `jitd audit ARGS --config …`: reads the state directory directly (works while jitd is down).
fn audit(d: &Daemon, args: &[&str]) -> Output {
    Command::new(jit_tests::bin("jitd"))
        .arg("audit")
        .args(args)
        .arg("--config")
        .arg(d.config_path())
        .output()
        .expect("run jitd audit")
}

fn assert_audit_verifies(d: &Daemon, when: &str) {
    let out = audit(d, &["verify"]);
    assert!(
        out.status.success(),
        "{when}: jitd audit verify failed:\n{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// The audit log's records about request `id`, oldest first.
fn audit_records(d: &Daemon, id: &str) -> Vec<serde_json::Value> {
    let out = audit(d, &["--id", id, "--json"]);
    assert!(
        out.status.success(),
        "jitd audit --id: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("audit --json line"))
        .collect()
}

/// The events the audit log holds for request `id`, oldest first.
fn audit_events(d: &Daemon, id: &str) -> Vec<String> {
    audit_records(d, id)
        .iter()
        .map(|v| v["event"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Every record of the audit log, oldest first.
fn all_audit_records(d: &Daemon) -> Vec<serde_json::Value> {
    let out = audit(d, &["--json"]);
    assert!(out.status.success(), "jitd audit: {}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("audit --json line"))
        .collect()
}

/// The `seq` of the last `event` record among `records`.
fn seq_of_last(records: &[serde_json::Value], event: &str) -> u64 {
    records
        .iter()
        .rev()
        .find(|r| r["event"] == event)
        .and_then(|r| r["seq"].as_u64())
        .unwrap_or_else(|| panic!("no {event} record in {records:#?}"))
}

/// The `seq`s the restarted jitd said were logged and never stored (`reconciled` records).
fn said_unstored(records: &[serde_json::Value]) -> Vec<u64> {
    records
        .iter()
        .filter(|r| r["event"] == "reconciled")
        .filter_map(|r| r["extra"]["NOT_STORED"].as_str()?.parse().ok())
        .collect()
}

/// Whether the last record of a change (one of `changes`) among `records` is followed by the
/// record that says a change was refused and not made (the audit record of a change is
/// written before the state directory refuses it).
fn refused_changes_are_marked(records: &[serde_json::Value], changes: &[&str]) -> bool {
    let last_change = records
        .iter()
        .rposition(|r| changes.contains(&r["event"].as_str().unwrap_or("")));
    let undone = records.iter().rposition(|r| {
        r["event"] == "internal_error" && r["message"].as_str().unwrap_or("").contains("not made")
    });
    last_change.is_none_or(|c| undone.is_some_and(|u| u > c))
}

/// What the daemon's sudoers directory holds: ids of `jit_<id>` drop-ins, and any other name.
fn sudoers_files(d: &Daemon) -> (BTreeSet<String>, Vec<String>) {
    let (mut ids, mut other) = (BTreeSet::new(), Vec::new());
    for entry in fs::read_dir(d.dir().join("sudoers.d")).expect("sudoers dir") {
        let name = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        match name.strip_prefix("jit_") {
            Some(id) => ids.insert(id.to_string()),
            None => {
                other.push(name);
                false
            }
        };
    }
    (ids, other)
}

/// Ids of the active sudo grants, as the restarted daemon answers.
fn active_sudo_grants(d: &Daemon) -> BTreeSet<String> {
    let list = json(d.jitd(&["list", "--all", "--json"]));
    list.as_array()
        .expect("list")
        .iter()
        .filter(|r| r["state"] == "active" && !r["ssh"].as_bool().unwrap_or(false))
        .map(|r| r["id"].as_str().expect("id").to_string())
        .collect()
}

/// After a restart: the drop-ins are exactly the active sudo grants', nothing else is left in
/// the directory (no temp file), and the audit chain verifies.
fn assert_host_matches_records(d: &Daemon, when: &str) {
    let (drop_ins, other) = sudoers_files(d);
    assert_eq!(
        drop_ins,
        active_sudo_grants(d),
        "{when}: the drop-ins must be exactly the active grants'"
    );
    assert!(other.is_empty(), "{when}: left in sudoers.d: {other:?}");
    assert_audit_verifies(d, when);
}

// ---- kill -9 at every failpoint ---------------------------------------------------------

/// The daemon, started with `JITD_FAILPOINT=failpoint`, has just been made to reach it: it must
/// have aborted there (SIGABRT, the failpoint's own `abort`), not exited some other way.
fn assert_crashed_at(d: &mut Daemon, failpoint: &str) {
    let status = d.wait_for_exit(Duration::from_secs(30));
    assert_eq!(
        status.signal(),
        Some(libc::SIGABRT),
        "jitd must have aborted at {failpoint} ({status}):\n{}",
        d.log()
    );
    assert!(
        d.log().contains(&format!("failpoint {failpoint} hit")),
        "{failpoint}: {}",
        d.log()
    );
}

/// Approving a pending sudo request: the audit record, the drop-in's temp file, its rename,
/// the install as a whole, the stored record. Until the record is stored the approval was never
/// acknowledged and the request is still pending after the restart, with no drop-in; once
/// stored, it is active with its drop-in.
#[test]
fn kill9_at_every_step_of_an_approval_leaves_the_host_matching_the_records() {
    let op = TestUser::create("fap");
    for (failpoint, after) in [
        ("transition_after_audit", "pending"),
        ("after_temp_write", "pending"),
        ("after_rename", "pending"),
        ("transition_after_install", "pending"),
        ("transition_after_persist", "active"),
    ] {
        let mut d = Daemon::start_with_env("", &[("JITD_FAILPOINT", failpoint)]);
        let id = ok(d.elevate_as(&op, &["--no-wait", "--reason", "x", "--", "/usr/bin/id"]));
        let out = d.jitd(&["approve", &id]);
        assert!(
            !out.status.success(),
            "{failpoint}: no answer from a crashed jitd"
        );
        assert_crashed_at(&mut d, failpoint);
        d.restart_with_env(&[]);
        assert_eq!(d.state_of(&id), after, "{failpoint}");
        assert_host_matches_records(&d, failpoint);
        let events = audit_events(&d, &id);
        if after == "active" {
            assert!(
                events.contains(&"approved".to_string()),
                "{failpoint}: {events:?}"
            );
        }
        // The log's `approved` of a request still pending would mislead an auditor: the
        // restarted jitd says, once, that it was never stored.
        let records = audit_records(&d, &id);
        let approved = seq_of_last(&records, "approved");
        let said = said_unstored(&records);
        if after == "pending" {
            assert_eq!(said, vec![approved], "{failpoint}: {records:#?}");
            let reconciled = records
                .iter()
                .rfind(|r| r["extra"]["NOT_STORED"].is_string())
                .unwrap();
            let message = reconciled["message"].as_str().unwrap();
            assert!(
                message.contains("was never stored") && message.ends_with("is pending"),
                "{failpoint}: {message}"
            );
        } else {
            assert!(said.is_empty(), "{failpoint}: {records:#?}");
        }
        if failpoint == "transition_after_audit" {
            d.restart_with_env(&[]);
            assert_eq!(
                said_unstored(&audit_records(&d, &id)),
                vec![approved],
                "said again after a second restart"
            );
        }
        // The request can still be decided, and the grant it gives is installed.
        if after == "pending" {
            ok(d.jitd(&["approve", &id]));
        }
        assert_eq!(
            sudoers_files(&d).0,
            BTreeSet::from([id.clone()]),
            "{failpoint}"
        );
    }
}

/// A record that was stored, then found unreadable at the next start (a disk error, a hand
/// edit): jitd sets it aside and says so; the audit log's record of the change that made it
/// must not be called "never stored" on top of that.
#[test]
fn a_record_set_aside_as_unreadable_is_not_taken_for_a_change_never_stored() {
    let op = TestUser::create("fcr");
    let mut d = Daemon::start();
    let id = ok(d.jitd(&["grant", &op.name, "--reason", "x", "--", "/usr/bin/id"]));
    d.kill9();
    fs::write(d.record_file(&id), b"{ not a record").unwrap();
    d.restart_with_env(&[]);
    let records = all_audit_records(&d);
    assert!(
        records.iter().any(|r| r["event"] == "internal_error"
            && r["message"].as_str().unwrap_or("").contains("unreadable")),
        "the unreadable record is reported: {records:#?}"
    );
    assert!(said_unstored(&records).is_empty(), "{records:#?}");
}

/// `jitd grant` (created active at once): audit record, install, stored record.
#[test]
fn kill9_at_every_step_of_a_direct_grant_leaves_the_host_matching_the_records() {
    let op = TestUser::create("fgr");
    for (failpoint, stored) in [
        ("create_after_audit", false),
        ("create_after_install", false),
        ("create_after_persist", true),
    ] {
        let mut d = Daemon::start_with_env("", &[("JITD_FAILPOINT", failpoint)]);
        let out = d.jitd(&["grant", &op.name, "--reason", "x", "--", "/usr/bin/id"]);
        assert!(
            !out.status.success(),
            "{failpoint}: no answer from a crashed jitd"
        );
        assert_crashed_at(&mut d, failpoint);
        d.restart_with_env(&[]);
        let ids = d.request_ids();
        assert_eq!(ids.len(), usize::from(stored), "{failpoint}: {ids:?}");
        if let Some(id) = ids.first() {
            assert_eq!(d.state_of(id), "active", "{failpoint}");
        }
        assert_host_matches_records(&d, failpoint);
        // A grant logged and never stored does not exist, and the log says so.
        let records = all_audit_records(&d);
        let granted = seq_of_last(&records, "approved");
        let said = said_unstored(&records);
        if stored {
            assert!(said.is_empty(), "{failpoint}: {records:#?}");
        } else {
            assert_eq!(said, vec![granted], "{failpoint}: {records:#?}");
            let reconciled = records
                .iter()
                .rfind(|r| r["extra"]["NOT_STORED"].is_string())
                .unwrap();
            assert!(
                reconciled["message"]
                    .as_str()
                    .unwrap()
                    .contains("does not exist"),
                "{failpoint}: {reconciled}"
            );
        }
    }
}

/// Revoking an active sudo grant: the audit record, the stored record, the drop-in's removal.
/// Once the revocation is stored, the restarted daemon removes what is left; before, the grant
/// is still active and keeps its drop-in.
#[test]
fn kill9_at_every_step_of_a_revocation_leaves_the_host_matching_the_records() {
    let op = TestUser::create("frv");
    for (failpoint, after) in [
        ("transition_after_audit", "active"),
        ("transition_after_persist", "revoked"),
        ("before_remove", "revoked"),
    ] {
        let mut d = Daemon::start_with_env("", &[("JITD_FAILPOINT", failpoint)]);
        let id = ok(d.jitd(&["grant", &op.name, "--reason", "x", "--", "/usr/bin/id"]));
        assert_eq!(sudoers_files(&d).0, BTreeSet::from([id.clone()]));
        let out = d.jitd(&["revoke", &id, "--reason", "enough"]);
        assert!(
            !out.status.success(),
            "{failpoint}: no answer from a crashed jitd"
        );
        assert_crashed_at(&mut d, failpoint);
        d.restart_with_env(&[]);
        assert_eq!(d.state_of(&id), after, "{failpoint}");
        assert_host_matches_records(&d, failpoint);
        if after == "revoked" {
            let events = audit_events(&d, &id);
            assert!(
                events.contains(&"revoked".to_string()),
                "{failpoint}: {events:?}"
            );
        }
        // A `revoked` of a grant still active is said to have been never stored.
        let records = audit_records(&d, &id);
        let revoked = seq_of_last(&records, "revoked");
        let said = said_unstored(&records);
        if after == "active" {
            assert_eq!(said, vec![revoked], "{failpoint}: {records:#?}");
        } else {
            assert!(said.is_empty(), "{failpoint}: {records:#?}");
        }
    }
}

/// A grant reaching its end: the drop-in's removal, the end applied, the end half recorded
/// (stored but not logged, or the other way round). After the restart the grant is expired,
/// its drop-in gone, and the audit log says it expired.
#[test]
fn kill9_at_every_step_of_an_expiry_leaves_the_host_matching_the_records() {
    let op = TestUser::create("fex");
    for failpoint in [
        "before_remove",
        "expiry_after_withdraw",
        "expiry_half_recorded",
    ] {
        let mut d = Daemon::start_with_env("", &[("JITD_FAILPOINT", failpoint)]);
        let id = ok(d.jitd(&[
            "grant",
            &op.name,
            "--for",
            "2s",
            "--reason",
            "x",
            "--",
            "/usr/bin/id",
        ]));
        assert_crashed_at(&mut d, failpoint);
        d.restart_with_env(&[]);
        assert_eq!(d.state_of(&id), "expired", "{failpoint}");
        assert_host_matches_records(&d, failpoint);
        let events = audit_events(&d, &id);
        assert!(
            events.contains(&"expired".to_string()),
            "{failpoint}: the audit log lacks the expiry: {events:?}"
        );
    }
}

// ---- the state directory fills up -------------------------------------------------------

/// A tmpfs mounted on a daemon's state directory before it starts; lazily unmounted on drop
/// (declare it after the daemon, so it goes first).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700")])
            .arg(jit_tests::unique("jit-test-full-"))
            .arg(at)
            .status()
            .expect("mount");
        assert!(status.success(), "mount tmpfs on {}", at.display());
        Tmpfs(at.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system of `dir` with `dir/filler` until it is full.
fn fill(dir: &Path) -> PathBuf {
    let filler = dir.join("filler");
    let _ = Command::new("dd")
        .arg("if=/dev/zero")
        .arg(format!("of={}", filler.display()))
        .args(["bs=4k", "count=100000"])
        .output()
        .expect("dd");
    filler
}

/// The stored record of `id`, as the state directory has it (not as jitd's memory has it).
fn stored_state(d: &Daemon, id: &str) -> String {
    let path = d.record_file(id);
    let v: serde_json::Value =
        serde_json::from_slice(&fs::read(&path).expect("record")).expect("record is JSON");
    match v["phase"]["phase"].as_str() {
        Some("ended") => v["phase"]["end"].as_str().unwrap_or_default().to_string(),
        other => other.unwrap_or_default().to_string(),
    }
}

/// An RFC 3339 time as the system clock's time.
fn parse_time(at: &str) -> SystemTime {
    let out = Command::new("date")
        .args(["-u", "-d", at, "+%s%N"])
        .output()
        .expect("date");
    let nanos: u64 = text(&out.stdout).trim().parse().expect("date +%s%N");
    UNIX_EPOCH + Duration::from_nanos(nanos)
}

/// A time field of `jitd show ID --json` (`expires_at`), to the second.
fn time_of(d: &Daemon, id: &str, field: &str) -> SystemTime {
    let shown = d.show(id);
    parse_time(
        shown[field]
            .as_str()
            .unwrap_or_else(|| panic!("{id} has no {field}")),
    )
}

/// How long after its window's end the stored record of ended grant `id` says it ended
/// (stored times are exact, shown ones are to the second). The record is stored a moment after
/// the end is applied (and shown): waits for it, up to 10 s.
fn stored_lateness(d: &Daemon, id: &str) -> Duration {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let path = d.record_file(id);
        let v: serde_json::Value =
            serde_json::from_slice(&fs::read(&path).expect("record")).expect("JSON");
        let phase = &v["phase"];
        if let (Some("ended"), Some(at), Some(end)) = (
            phase["phase"].as_str(),
            phase["at"].as_str(),
            phase["window"]["expires_at"].as_str(),
        ) {
            return parse_time(at)
                .duration_since(parse_time(end))
                .unwrap_or_default();
        }
        assert!(
            Instant::now() < deadline,
            "{id} is not stored as ended with a window within 10 s: {phase}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Disk full: every change is refused with a clear error while a grant that was running
/// still ends on time; nothing acknowledged before is lost; once space returns jitd takes
/// requests again and records what it could not, without a restart.
#[test]
fn a_full_state_directory_refuses_changes_keeps_expiring_and_recovers_by_itself() {
    let op = TestUser::create("dfl");
    let mut mounted = None;
    let mut d = Daemon::start_custom("", &[], |dir| {
        mounted = Some(Tmpfs::mount(&dir.join("state"), "1m"));
    });
    let _unmount = mounted;
    // Acknowledged before the disk fills: a pending request, a long grant, a short one.
    let pending = ok(d.elevate_as(&op, &["--no-wait", "--reason", "p", "--", "/usr/bin/id"]));
    let long = ok(d.jitd(&["grant", &op.name, "--reason", "l", "--", "/usr/bin/true"]));
    let short = ok(d.jitd(&[
        "grant",
        &op.name,
        "--for",
        "15s",
        "--reason",
        "s",
        "--",
        "/usr/bin/false",
    ]));
    let short_ends = time_of(&d, &short, "expires_at");

    let filler = fill(&d.state_dir());
    let full_at = Instant::now();
    let mut refusals = 0;
    for (what, out, code) in [
        (
            "submit",
            d.elevate_as(&op, &["--no-wait", "--reason", "x", "--", "/usr/bin/id"]),
            14,
        ),
        ("approve", d.jitd(&["approve", &pending]), 1),
        (
            "grant",
            d.jitd(&["grant", &op.name, "--reason", "x", "--", "/usr/bin/id"]),
            1,
        ),
        ("revoke", d.jitd(&["revoke", &long, "--reason", "x"]), 1),
        ("cancel", d.elevate_as(&op, &["cancel", &pending]), 14),
    ] {
        let said = text(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{what} while full: {said}");
        assert!(
            said.contains("No space left on device") && said.contains("cannot be written"),
            "{what}: the refusal says why: {said}"
        );
        refusals += 1;
    }
    assert!(
        full_at.elapsed() < Duration::from_secs(10),
        "the refusals took {:?}: the short grant may have ended before they ran",
        full_at.elapsed()
    );
    assert_eq!(d.state_of(&pending), "pending");
    assert_eq!(d.state_of(&long), "active");
    assert_eq!(
        sudoers_files(&d).0,
        BTreeSet::from([long.clone(), short.clone()])
    );
    // The audit log does not claim what was refused as made.
    let logged = audit_records(&d, &pending);
    assert!(
        refused_changes_are_marked(&logged, &["approved", "cancelled"]),
        "{logged:#?}"
    );
    let logged = audit_records(&d, &long);
    assert!(
        refused_changes_are_marked(&logged[1..], &["revoked"]),
        "{logged:#?}"
    );

    // The short grant ends on time all the same: state and drop-in.
    d.wait_for_state(&short, "expired", Duration::from_secs(40));
    let lateness = SystemTime::now()
        .duration_since(short_ends)
        .unwrap_or_default();
    assert_eq!(sudoers_files(&d).0, BTreeSet::from([long.clone()]));
    assert!(
        lateness < Duration::from_secs(5),
        "the grant ended {lateness:?} after its end"
    );

    // Space returns: jitd takes requests again and records the expiry it could not, by itself.
    fs::remove_file(&filler).expect("remove filler");
    let freed = Instant::now();
    let deadline = freed + Duration::from_secs(30);
    while stored_state(&d, &short) != "expired"
        || !audit_events(&d, &short).contains(&"expired".to_string())
    {
        assert!(
            Instant::now() < deadline,
            "30 s after space returned, the expiry of {short} is not recorded: stored {}, logged {:?}",
            stored_state(&d, &short),
            audit_events(&d, &short)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let recorded_after = freed.elapsed();
    let ended_late = stored_lateness(&d, &short);
    let again = ok(d.elevate_as(&op, &["--no-wait", "--reason", "y", "--", "/usr/bin/id"]));
    ok(d.jitd(&["approve", &pending]));
    eprintln!(
        "disk full: {refusals} changes refused; the grant ended {:.1} ms after its end by \
         jitd's record ({:.0} ms as `jitd show` saw it); its expiry was stored and logged {:.0} \
         ms after space returned",
        millis(ended_late),
        millis(lateness),
        millis(recorded_after)
    );

    // Nothing acknowledged is lost, also across a crash.
    d.kill9();
    assert_audit_verifies(&d, "after the disk was full");
    d.restart();
    assert_eq!(d.state_of(&pending), "active");
    assert_eq!(d.state_of(&long), "active");
    assert_eq!(d.state_of(&short), "expired");
    assert_eq!(d.state_of(&again), "pending");
    assert_host_matches_records(&d, "after the disk was full");
    let short_events = audit_events(&d, &short);
    assert_eq!(
        short_events.iter().filter(|e| *e == "expired").count(),
        1,
        "{short_events:?}"
    );
}

/// Waits (with a deadline) until `done` holds, saying `what` if it never does.
fn wait_for(what: &str, deadline: Duration, mut done: impl FnMut() -> bool) {
    let until = Instant::now() + deadline;
    while !done() {
        assert!(Instant::now() < until, "{what}: not within {deadline:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A grant failed by a reconciliation (its program became its holder's) while the state
/// directory is full: withdrawn at once, and stored as failed once space returns, without a
/// restart. Before, the failure was never stored: a restart after the program was repaired
/// found the grant active and installed it again, though it had been withdrawn and logged as
/// failed.
#[test]
fn a_grant_failed_while_the_disk_is_full_is_stored_as_failed_once_space_returns() {
    let alice = TestUser::create("dff");
    let programs = RootDir::new();
    let prog = programs.program("prog", "echo hi");
    let mut mounted = None;
    // The periodic reconciliation every 200 ms instead of every minute.
    let d = Daemon::start_custom("", &["env", "JITD_TEST_RECONCILE_MS=200"], |dir| {
        mounted = Some(Tmpfs::mount(&dir.join("state"), "1m"));
    });
    let _unmount = mounted;
    let id = ok(d.jitd(&[
        "grant",
        &alice.name,
        "--for",
        "5m",
        "--reason",
        "x",
        "--",
        &prog,
    ]));
    assert_eq!(stored_state(&d, &id), "active");
    let filler = fill(&d.dir().join("state"));
    std::os::unix::fs::chown(&prog, Some(alice.uid), None).unwrap();
    wait_for("withdrawn", Duration::from_secs(10), || {
        d.state_of(&id) == "failed"
    });
    assert!(
        !sudoers_files(&d).0.contains(&id),
        "the drop-in goes whatever the disk says"
    );
    assert_eq!(
        stored_state(&d, &id),
        "active",
        "the full disk refused the record (else this test shows nothing)"
    );
    fs::remove_file(&filler).unwrap();
    wait_for("stored as failed", Duration::from_secs(10), || {
        stored_state(&d, &id) == "failed"
    });
    wait_for("logged", Duration::from_secs(10), || {
        audit_events(&d, &id).contains(&"grant_failed".to_string())
    });
}

// ---- the wall clock steps ---------------------------------------------------------------

/// The wall clock as a test jitd reads it: the real one plus an offset kept in a file
/// (`JITD_TEST_WALL_OFFSET`, a hook of the failpoints build), so a test steps jitd's wall
/// clock by hours without touching the machine's. CLOCK_BOOTTIME is not moved: like a real
/// `date -s`.
struct SteppedWall {
    _dir: jit_tests::TempDir,
    file: PathBuf,
    offset: std::cell::Cell<i64>,
}

impl SteppedWall {
    fn new() -> SteppedWall {
        let dir = jit_tests::TempDir::new("wall");
        let file = dir.path().join("offset");
        fs::write(&file, "0\n").expect("offset file");
        SteppedWall {
            _dir: dir,
            file,
            offset: std::cell::Cell::new(0),
        }
    }

    fn env(&self) -> [(&str, &str); 1] {
        [(
            "JITD_TEST_WALL_OFFSET",
            self.file.to_str().expect("utf-8 path"),
        )]
    }

    /// Steps the wall clock by `secs` (negative: back), atomically for the reader.
    fn step(&self, secs: i64) {
        self.offset.set(self.offset.get() + secs);
        let tmp = self.file.with_extension("tmp");
        fs::write(&tmp, format!("{}\n", self.offset.get())).expect("offset");
        fs::rename(&tmp, &self.file).expect("offset");
    }
}

/// The `NOTAFTER` of grant `id`'s drop-in, as the system clock's time.
fn not_after(d: &Daemon, id: &str) -> SystemTime {
    let rule =
        fs::read_to_string(d.dir().join("sudoers.d").join(format!("jit_{id}"))).expect("drop-in");
    let at = rule
        .split("NOTAFTER=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no NOTAFTER in {rule}"));
    // YYYYMMDDHHMMSSZ → what date(1) reads.
    let b = at.as_bytes();
    let s = |r: std::ops::Range<usize>| std::str::from_utf8(&b[r]).expect("digits");
    parse_time(&format!(
        "{}-{}-{}T{}:{}:{}Z",
        s(0..4),
        s(4..6),
        s(6..8),
        s(8..10),
        s(10..12),
        s(12..14)
    ))
}

const HOURS_3: i64 = 3 * 3600;

/// A wall clock set forward by three hours: the grant of one hour ends at once (early by less
/// than the step), the grant of four hours does not (it loses the three hours, no more).
#[test]
fn a_wall_clock_set_forward_ends_grants_early_by_no_more_than_the_step() {
    let wall = SteppedWall::new();
    let op = TestUser::create("cfw");
    let d = Daemon::start_with_env("", &wall.env());
    let hour = ok(d.jitd(&[
        "grant",
        &op.name,
        "--for",
        "1h",
        "--reason",
        "x",
        "--",
        "/usr/bin/id",
    ]));
    let four = ok(d.jitd(&[
        "grant",
        &op.name,
        "--for",
        "4h",
        "--reason",
        "x",
        "--",
        "/usr/bin/true",
    ]));
    let four_ends = time_of(&d, &four, "expires_at");
    let approved = Instant::now();
    wall.step(HOURS_3);
    d.wait_for_state(&hour, "expired", Duration::from_secs(10));
    let ended_after = approved.elapsed();
    assert_eq!(sudoers_files(&d).0, BTreeSet::from([four.clone()]));
    // The scheduler sees a step within a second; give it three.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        d.state_of(&four),
        "active",
        "the 4 h grant lost more than the step"
    );
    assert_eq!(
        time_of(&d, &four, "expires_at"),
        four_ends,
        "its end did not move"
    );
    eprintln!(
        "clock +3 h: the 1 h grant ended {:.0} ms after the step; the 4 h grant stayed active",
        millis(ended_after)
    );
    assert_audit_verifies(&d, "after a step forward");
}

/// A wall clock set back by three hours gives no grant any time: not while jitd runs, not
/// after it restarts (same boot), and the drop-in's NOTAFTER is moved back by the step so
/// that sudo's own backstop, which reads the wall clock, still ends it on time.
#[test]
fn a_wall_clock_set_back_gives_no_grant_more_time_even_across_a_restart() {
    let wall = SteppedWall::new();
    let op = TestUser::create("cbk");
    let mut d = Daemon::start_with_env("", &wall.env());
    let before = ok(d.jitd(&[
        "grant",
        &op.name,
        "--for",
        "20s",
        "--reason",
        "x",
        "--",
        "/usr/bin/id",
    ]));
    let before_ends = time_of(&d, &before, "expires_at");
    wall.step(-HOURS_3);
    // Approved after the step: jitd's time goes on from where it was, three hours ahead of
    // the wall clock.
    let after = ok(d.jitd(&[
        "grant",
        &op.name,
        "--for",
        "10s",
        "--reason",
        "x",
        "--",
        "/usr/bin/true",
    ]));
    let after_ends = time_of(&d, &after, "expires_at");
    assert!(
        after_ends > before_ends - Duration::from_secs(20),
        "a grant approved after the step starts at jitd's time, not the wall clock's"
    );
    // A crash and a restart on the same boot: jitd must not start over from the wall clock.
    d.kill9();
    d.restart();
    assert_eq!(d.state_of(&before), "active");
    assert_eq!(d.state_of(&after), "active");
    assert!(!d.log().contains("quarantined"), "{}", d.log());
    // sudo reads the wall clock: each NOTAFTER is its grant's end as the wall clock will show it.
    let step = Duration::from_secs(HOURS_3 as u64);
    for (id, ends) in [(&before, before_ends), (&after, after_ends)] {
        let notafter = not_after(&d, id);
        assert!(
            notafter <= ends - step + Duration::from_secs(1),
            "{id}: NOTAFTER {notafter:?} lets sudo run it until {:?} past its end",
            notafter.duration_since(ends - step).unwrap_or_default()
        );
    }
    for (id, ends) in [(&after, after_ends), (&before, before_ends)] {
        let left = ends.duration_since(SystemTime::now()).unwrap_or_default();
        d.wait_for_state(id, "expired", left + Duration::from_secs(10));
        let seen = SystemTime::now().duration_since(ends).unwrap_or_default();
        eprintln!(
            "clock -3 h, restart: grant {id} ended {:.1} ms after its end by jitd's record; \
             `jitd show` saw it {:.0} ms after its end (shown to the second)",
            millis(stored_lateness(&d, id)),
            millis(seen)
        );
    }
    assert_host_matches_records(&d, "after a step back and a restart");
}

/// Across a reboot only the wall clock is left (`<state_dir>/clock` names another boot; here it
/// is removed, as a reboot makes it stale). Set back 3 h while jitd was down, the clock is
/// earlier than a 10-minute grant's approval: the grant keeps at most its 10 minutes from now,
/// not 3 h 10 m, and its drop-in's NOTAFTER follows.
#[test]
fn a_clock_set_back_while_jitd_was_down_leaves_a_grant_no_more_than_its_approved_length() {
    let wall = SteppedWall::new();
    let op = TestUser::create("cdn");
    let mut d = Daemon::start_with_env("", &wall.env());
    let id = ok(d.jitd(&[
        "grant",
        &op.name,
        "--for",
        "10m",
        "--reason",
        "x",
        "--",
        "/usr/bin/id",
    ]));
    d.kill9();
    fs::remove_file(d.state_dir().join("clock")).expect("the kept clock");
    wall.step(-HOURS_3);
    d.restart_with_env(&wall.env());
    assert_eq!(d.state_of(&id), "active");
    let ends = time_of(&d, &id, "expires_at");
    let now_for_jitd = SystemTime::now() - Duration::from_secs(HOURS_3 as u64);
    let left = ends.duration_since(now_for_jitd).unwrap_or_default();
    assert!(
        left <= Duration::from_secs(10 * 60 + 5),
        "the grant has {left:?} left after the clock was set back 3 h while jitd was down"
    );
    assert!(
        d.log().contains("earlier than grant") && d.log().contains("its approved length from now"),
        "{}",
        d.log()
    );
    // sudo reads the wall clock: the drop-in ends with the capped grant (after reconciling).
    let deadline = Instant::now() + Duration::from_secs(30);
    while not_after(&d, &id) > ends + Duration::from_secs(1) {
        assert!(Instant::now() < deadline, "NOTAFTER still at the old end");
        std::thread::sleep(Duration::from_millis(100));
    }
}
