//! Faults (issue #15): jitd killed at every step of installing, removing and approving a grant;
//! a state directory that fills up; the wall clock stepped by hours under active grants. Each
//! story injects the fault into a real jitd and checks what must hold afterwards: the host
//! matches the records, the audit chain verifies, nothing acknowledged is lost, no grant lasts
//! longer than approved. The figures these stories print are in docs/faults.md.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Output};
use std::time::Duration;

use jit_tests::{json, ok, text, Daemon, TestUser};

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

/// The events the audit log holds for request `id`, oldest first.
fn audit_events(d: &Daemon, id: &str) -> Vec<String> {
    let out = audit(d, &["--id", id, "--json"]);
    assert!(
        out.status.success(),
        "jitd audit --id: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("audit --json line");
            v["event"].as_str().unwrap_or_default().to_string()
        })
        .collect()
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
