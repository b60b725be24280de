//! The policy's user stories: roles, N-of-M approvals, self-approval, automatic approval,
//! break-glass and its review, extensions, explain and reload — against a real jitd with real
//! CLIs, real Unix users and groups.

use std::time::Duration;

use jit_tests::{json, ok, text, Daemon, TestGroup, TestUser};

/// An operator in `ops`, two approvers in `leads`, someone on call, and a bystander.
struct Team {
    ops: TestGroup,
    leads: TestGroup,
    oncall: TestGroup,
    alice: TestUser,
    bob: TestUser,
    carol: TestUser,
    olga: TestUser,
    eve: TestUser,
}

fn team() -> Team {
    let t = Team {
        ops: TestGroup::create("ops"),
        leads: TestGroup::create("lead"),
        oncall: TestGroup::create("call"),
        alice: TestUser::create("alice"),
        bob: TestUser::create("bob"),
        carol: TestUser::create("carol"),
        olga: TestUser::create("olga"),
        eve: TestUser::create("eve"),
    };
    t.ops.add(&t.alice);
    t.leads.add(&t.bob);
    t.leads.add(&t.carol);
    t.oncall.add(&t.olga);
    t
}

impl Team {
    /// `{ops}`, `{leads}` and `{oncall}` in `policy` become the real group names.
    fn daemon(&self, policy: &str) -> Daemon {
        Daemon::start_with(&self.fill(policy))
    }

    fn fill(&self, policy: &str) -> String {
        policy
            .replace("{ops}", &self.ops.name)
            .replace("{leads}", &self.leads.name)
            .replace("{oncall}", &self.oncall.name)
    }
}

/// `user` asks without waiting; returns the new request's id.
fn ask(d: &Daemon, user: &TestUser, args: &[&str]) -> String {
    let mut all = vec!["--no-wait", "--reason", "INC-1 routine"];
    all.extend_from_slice(args);
    let id = ok(d.elevate_as(user, &all));
    assert_eq!(id.len(), 10, "{id:?}");
    id
}

fn approve(d: &Daemon, who: &TestUser, id: &str) -> serde_json::Value {
    json(d.jitd_as(who, &["approve", id, "--json"]))
}

/// The current UTC hour, for windows around (or away from) now.
fn utc_hour() -> u64 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    secs / 3600 % 24
}

fn hours(from: u64, to: u64) -> String {
    format!("{:02}:00-{:02}:00", from % 24, to % 24)
}

#[test]
fn two_approvals_are_needed_and_one_approver_counts_once() {
    let t = team();
    let d = t.daemon(
        r#"
[[role]]
name = "restart"
commands = ["/usr/bin/id -u"]
requester_groups = ["{ops}"]
approver_groups = ["{leads}"]
approvals = 2
"#,
    );
    let id = ask(&d, &t.alice, &["--", "/usr/bin/id", "-u"]);
    let shown = d.show(&id);
    assert_eq!(shown["role"], "restart");
    assert_eq!(shown["approvals_required"], 2);
    assert_eq!(shown["approvals_missing"], 2);
    assert_eq!(shown["approver_groups"][0], t.leads.name.as_str());

    assert_eq!(approve(&d, &t.bob, &id)["approvals_missing"], 1);
    let again = approve(&d, &t.bob, &id);
    assert_eq!(
        again["state"], "pending",
        "bob's second approval counts once"
    );
    assert_eq!(again["approvals_missing"], 1);
    let detail = ok(d.jitd(&["show", &id]));
    assert!(
        detail.contains("1 of 2") && detail.contains(&format!("by {}", t.bob.name)),
        "{detail}"
    );

    assert_eq!(approve(&d, &t.carol, &id)["state"], "active");
}

#[test]
fn the_waiting_requester_sees_approvals_done_and_needed() {
    let t = team();
    let d = t.daemon(
        r#"
[[role]]
name = "login"
ssh = true
requester_groups = ["{ops}"]
approver_groups = ["{leads}"]
approvals = 2
"#,
    );
    let waiting = {
        let socket = d.socket();
        let alice = t.alice.identity();
        std::thread::spawn(move || {
            alice
                .command(jit_tests::bin("jit-elevate"))
                .arg("--socket")
                .arg(socket)
                .args(["--ssh", "--reason", "debug"])
                .output()
                .unwrap()
        })
    };
    let id = d.wait_for_pending();
    approve(&d, &t.bob, &id);
    // Give the waiting line a poll to show the first approval.
    std::thread::sleep(Duration::from_millis(1200));
    approve(&d, &t.carol, &id);
    let out = waiting.join().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stderr);
    assert!(said.contains("0 of 2 approval(s) in, 2 more"), "{said}");
    assert!(said.contains("1 of 2 approval(s) in, 1 more"), "{said}");
}

#[test]
fn with_deny_ends_off_a_deny_is_recorded_and_another_approver_may_still_approve() {
    let t = team();
    let d = t.daemon(
        r#"
[[role]]
name = "restart"
commands = ["/usr/bin/id -u"]
requester_groups = ["{ops}"]
approver_groups = ["{leads}"]
deny_ends = false
"#,
    );
    let id = ask(&d, &t.alice, &["--", "/usr/bin/id", "-u"]);
    let shown = json(d.jitd_as(&t.bob, &["deny", &id, "--reason", "not sure", "--json"]));
    assert_eq!(shown["state"], "pending");
    assert_eq!(shown["decisions"][0]["action"], "deny");
    assert_eq!(approve(&d, &t.carol, &id)["state"], "active");
}

#[test]
fn self_approval_is_refused_unless_the_role_allows_it() {
    let t = team();
    let d = t.daemon(
        r#"
[[role]]
name = "strict"
commands = ["/usr/bin/id -u"]
requester_groups = ["{leads}"]
approver_groups = ["{leads}"]

[[role]]
name = "lenient"
commands = ["/usr/bin/id -g"]
requester_groups = ["{leads}"]
approver_groups = ["{leads}"]
self_approval = true
"#,
    );
    let strict = ask(&d, &t.bob, &["--", "/usr/bin/id", "-u"]);
    let out = d.jitd_as(&t.bob, &["approve", &strict]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("own request"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(d.state_of(&strict), "pending");

    let lenient = ask(&d, &t.bob, &["--", "/usr/bin/id", "-g"]);
    assert_eq!(approve(&d, &t.bob, &lenient)["state"], "active");
}

#[test]
fn a_rule_approves_at_once_inside_its_window_and_not_outside() {
    let t = team();
    let h = utc_hour();
    let d = t.daemon(&format!(
        r#"
[[role]]
name = "login"
ssh = true
requester_groups = ["{{ops}}"]
approver_groups = ["{{leads}}"]
max_duration = "4h"

[[role.auto_approve]]
name = "around-now"
hours = "{inside}"
timezone = "UTC"
groups = ["{{ops}}"]
max_duration = "1h"

[[role]]
name = "restart"
commands = ["/usr/bin/id -u"]
requester_groups = ["{{ops}}"]
approver_groups = ["{{leads}}"]

[[role.auto_approve]]
name = "later"
hours = "{outside}"
timezone = "UTC"
"#,
        inside = hours(h + 23, h + 2),
        outside = hours(h + 3, h + 4),
    ));
    // Inside the window jit-elevate gets its grant at once, recorded as the rule's.
    let out = d.elevate_as(&t.alice, &["--ssh", "--for", "30m", "--reason", "debug"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("SSH login to this host granted until"));
    let listed = json(d.jitd(&["list", "--json"]));
    let granted = &listed.as_array().unwrap()[0];
    assert_eq!(granted["state"], "active");
    assert_eq!(granted["decisions"][0]["by"], "rule:around-now");
    assert!(
        d.log().contains("approver=\"rule:around-now\""),
        "{}",
        d.log()
    );

    // Longer than the rule allows: people decide.
    let long = ask(&d, &t.alice, &["--ssh", "--for", "2h"]);
    assert_eq!(d.state_of(&long), "pending");
    // Outside the other rule's window: people decide.
    let later = ask(&d, &t.alice, &["--", "/usr/bin/id", "-u"]);
    assert_eq!(d.state_of(&later), "pending");
}

#[test]
fn a_requester_outside_the_roles_groups_is_told_what_they_may_ask_for() {
    let t = team();
    let d = t.daemon(
        r#"
[[role]]
name = "restart"
commands = ["/usr/bin/id -u"]
requester_groups = ["{ops}"]
approver_groups = ["{leads}"]
"#,
    );
    let out = d.elevate_as(
        &t.eve,
        &["--no-wait", "--reason", "x", "--", "/usr/bin/id", "-u"],
    );
    assert_eq!(out.status.code(), Some(14));
    assert!(
        text(&out.stderr).contains("may not request anything on this host"),
        "{}",
        text(&out.stderr)
    );
    let out = d.elevate_as(
        &t.alice,
        &["--no-wait", "--reason", "x", "--", "/usr/bin/id", "-g"],
    );
    assert_eq!(out.status.code(), Some(14));
    assert!(
        text(&out.stderr).contains("you may request: restart (/usr/bin/id -u)"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        d.request_ids().is_empty(),
        "refused requests are not recorded"
    );
}

#[test]
fn break_glass_is_granted_at_once_loudly_and_waits_for_review() {
    let t = team();
    let d = t.daemon(
        r#"
[[role]]
name = "glass"
commands = ["ALL"]
ssh = true
requester_groups = ["{oncall}"]
approver_groups = ["{leads}"]
break_glass = true
max_duration = "30m"
"#,
    );
    // Only by name, and only for the short maximum.
    let out = d.elevate_as(
        &t.olga,
        &["--no-wait", "--reason", "fire", "--", "/usr/bin/id"],
    );
    assert!(
        text(&out.stderr).contains("with --role glass"),
        "{}",
        text(&out.stderr)
    );
    let out = d.elevate_as(
        &t.olga,
        &[
            "--no-wait",
            "--role",
            "glass",
            "--for",
            "1h",
            "--reason",
            "fire",
            "--ssh",
        ],
    );
    assert!(
        text(&out.stderr).contains("maximum of 30m"),
        "{}",
        text(&out.stderr)
    );

    let id = ask(&d, &t.olga, &["--role", "glass", "--", "/usr/bin/id"]);
    let shown = d.show(&id);
    assert_eq!(shown["state"], "active");
    assert_eq!(shown["break_glass"], true);
    assert!(shown["review"].is_null());
    assert_eq!(shown["decisions"][0]["by"], "break-glass");
    assert!(d.log().contains("break_glass: BREAK-GLASS"), "{}", d.log());

    let backlog = json(d.jitd_as(&t.bob, &["list", "--unreviewed", "--json"]));
    assert_eq!(backlog[0]["id"], id.as_str());
    // Nobody reviews their own break-glass use, nor does a bystander.
    for who in [&t.olga, &t.eve] {
        let out = d.jitd_as(who, &["review", &id, "--comment", "fine"]);
        assert_eq!(out.status.code(), Some(1));
    }
    let reviewed = json(d.jitd_as(
        &t.bob,
        &["review", &id, "--comment", "outage INC-9, ok", "--json"],
    ));
    assert_eq!(reviewed["review"]["by"], t.bob.name.as_str());
    assert_eq!(reviewed["review"]["comment"], "outage INC-9, ok");
    assert_eq!(
        json(d.jitd(&["list", "--unreviewed", "--json"])),
        serde_json::json!([])
    );
    let out = d.jitd_as(&t.carol, &["review", &id, "--comment", "again"]);
    assert!(
        text(&out.stderr).contains("already reviewed"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn extensions_need_approval_move_the_deadline_and_stop_at_the_maximum() {
    let t = team();
    let d = t.daemon(
        r#"
[[role]]
name = "ext"
commands = ["/usr/bin/id -u"]
requester_groups = ["{ops}"]
approver_groups = ["{leads}"]
max_duration = "30m"

[[role]]
name = "ext-auto"
commands = ["/usr/bin/id -g"]
requester_groups = ["{ops}"]
approver_groups = ["{leads}"]
max_duration = "30m"

[[role.auto_approve]]
name = "short"
max_duration = "20m"
"#,
    );
    let id = ask(&d, &t.alice, &["--for", "10m", "--", "/usr/bin/id", "-u"]);
    approve(&d, &t.bob, &id);
    let before = d.show(&id)["expires_at"].as_str().unwrap().to_string();

    let out = d.elevate_as(&t.alice, &["extend", &id, "--for", "15m"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("needs 1 approval(s)"),
        "{}",
        text(&out.stderr)
    );
    let shown = d.show(&id);
    assert_eq!(shown["extension"]["duration_secs"], 900);
    assert_eq!(shown["expires_at"], before.as_str(), "not before approval");
    // Only the requester extends.
    assert_eq!(
        d.elevate_as(&t.eve, &["extend", &id, "--for", "1m"])
            .status
            .code(),
        Some(14)
    );

    let shown = approve(&d, &t.bob, &id);
    assert!(shown["extension"].is_null());
    assert_eq!(shown["duration_secs"], 1500);
    let after = shown["expires_at"].as_str().unwrap();
    assert!(after > before.as_str(), "{after} should be after {before}");
    // The drop-in was installed again with the new end.
    let notafter: String = after.chars().filter(|c| c.is_ascii_digit()).collect();
    let dropin = std::fs::read_to_string(d.dir().join(format!("sudoers.d/jit_{id}"))).unwrap();
    assert!(
        dropin.contains(&format!("NOTAFTER={notafter}Z")),
        "{dropin}"
    );

    // 25m so far; the role allows 30m in all.
    let out = d.elevate_as(&t.alice, &["extend", &id, "--for", "10m"]);
    assert_eq!(out.status.code(), Some(14));
    assert!(
        text(&out.stderr).contains("extend by at most 5m"),
        "{}",
        text(&out.stderr)
    );

    // A rule extends at once while the total stays within its own maximum.
    let auto = ask(&d, &t.alice, &["--for", "10m", "--", "/usr/bin/id", "-g"]);
    assert_eq!(d.state_of(&auto), "active");
    ok(d.elevate_as(&t.alice, &["extend", &auto, "--for", "5m"]));
    let shown = d.show(&auto);
    assert_eq!(
        (
            shown["duration_secs"].as_u64(),
            shown["extension"].is_null()
        ),
        (Some(900), true)
    );
    assert!(
        d.log().contains("rule short extended the grant by 5m"),
        "{}",
        d.log()
    );
    ok(d.elevate_as(&t.alice, &["extend", &auto, "--for", "10m"]));
    assert_eq!(
        d.show(&auto)["extension"]["duration_secs"],
        600,
        "25m is beyond the rule"
    );
}

#[test]
fn explain_says_which_role_matches_who_approves_and_when_a_rule_applies() {
    let t = team();
    let d = t.daemon(
        r#"
[[role]]
name = "restart"
commands = ["/usr/bin/id -u"]
requester_groups = ["{ops}"]
approver_groups = ["{leads}"]
approvals = 2
max_duration = "1h"

[[role.auto_approve]]
name = "business-hours"
days = ["mon", "tue", "wed", "thu", "fri"]
hours = "09:00-17:00"
timezone = "Europe/Berlin"

[[role]]
name = "anything"
commands = ["/usr/bin/id -*"]
requester_groups = ["{ops}"]
approver_groups = ["{leads}"]
"#,
    );
    let config = d.config_path();
    let explain = |user: &str, at: &str| {
        d.jitd(&[
            "explain",
            user,
            "--config",
            config.to_str().unwrap(),
            "--at",
            at,
            "--json",
            "--",
            "/usr/bin/id",
            "-u",
        ])
    };
    // Monday after the spring DST change: 07:30 UTC is 09:30 in Berlin.
    let e = json(explain(&t.alice.name, "2026-03-30T07:30:00Z"));
    assert_eq!(e["role"], "restart");
    assert_eq!(e["approvals_required"], 2);
    assert_eq!(e["approver_groups"][0], t.leads.name.as_str());
    assert_eq!(e["max_duration"], "1h");
    assert_eq!(e["automatic"], "business-hours");
    assert_eq!(e["roles"][1]["matches"], false);
    assert!(
        e["roles"][1]["why"]
            .as_str()
            .unwrap()
            .contains("more specific"),
        "{e}"
    );
    // The Friday before, 07:30 UTC was 08:30 in Berlin.
    let e = json(explain(&t.alice.name, "2026-03-27T07:30:00Z"));
    assert!(e["automatic"].is_null());
    assert!(
        e["auto_approve"][0]["why"]
            .as_str()
            .unwrap()
            .contains("outside 09:00-17:00"),
        "{e}"
    );
    assert!(
        e["outcome"]
            .as_str()
            .unwrap()
            .contains("waits for 2 approval(s)"),
        "{e}"
    );
    // Someone no role covers.
    let out = explain(&t.eve.name, "2026-03-30T07:30:00Z");
    assert_eq!(out.status.code(), Some(1));
    let e: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(e["allowed"], false);
    assert!(
        e["outcome"]
            .as_str()
            .unwrap()
            .contains("may not request anything"),
        "{e}"
    );
}

#[test]
fn an_invalid_reload_keeps_the_old_policy_and_a_valid_one_changes_pending_requests() {
    let t = team();
    let d = t.daemon(
        r#"
[[role]]
name = "restart"
commands = ["/usr/bin/id -u"]
requester_groups = ["{ops}"]
approver_groups = ["{leads}"]
approvals = 2

[[role]]
name = "legacy"
commands = ["/usr/bin/id -g"]
requester_groups = ["{ops}"]
approver_groups = ["{leads}"]
"#,
    );
    let restart = ask(&d, &t.alice, &["--", "/usr/bin/id", "-u"]);
    let legacy = ask(&d, &t.alice, &["--", "/usr/bin/id", "-g"]);

    // SIGHUP with a broken drop-in: rejected and logged, the old policy stays.
    d.write_drop_in(
        "bad.toml",
        "[[role]]\nname = \"bad\"\nssh = true\nrequester_users = [\"x\"]\nreason_pattern = \"(\"\n",
    );
    d.signal(libc::SIGHUP);
    d.wait_for_log(
        "rejected, the previous policy stays in force",
        Duration::from_secs(5),
    );
    assert!(
        d.log()
            .contains("bad.toml: line 5: key `role.reason_pattern`"),
        "{}",
        d.log()
    );
    let again = ask(&d, &t.alice, &["--", "/usr/bin/id", "-u"]);
    assert_eq!(d.show(&again)["approvals_required"], 2);
    assert_eq!(d.state_of(&legacy), "pending");

    // `jitd reload` with a valid policy: one approval now, and `legacy` is gone.
    std::fs::remove_file(d.dir().join("jitd.toml.d/bad.toml")).unwrap();
    let config = std::fs::read_to_string(d.config_path()).unwrap();
    let cut = config.find("[[role]]\nname = \"legacy\"").unwrap();
    std::fs::write(
        d.config_path(),
        config[..cut].replace("approvals = 2", "approvals = 1"),
    )
    .unwrap();
    let out = d.jitd_as(&t.bob, &["reload"]);
    assert_eq!(out.status.code(), Some(1), "only root reloads");
    let said = ok(d.jitd(&["reload"]));
    assert!(
        said.contains("policy reloaded") && said.contains("1 denied"),
        "{said}"
    );

    assert_eq!(d.show(&restart)["approvals_required"], 1);
    let gone = d.show(&legacy);
    assert_eq!(gone["state"], "denied");
    assert!(
        gone["decisions"][0]["note"]
            .as_str()
            .unwrap()
            .contains("no role"),
        "{gone}"
    );
    assert_eq!(approve(&d, &t.bob, &restart)["state"], "active");
    assert!(
        d.log().contains("config_reloaded: policy reloaded"),
        "{}",
        d.log()
    );
}

#[test]
fn check_config_errors_name_the_place_and_warnings_name_what_the_host_lacks() {
    let t = team();
    let d = t.daemon(
        r#"
[[role]]
name = "restart"
commands = ["/usr/bin/id -u", "/opt/nowhere/tool"]
requester_groups = ["{ops}", "no-such-group-anywhere"]
approver_groups = ["{leads}"]

[[role]]
name = "everything"
commands = ["ALL"]
requester_groups = ["{ops}"]
"#,
    );
    let config = d.config_path();
    let out = d.jitd(&["check-config", config.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let warnings = text(&out.stderr);
    let written = std::fs::read_to_string(&config).unwrap();
    let line_of = |key: &str| 1 + written.lines().position(|l| l.starts_with(key)).unwrap();
    for says in [
        format!(
            "line {}: key `role.requester_groups`: there is no group \"no-such-group-anywhere\"",
            line_of("requester_groups")
        ),
        format!(
            "line {}: key `role.commands`: there is no program \"/opt/nowhere/tool\"",
            line_of("commands")
        ),
        "roles restart and everything both cover".to_string(),
    ] {
        assert!(
            warnings.contains(&says),
            "{says:?} missing from:\n{warnings}"
        );
    }
    d.write_drop_in(
        "typo.toml",
        "[[role]]\nname = \"x\"\nssh = true\nrequester_users = [\"a\"]\nticket_pattern = \"[\"\n",
    );
    let out = d.jitd(&["check-config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(4));
    assert!(
        text(&out.stderr).contains("typo.toml: line 5: key `role.ticket_pattern`: invalid regex"),
        "{}",
        text(&out.stderr)
    );
}

/// `jitd approve ID` approves what the approver saw. Carol looks at alice's request; bob
/// approves it first, and alice asks for another hour on the grant. Carol's approval, sent with
/// what she was shown, must not approve an extension she never saw; run again, her CLI says
/// what it approves now.
#[test]
fn an_approval_counts_only_for_what_the_approver_was_shown() {
    let t = team();
    let d = t.daemon(
        r#"
[[role]]
name = "ext"
commands = ["/usr/bin/id -u"]
requester_groups = ["{ops}"]
approver_groups = ["{leads}"]
max_duration = "2h"
"#,
    );
    let id = ask(&d, &t.alice, &["--for", "10m", "--", "/usr/bin/id", "-u"]);
    let seen = json(d.jitd_as(&t.carol, &["list", "--json"]));
    let token = seen
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id.as_str())
        .unwrap()["approval_token"]
        .as_str()
        .unwrap()
        .to_string();
    approve(&d, &t.bob, &id);
    ok(d.elevate_as(&t.alice, &["extend", &id, "--for", "1h"]));

    let out = d.jitd_as(&t.carol, &["approve", &id, "--expect", &token]);
    assert!(!out.status.success(), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("changed since it was shown to you"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        d.show(&id)["extension"]["duration_secs"],
        3600,
        "approved anyway"
    );

    let out = d.jitd_as(&t.carol, &["approve", &id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(&format!("approving the extension of grant {id}"))
            && text(&out.stderr).contains("by 1h"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        d.show(&id)["extension"].is_null(),
        "the extension was not approved"
    );
}
