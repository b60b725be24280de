//! Security round 2, as the attacks read: jitd trusts only state its own user wrote (no links,
//! nothing others may write), does not enforce records the policy or the audit trail cannot
//! account for, writes sudo rules for the uid that asked, and checks decisions again when they
//! take effect.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

use jit_tests::{ok, text, Daemon, TestGroup, TestUser};

/// All that a refused start said.
fn said(out: &std::process::Output) -> String {
    format!("{}{}", text(&out.stdout), text(&out.stderr))
}

/// A file outside the state directory that an attacker would like jitd to write to or read.
fn victim(dir: &Path, content: &str) -> std::path::PathBuf {
    let path = dir.join("victim");
    fs::write(&path, content).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    path
}

#[test]
fn a_symlink_planted_as_audit_log_is_refused_not_followed() {
    let (out, dir) = Daemon::start_refused("", |dir| {
        let target = victim(dir, "precious\n");
        symlink(&target, dir.join("state/audit.log")).unwrap();
    });
    assert!(!out.status.success());
    let said = said(&out);
    assert!(
        said.contains("audit.log is a symbolic link") && said.contains("remove the link"),
        "{said}"
    );
    assert_eq!(
        fs::read_to_string(dir.path().join("victim")).unwrap(),
        "precious\n",
        "jitd wrote through the link"
    );
}

#[test]
fn a_symlink_planted_as_a_request_file_is_refused_not_followed() {
    let mut d = Daemon::start();
    let alice = TestUser::create("alice");
    let id = ok(d.elevate_as(
        &alice,
        &["--no-wait", "--reason", "x", "--", "/usr/bin/id", "-u"],
    ));
    d.kill9();
    // The record now lives where its owner cannot vouch for it: a link to elsewhere.
    let file = d.state_dir().join(format!("requests/{id}.json"));
    let elsewhere = d.dir().join("forged.json");
    fs::rename(&file, &elsewhere).unwrap();
    symlink(&elsewhere, &file).unwrap();
    let out = d.restart_refused();
    let said = said(&out);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains(&format!("{id}.json is a symbolic link")),
        "{said}"
    );
    // Put back as jitd's own file, it loads again.
    fs::remove_file(&file).unwrap();
    fs::rename(&elsewhere, &file).unwrap();
    d.restart();
    assert_eq!(d.state_of(&id), "pending");
}

#[test]
fn a_group_writable_state_dir_stops_jitd_and_it_says_why() {
    let (out, dir) = Daemon::start_refused("", |dir| {
        fs::set_permissions(dir.join("state"), fs::Permissions::from_mode(0o770)).unwrap();
    });
    assert!(!out.status.success());
    let said = said(&out);
    let state = dir.path().join("state").display().to_string();
    assert!(
        said.contains(&format!("{state} is writable by its group"))
            && said.contains(&format!("chown root:root {state} && chmod go-w {state}")),
        "{said}"
    );
}

#[test]
fn a_request_file_someone_else_owns_stops_jitd() {
    let mut d = Daemon::start();
    let alice = TestUser::create("alice");
    let id = ok(d.elevate_as(
        &alice,
        &["--no-wait", "--reason", "x", "--", "/usr/bin/id", "-u"],
    ));
    let file = d.state_dir().join(format!("requests/{id}.json"));
    d.kill9();
    std::os::unix::fs::chown(&file, Some(alice.uid), None).unwrap();
    let out = d.restart_refused();
    let said = said(&out);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains(&format!("{id}.json is owned by uid {}", alice.uid)),
        "{said}"
    );
}

/// An approver (`bob`, in the approver group) on a fresh daemon.
fn with_approver() -> (Daemon, TestUser, TestGroup) {
    let approvers = TestGroup::create("appr");
    let bob = TestUser::create("bob");
    approvers.add(&bob);
    let d = Daemon::start_with(&format!("approver_groups = [\"{}\"]", approvers.name));
    (d, bob, approvers)
}

#[test]
fn a_uid_renamed_between_request_and_approval_gets_no_sudo_rule_and_the_name_no_root() {
    let (d, bob, _approvers) = with_approver();
    let mut alice = TestUser::create("alice");
    let id = ok(d.elevate_as(
        &alice,
        &["--no-wait", "--reason", "x", "--", "/usr/bin/id", "-u"],
    ));
    // alice's uid gets another name, and someone else takes the name she asked under.
    let asked_as = alice.name.clone();
    alice.rename(&format!("{asked_as}r"));
    let impostor = TestUser::create_named(&asked_as);
    let _ = d.jitd_as(&bob, &["approve", &id]);
    let shown = d.show(&id);
    assert_eq!(shown["state"], "failed", "{shown}");
    let why = shown["failure"].as_str().unwrap_or_default();
    assert!(
        why.contains(&format!(
            "the name of uid {} changed since the request",
            alice.uid
        )),
        "{why}"
    );
    assert!(
        !d.dir().join(format!("sudoers.d/jit_{id}")).exists(),
        "a rule was written for {} (uid {})",
        impostor.name,
        impostor.uid
    );
}

/// `alice` in `ops` may ask for `/usr/bin/id -u` (role `restart`); `bob` and `carol` in
/// `leads` approve, `approvals` of them needed.
struct Team {
    d: Daemon,
    ops: TestGroup,
    leads: TestGroup,
    alice: TestUser,
    bob: TestUser,
    carol: TestUser,
}

fn team(approvals: u32) -> Team {
    let (ops, leads) = (TestGroup::create("ops"), TestGroup::create("lead"));
    let (alice, bob, carol) = (
        TestUser::create("alice"),
        TestUser::create("bob"),
        TestUser::create("carol"),
    );
    ops.add(&alice);
    leads.add(&bob);
    leads.add(&carol);
    let d = Daemon::start_with(&format!(
        "[[role]]\nname = \"restart\"\ncommands = [\"/usr/bin/id -u\"]\n\
         requester_groups = [\"{}\"]\napprover_groups = [\"{}\"]\napprovals = {approvals}\n",
        ops.name, leads.name
    ));
    Team {
        d,
        ops,
        leads,
        alice,
        bob,
        carol,
    }
}

impl Team {
    fn ask(&self) -> String {
        ok(self.d.elevate_as(
            &self.alice,
            &["--no-wait", "--reason", "x", "--", "/usr/bin/id", "-u"],
        ))
    }
}

#[test]
fn a_requester_taken_out_of_the_roles_group_is_refused_at_approval() {
    let t = team(1);
    let id = t.ask();
    t.ops.remove(&t.alice);
    let out = t.d.jitd_as(&t.bob, &["approve", &id]);
    let said = text(&out.stderr);
    assert!(!out.status.success(), "approved: {}", text(&out.stdout));
    assert!(
        said.contains(&format!(
            "{} may no longer have what request {id} asks for",
            t.alice.name
        )) && said.contains(&format!(
            "only members of {} may request role restart",
            t.ops.name
        )),
        "{said}"
    );
    assert_eq!(t.d.state_of(&id), "pending");
    assert!(!t.d.dir().join(format!("sudoers.d/jit_{id}")).exists());
}

#[test]
fn after_a_reload_an_approval_by_someone_no_longer_an_approver_does_not_count() {
    let t = team(2);
    let id = t.ask();
    ok(t.d.jitd_as(&t.bob, &["approve", &id]));
    assert_eq!(t.d.show(&id)["approvals_missing"], 1);
    t.leads.remove(&t.bob);
    let said = ok(t.d.jitd(&["reload"]));
    assert!(said.contains("1 updated"), "{said}");
    ok(t.d.jitd_as(&t.carol, &["approve", &id]));
    let shown = t.d.show(&id);
    assert_eq!(shown["state"], "pending", "{shown}");
    assert_eq!(shown["approvals_missing"], 1, "{shown}");
    assert_eq!(shown["decisions"][0]["by"], t.bob.name.as_str());
    assert_eq!(shown["decisions"][0]["voided"], true, "{shown}");
    let audit = fs::read_to_string(t.d.state_dir().join("audit.log")).unwrap();
    assert!(
        audit.contains(&format!("{}'s approval no longer counts", t.bob.name)),
        "{audit}"
    );
    // A second approver who still is one completes it.
    let dave = TestUser::create("dave");
    t.leads.add(&dave);
    ok(t.d.jitd_as(&dave, &["approve", &id]));
    assert_eq!(t.d.state_of(&id), "active");
}

/// RFC 3339 UTC, whole seconds, `secs` from now.
fn stamp(secs: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    ok(std::process::Command::new("date")
        .args([
            "-u",
            "-d",
            &format!("@{}", now + secs),
            "+%Y-%m-%dT%H:%M:%SZ",
        ])
        .output()
        .unwrap())
}

/// Rewrites request `id`'s record in a stopped daemon's state directory.
fn forge(d: &Daemon, id: &str, change: impl FnOnce(&mut serde_json::Value)) {
    let file = d.state_dir().join(format!("requests/{id}.json"));
    let mut record: serde_json::Value = serde_json::from_slice(&fs::read(&file).unwrap()).unwrap();
    change(&mut record);
    fs::write(&file, serde_json::to_vec_pretty(&record).unwrap()).unwrap();
}

/// Request `id` was set aside at startup: not loaded, no drop-in, its record in quarantine/,
/// and a `quarantined` event saying `why` in the audit log and the daemon's log.
fn assert_quarantined(d: &Daemon, id: &str, why: &str) {
    let out = d.jitd(&["show", id]);
    assert!(
        !out.status.success(),
        "{id} is loaded: {}",
        text(&out.stdout)
    );
    assert!(
        !d.dir().join(format!("sudoers.d/jit_{id}")).exists(),
        "grant {id} is installed"
    );
    assert!(!d.state_dir().join(format!("requests/{id}.json")).exists());
    let aside: Vec<String> = fs::read_dir(d.state_dir().join("quarantine"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(aside.iter().any(|n| n.starts_with(id)), "{aside:?}");
    let audit = fs::read_to_string(d.state_dir().join("audit.log")).unwrap();
    let event = audit
        .lines()
        .find(|l| l.contains("\"event\":\"quarantined\"") && l.contains(id))
        .unwrap_or_else(|| panic!("no quarantined event for {id}:\n{audit}"));
    assert!(event.contains(why), "{event}");
    assert!(
        d.log().contains("quarantined: ") && d.log().contains(why),
        "{}",
        d.log()
    );
}

#[test]
fn a_forged_active_grant_with_no_approval_in_the_audit_log_is_quarantined_not_installed() {
    let (mut d, bob, _approvers) = with_approver();
    let alice = TestUser::create("alice");
    let id = ok(d.elevate_as(
        &alice,
        &["--no-wait", "--reason", "x", "--", "/usr/bin/id", "-u"],
    ));
    d.kill9();
    // While jitd is down, the pending request becomes an active grant bob never approved.
    forge(&d, &id, |r| {
        r["phase"] = serde_json::json!({
            "phase": "active",
            "window": { "approved_at": stamp(0), "expires_at": stamp(3600) },
        });
        r["decisions"] = serde_json::json!([{
            "action": "approve", "by": bob.name, "by_uid": bob.uid, "at": stamp(0), "note": null,
        }]);
    });
    d.restart();
    assert_quarantined(&d, &id, "no approval of it is in the audit log");
    // Nothing else was held back: the daemon serves.
    let next = ok(d.elevate_as(
        &alice,
        &["--no-wait", "--reason", "y", "--", "/usr/bin/id", "-u"],
    ));
    assert_eq!(d.state_of(&next), "pending");
}

#[test]
fn a_grant_stretched_to_a_30_day_window_while_jitd_was_down_is_quarantined() {
    let (mut d, bob, _approvers) = with_approver();
    let alice = TestUser::create("alice");
    let id = ok(d.elevate_as(
        &alice,
        &[
            "--no-wait",
            "--for",
            "1h",
            "--reason",
            "x",
            "--",
            "/usr/bin/id",
            "-u",
        ],
    ));
    ok(d.jitd_as(&bob, &["approve", &id]));
    assert!(d.dir().join(format!("sudoers.d/jit_{id}")).exists());
    d.kill9();
    // The approval is genuine; the window now starts 30 days before its end. From the end as
    // stored (not from the time now, which may be a second later than the approval).
    forge(&d, &id, |r| {
        let end = r["phase"]["window"]["expires_at"]
            .as_str()
            .unwrap()
            .to_string();
        let start = ok(std::process::Command::new("date")
            .args([
                "-u",
                "-d",
                &format!("{end} - 30 days"),
                "+%Y-%m-%dT%H:%M:%S.%NZ",
            ])
            .output()
            .unwrap());
        r["phase"]["window"]["approved_at"] = serde_json::json!(start);
    });
    d.restart();
    assert_quarantined(
        &d,
        &id,
        "its window of 30d is longer than the maximum of 4h",
    );
}

/// Security round 3, the attack: alice leaves `JITD_CONFIG` in her environment, naming her own
/// configuration whose `state_dir` holds a trail she wrote; an administrator who became root
/// with `su` (not `su -`) keeps that environment. Root's `jitd audit verify`, `jitd audit`,
/// `jitd report` and `check-config` must not read her files: they refuse, name the file and
/// say what to do.
#[test]
fn root_refuses_a_configuration_from_another_users_environment() {
    let alice = TestUser::create("envcfg");
    let home = format!("/home/{}", alice.name);
    let config = format!("{home}/jitd.toml");
    let forged = alice
        .command("sh")
        .arg("-c")
        .arg(format!(
            "mkdir -m 700 {home}/state && : > {home}/state/audit.log && \
             printf 'state_dir = \"%s/state\"\\n' {home} > {config}"
        ))
        .output()
        .unwrap();
    assert!(forged.status.success(), "{forged:?}");
    for args in [
        &["audit", "verify"][..],
        &["audit"][..],
        &["report"][..],
        &["check-config"][..],
    ] {
        let out = std::process::Command::new(jit_tests::bin("jitd"))
            .args(args)
            .env("JITD_CONFIG", &config)
            .output()
            .unwrap();
        let said = said(&out);
        assert_eq!(out.status.code(), Some(4), "{args:?}: {said}");
        assert!(
            said.contains(&config)
                && said.contains(&format!("owned by uid {}", alice.uid))
                && said.contains("su -")
                && said.contains("unset JITD_CONFIG"),
            "{args:?}: {said}"
        );
    }

    // A root-owned configuration naming her state directory: the state directory is refused.
    let dir = jit_tests::TempDir::new("envcfg");
    let root_config = dir.path().join("jitd.toml");
    fs::write(&root_config, format!("state_dir = \"{home}/state\"\n")).unwrap();
    for args in [&["audit", "verify"][..], &["report"][..]] {
        let out = std::process::Command::new(jit_tests::bin("jitd"))
            .args(args)
            .arg("--config")
            .arg(&root_config)
            .output()
            .unwrap();
        let said = said(&out);
        assert_eq!(out.status.code(), Some(4), "{args:?}: {said}");
        assert!(
            said.contains("state_dir") && said.contains(&format!("owned by uid {}", alice.uid)),
            "{args:?}: {said}"
        );
    }
}
