//! The policy engine, table-driven, with the time and the requester's groups injected.

// The case tables spell their column types inline, next to the cases.
#![allow(clippy::type_complexity)]

use super::*;
use crate::core::time_window::{parse_day, Hours};
use chrono::TimeZone;

fn mins(m: u64) -> Duration {
    Duration::from_secs(m * 60)
}

fn patterns(p: &[&str]) -> Vec<CommandPattern> {
    p.iter()
        .map(|s| CommandPattern::parse(s).unwrap())
        .collect()
}

fn strings(s: &[&str]) -> Vec<String> {
    s.iter().map(|s| s.to_string()).collect()
}

fn role(name: &str, commands: &[&str], requester_groups: &[&str]) -> Role {
    Role {
        name: name.into(),
        commands: patterns(commands),
        ssh: false,
        requester_groups: strings(requester_groups),
        requester_users: Vec::new(),
        record: Record::Output,
        fleet_offline: Default::default(),
        approver_groups: strings(&["ops-leads"]),
        approvals: 1,
        self_approval: false,
        deny_ends: true,
        default_duration: mins(15),
        max_duration: mins(60),
        require_reason: true,
        reason_pattern: None,
        ticket_pattern: None,
        break_glass: false,
        auto_approve: Vec::new(),
        hosts: Vec::new(),
    }
}

fn business_hours() -> AutoRule {
    AutoRule {
        name: "business-hours".into(),
        schedule: Schedule {
            days: ["mon", "tue", "wed", "thu", "fri"]
                .iter()
                .map(|d| parse_day(d).unwrap())
                .collect(),
            hours: Some(Hours::parse("09:00-17:00").unwrap()),
            zone: "Europe/Berlin".parse().unwrap(),
        },
        groups: strings(&["ops"]),
        commands: Vec::new(),
        max_duration: Some(mins(30)),
    }
}

fn policy() -> Policy {
    let mut web = role(
        "web-restart",
        &[
            "/usr/bin/systemctl restart nginx",
            "/usr/bin/systemctl reload nginx",
        ],
        &["ops"],
    );
    web.auto_approve.push(business_hours());
    let mut any_unit = role("systemctl", &["/usr/bin/systemctl restart *"], &["ops"]);
    any_unit.approvals = 2;
    any_unit.reason_pattern = Some(Regex::new("^(INC|CHG)-[0-9]+").unwrap());
    let mut db = role("db-login", &[], &["dba"]);
    db.ssh = true;
    db.requester_users = strings(&["carol"]);
    db.ticket_pattern = Some(Regex::new("^INC-[0-9]+$").unwrap());
    let mut glass = role("break-glass", &["ALL"], &["oncall"]);
    glass.ssh = true;
    glass.break_glass = true;
    glass.max_duration = mins(30);
    Policy {
        defaults: Defaults {
            approver_groups: strings(&["admins"]),
            default_duration: mins(15),
            max_duration: mins(240),
            require_reason: true,
            record: Record::Output,
        },
        roles: vec![web, any_unit, db, glass],
        host: None,
    }
}

fn sudo(line: &str) -> Target {
    Target::Sudo {
        command: line.split_whitespace().map(String::from).collect(),
    }
}

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

/// A Wednesday at 03:00 in Berlin: outside business hours.
fn night() -> DateTime<Utc> {
    utc(2026, 6, 10, 1, 0)
}

#[test]
fn the_most_specific_eligible_role_wins_and_break_glass_needs_its_name() {
    let p = policy();
    let ops = strings(&["ops"]);
    let oncall = strings(&["oncall", "ops"]);
    let cases: [(&str, &[String], Target, Option<&str>, Result<&str, &str>); 9] = [
        (
            "alice",
            &ops,
            sudo("/usr/bin/systemctl restart nginx"),
            None,
            Ok("web-restart"),
        ),
        (
            "alice",
            &ops,
            sudo("/usr/bin/systemctl restart redis"),
            None,
            Ok("systemctl"),
        ),
        (
            "alice",
            &ops,
            sudo("/usr/bin/systemctl restart nginx"),
            Some("systemctl"),
            Ok("systemctl"),
        ),
        (
            "alice",
            &ops,
            sudo("/bin/rm -rf /"),
            None,
            Err("you may request: web-restart"),
        ),
        (
            "alice",
            &ops,
            Target::Ssh,
            None,
            Err("no role lets alice ask for an SSH login"),
        ),
        ("carol", &[], Target::Ssh, None, Ok("db-login")),
        (
            "mallory",
            &[],
            sudo("/usr/bin/id"),
            None,
            Err("mallory may not request anything"),
        ),
        // Break-glass covers everything but is only used by name.
        (
            "olga",
            &oncall,
            sudo("/bin/rm -rf /tmp/x"),
            None,
            Err("break-glass, with --role"),
        ),
        (
            "olga",
            &oncall,
            sudo("/bin/rm -rf /tmp/x"),
            Some("break-glass"),
            Ok("break-glass"),
        ),
    ];
    for (user, groups, target, named, expected) in cases {
        let ask = Ask {
            who: Requester { user, groups },
            target: &target,
            role: named,
            duration: None,
        };
        let got = p.decide(&ask, "INC-1 fix", Some("INC-1"), night());
        match (expected, got) {
            (Ok(name), Ok(plan)) => {
                assert_eq!(plan.role.as_deref(), Some(name), "{user} {target:?}")
            }
            (Err(says), Err(Refusal::NotCovered(m))) => {
                assert!(m.contains(says), "{user} {target:?}: {m}")
            }
            (want, got) => panic!("{user} {target:?}: expected {want:?}, got {got:?}"),
        }
    }
}

#[test]
fn a_named_role_must_exist_be_the_requesters_and_cover_the_request() {
    let p = policy();
    let ops = strings(&["ops"]);
    let target = sudo("/usr/bin/systemctl restart nginx");
    for (named, says) in [
        ("nope", "there is no role \"nope\""),
        (
            "break-glass",
            "only members of oncall may request role break-glass",
        ),
        ("db-login", "only members of dba and carol"),
    ] {
        let ask = Ask {
            who: Requester {
                user: "alice",
                groups: &ops,
            },
            target: &target,
            role: Some(named),
            duration: None,
        };
        let err = p.decide(&ask, "x", None, night()).unwrap_err();
        assert!(err.message().contains(says), "{named}: {err:?}");
    }
    let carol = Ask {
        who: Requester {
            user: "carol",
            groups: &[],
        },
        target: &target,
        role: Some("db-login"),
        duration: None,
    };
    let err = p.decide(&carol, "x", None, night()).unwrap_err();
    assert!(err.message().contains("does not cover"), "{err:?}");
}

#[test]
fn automatic_approval_follows_berlin_office_hours_across_dst() {
    let p = policy();
    let ops = strings(&["ops"]);
    let ops_no_lead = strings(&["devs"]);
    let target = sudo("/usr/bin/systemctl restart nginx");
    let cases: [(DateTime<Utc>, &[String], Option<u64>, bool, &str); 9] = [
        (
            utc(2026, 3, 27, 7, 30),
            &ops,
            None,
            false,
            "Fri 08:30 CET: before hours",
        ),
        (utc(2026, 3, 27, 8, 0), &ops, None, true, "Fri 09:00 CET"),
        (
            utc(2026, 3, 30, 7, 0),
            &ops,
            None,
            true,
            "Mon 09:00 CEST = 07:00 UTC after the change",
        ),
        (utc(2026, 3, 30, 15, 0), &ops, None, false, "Mon 17:00 CEST"),
        (
            utc(2026, 10, 26, 7, 30),
            &ops,
            None,
            false,
            "Mon 08:30 CET after the change back",
        ),
        (utc(2026, 10, 26, 8, 0), &ops, None, true, "Mon 09:00 CET"),
        (utc(2026, 3, 28, 10, 0), &ops, None, false, "Saturday"),
        (
            utc(2026, 3, 27, 10, 0),
            &ops,
            Some(45),
            false,
            "longer than the rule's 30m",
        ),
        (
            utc(2026, 3, 27, 10, 0),
            &ops_no_lead,
            None,
            false,
            "not in the rule's groups",
        ),
    ];
    let mut web_for_devs = p.clone();
    web_for_devs.roles[0].requester_groups.push("devs".into());
    for (at, groups, minutes, automatic, why) in cases {
        let ask = Ask {
            who: Requester {
                user: "alice",
                groups,
            },
            target: &target,
            role: None,
            duration: minutes.map(mins),
        };
        let plan = web_for_devs.decide(&ask, "deploy", None, at).unwrap();
        let expected = if automatic {
            Route::Rule("business-hours".into())
        } else {
            Route::Approvers
        };
        assert_eq!(plan.route, expected, "{why}");
    }
}

#[test]
fn durations_reasons_and_tickets_follow_the_role() {
    let p = policy();
    let ops = strings(&["ops"]);
    let dba = strings(&["dba"]);
    let restart = sudo("/usr/bin/systemctl restart redis");
    let ask = |groups, target, minutes: Option<u64>| Ask {
        who: Requester {
            user: "alice",
            groups,
        },
        target,
        role: None,
        duration: minutes.map(mins),
    };
    let plan = p
        .decide(
            &ask(&ops, &restart, None),
            "INC-7 redis stuck",
            None,
            night(),
        )
        .unwrap();
    assert_eq!((plan.duration, plan.approvals_required), (mins(15), 2));
    assert_eq!(plan.approver_groups, strings(&["ops-leads"]));
    let cases: [(Option<u64>, &str, Option<&str>, &Target, &[String], &str); 5] = [
        (
            Some(61),
            "INC-7",
            None,
            &restart,
            &ops,
            "maximum of 1h for role systemctl",
        ),
        (None, "", None, &restart, &ops, "a reason is required"),
        (
            None,
            "because",
            None,
            &restart,
            &ops,
            "needs a reason matching",
        ),
        (
            None,
            "x",
            None,
            &Target::Ssh,
            &dba,
            "needs a ticket matching",
        ),
        (
            None,
            "x",
            Some("JIRA-1"),
            &Target::Ssh,
            &dba,
            "needs a ticket matching",
        ),
    ];
    for (minutes, reason, ticket, target, groups, says) in cases {
        match p.decide(&ask(groups, target, minutes), reason, ticket, night()) {
            Err(Refusal::Invalid(m)) => assert!(m.contains(says), "{m}"),
            other => panic!("expected {says:?}, got {other:?}"),
        }
    }
    assert!(p
        .decide(&ask(&dba, &Target::Ssh, None), "x", Some("INC-9"), night())
        .is_ok());
}

#[test]
fn without_roles_anyone_may_ask_and_the_global_approvers_decide() {
    let mut p = policy();
    p.roles.clear();
    let ask = Ask {
        who: Requester {
            user: "anyone",
            groups: &[],
        },
        target: &Target::Ssh,
        role: None,
        duration: Some(mins(60)),
    };
    let plan = p.decide(&ask, "x", None, night()).unwrap();
    assert_eq!(
        plan,
        Plan {
            role: None,
            duration: mins(60),
            approver_groups: strings(&["admins"]),
            approvals_required: 1,
            route: Route::Approvers,
            record: Record::Output,
        }
    );
    assert!(!p.self_approval(None) && p.deny_ends(None));
}

#[test]
fn extensions_never_exceed_the_roles_maximum_total() {
    let p = policy();
    let ops = strings(&["ops"]);
    let oncall = strings(&["oncall"]);
    let who = Requester {
        user: "alice",
        groups: &ops,
    };
    let target = sudo("/usr/bin/systemctl restart nginx");
    let office = utc(2026, 6, 10, 9, 0);
    let cases: [(
        &str,
        Requester,
        u64,
        u64,
        DateTime<Utc>,
        Result<Route, &str>,
    ); 6] = [
        ("web-restart", who, 15, 10, night(), Ok(Route::Approvers)),
        (
            "web-restart",
            who,
            15,
            15,
            office,
            Ok(Route::Rule("business-hours".into())),
        ),
        // The rule approves up to 30m in all; 15 + 20 needs people.
        ("web-restart", who, 15, 20, office, Ok(Route::Approvers)),
        (
            "web-restart",
            who,
            15,
            46,
            office,
            Err("extend by at most 45m"),
        ),
        (
            "web-restart",
            who,
            60,
            1,
            office,
            Err("already lasts the maximum"),
        ),
        (
            "break-glass",
            Requester {
                user: "olga",
                groups: &oncall,
            },
            20,
            10,
            night(),
            Ok(Route::BreakGlass),
        ),
    ];
    for (role, who, current, extra, at, expected) in cases {
        let got = p.plan_extension(Some(role), who, &target, mins(current), mins(extra), at);
        match (expected, got) {
            (Ok(route), Ok(plan)) => assert_eq!(plan.route, route, "{role} {current}+{extra}"),
            (Err(says), Err(Refusal::Invalid(m))) => assert!(m.contains(says), "{m}"),
            (want, got) => panic!("{role} {current}+{extra}: expected {want:?}, got {got:?}"),
        }
    }
    let gone = p.plan_extension(Some("vanished"), who, &target, mins(1), mins(1), night());
    assert!(matches!(gone, Err(Refusal::NotCovered(_))));
}

#[test]
fn explain_says_which_role_matches_and_why_the_others_do_not() {
    let p = policy();
    let ops = strings(&["ops"]);
    let target = sudo("/usr/bin/systemctl restart nginx");
    let ask = Ask {
        who: Requester {
            user: "alice",
            groups: &ops,
        },
        target: &target,
        role: None,
        duration: None,
    };
    let e = p.explain(&ask, utc(2026, 6, 10, 9, 0));
    assert!(e.allowed);
    assert_eq!(e.role.as_deref(), Some("web-restart"));
    assert_eq!(e.automatic.as_deref(), Some("business-hours"));
    assert!(
        e.outcome
            .contains("approved at once by rule business-hours"),
        "{}",
        e.outcome
    );
    let why: Vec<(&str, bool, &str)> = e
        .roles
        .iter()
        .map(|r| (r.name.as_str(), r.matches, r.why.as_str()))
        .collect();
    assert!(why[0].1 && why[0].2.contains("most specific"), "{why:?}");
    assert!(!why[1].1 && why[1].2.contains("more specific"), "{why:?}");
    assert!(why[2].2.contains("only members of dba"), "{why:?}");
    assert!(why[3].2.contains("only members of oncall"), "{why:?}");

    let e = p.explain(&ask, night());
    assert_eq!(e.automatic, None);
    assert!(e
        .outcome
        .contains("waits for 1 approval(s) from root or members of ops-leads"));
    assert!(
        e.auto_approve[0].why.contains("outside 09:00-17:00"),
        "{:?}",
        e.auto_approve
    );
}

#[test]
fn overlapping_roles_are_reported() {
    let mut p = policy();
    p.roles.push(role("all-for-ops", &["ALL"], &["ops"]));
    let found = p.overlaps();
    assert!(
        found
            .iter()
            .any(|o| o.contains("web-restart and all-for-ops")),
        "{found:?}"
    );
    // Not only equal patterns: `restart *` covers web-restart's `restart nginx`.
    assert!(
        found
            .iter()
            .any(|o| o
                .contains("web-restart and systemctl both cover /usr/bin/systemctl restart nginx")),
        "{found:?}"
    );
    assert!(
        !found.iter().any(|o| o.contains("break-glass")),
        "{found:?}"
    );
}

#[test]
fn a_requester_who_left_the_roles_groups_is_no_longer_allowed_what_they_asked_for() {
    use crate::core::lifecycle::Submission;
    use crate::core::model::{GrantId, Request};
    let p = policy();
    let r = Request::open(
        GrantId::try_from("abcdefghij".to_string()).unwrap(),
        Submission {
            uid: 1001,
            user: "alice".into(),
            target: sudo("/usr/bin/systemctl restart nginx"),
            duration: chrono::Duration::minutes(15),
            reason: "INC-1".into(),
            ticket: None,
            role: Some("web-restart".into()),
            approvals_required: 1,
            approver_groups: strings(&["ops-leads"]),
            record: crate::core::recording::Record::Off,
        },
        night(),
        chrono::Duration::hours(1),
    );
    let ops = strings(&["ops"]);
    let still = Requester {
        user: "alice",
        groups: &ops,
    };
    assert_eq!(p.still_allows(&r, still, night()), Ok(()));
    let left = Requester {
        user: "alice",
        groups: &[],
    };
    let refusal = p.still_allows(&r, left, night()).unwrap_err();
    assert!(
        refusal
            .message()
            .contains("only members of ops may request role web-restart"),
        "{refusal:?}"
    );
    // A role that no longer exists allows nothing.
    let mut gone = r.clone();
    gone.role = Some("vanished".into());
    assert!(p.still_allows(&gone, still, night()).is_err());
}

/// The review's reproduction: `--role restart-any -- systemctl restart postgresql` was granted
/// at once although restart-db, which names postgresql, wants two approvals.
#[test]
fn a_named_role_cannot_demand_less_than_the_most_specific_covering_role() {
    let mut any = role("restart-any", &["/usr/bin/systemctl restart *"], &["ops"]);
    let mut always = business_hours();
    always.schedule.hours = None;
    always.schedule.days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        .iter()
        .map(|d| parse_day(d).unwrap())
        .collect();
    always.max_duration = None;
    any.auto_approve.push(always);
    let mut db = role(
        "restart-db",
        &["/usr/bin/systemctl restart postgresql"],
        &["ops"],
    );
    db.approvals = 2;
    // Longer, and stricter: a legitimate reason to name it.
    let mut maintenance = role("maintenance", &["/usr/bin/systemctl restart *"], &["ops"]);
    maintenance.approvals = 3;
    maintenance.max_duration = mins(240);
    let p = Policy {
        defaults: policy().defaults,
        roles: vec![any, db, maintenance],
        host: None,
    };
    let ops = strings(&["ops"]);
    let ask = |target: &Target, role: Option<&'static str>| {
        p.decide(
            &Ask {
                who: Requester {
                    user: "alice",
                    groups: &ops,
                },
                target,
                role,
                duration: None,
            },
            "x",
            None,
            night(),
        )
    };
    let postgres = sudo("/usr/bin/systemctl restart postgresql");
    let err = ask(&postgres, Some("restart-any")).unwrap_err();
    assert!(
        err.message()
            .contains("role restart-any demands less than role restart-db")
            && err.message().contains("approves it automatically"),
        "{err:?}"
    );
    let plan = ask(&postgres, None).unwrap();
    assert_eq!(
        (plan.role.as_deref(), plan.approvals_required),
        (Some("restart-db"), 2)
    );
    let plan = ask(&postgres, Some("maintenance")).unwrap();
    assert_eq!(plan.approvals_required, 3, "a stricter role may be named");
    // Where restart-any is itself the most specific, naming it changes nothing.
    let nginx = sudo("/usr/bin/systemctl restart nginx");
    assert!(matches!(
        ask(&nginx, Some("restart-any")).unwrap().route,
        Route::Rule(_)
    ));
}

/// After a reload takes a command out of a role, the role's automatic rule must not keep
/// extending a grant for it (extensions checked eligibility only).
#[test]
fn a_grant_for_a_command_its_role_no_longer_covers_is_not_extended() {
    let mut p = policy();
    let ops = strings(&["ops"]);
    let who = Requester {
        user: "alice",
        groups: &ops,
    };
    let nginx = sudo("/usr/bin/systemctl reload nginx");
    let monday_10 = utc(2026, 3, 30, 8, 0);
    let plan = p
        .plan_extension(
            Some("web-restart"),
            who,
            &nginx,
            mins(10),
            mins(10),
            monday_10,
        )
        .unwrap();
    assert!(matches!(plan.route, Route::Rule(_)), "{plan:?}");
    p.roles[0].commands = patterns(&["/usr/bin/systemctl restart nginx"]);
    let err = p
        .plan_extension(
            Some("web-restart"),
            who,
            &nginx,
            mins(10),
            mins(10),
            monday_10,
        )
        .unwrap_err();
    assert!(err.message().contains("no longer covers"), "{err:?}");
}

/// A login waiting for approval asks the user for a reason only when the covering role wants
/// one; a login nothing covers is refused before anyone is asked anything.
#[test]
fn a_waiting_login_asks_for_a_reason_only_when_the_covering_role_wants_one() {
    let mut p = policy();
    let ask = |groups| Ask {
        who: Requester {
            user: "dave",
            groups,
        },
        target: &Target::Ssh,
        role: None,
        duration: None,
    };
    let dba = strings(&["dba"]);
    assert_eq!(p.wants_reason(&ask(&dba)), Ok(true));
    p.roles[2].require_reason = false;
    assert_eq!(p.wants_reason(&ask(&dba)), Ok(false));
    p.roles[2].reason_pattern = Some(Regex::new("^INC-").unwrap());
    assert_eq!(p.wants_reason(&ask(&dba)), Ok(true));
    // oncall's only SSH role is break-glass, which a login cannot name.
    let oncall = strings(&["oncall"]);
    match p.wants_reason(&ask(&oncall)) {
        Err(Refusal::NotCovered(m)) => assert!(m.contains("an SSH login"), "{m}"),
        other => panic!("{other:?}"),
    }
    p.roles.clear();
    assert_eq!(p.wants_reason(&ask(&[])), Ok(true));
    p.defaults.require_reason = false;
    assert_eq!(p.wants_reason(&ask(&[])), Ok(false));
}
