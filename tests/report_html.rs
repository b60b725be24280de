//! `jitd report --html`: a page people can look at, checked in a real browser. The history
//! behind it is made through the real daemon: an approved request, a denied one, a grant made
//! directly, and a break-glass use whose reason is an attack on whoever opens the page.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use jit_tests::{json, ok, text, Daemon, TempDir, TestUser};

const ATTACK: &str = "<script>alert('xss')</script><img src=x onerror=alert(1)>";

/// Every `data-metric="NAME">VALUE<` of the page.
fn metrics(html: &str) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    for part in html.split("data-metric=\"").skip(1) {
        let (name, rest) = part.split_once('"').unwrap();
        let value = rest.split_once('>').unwrap().1.split('<').next().unwrap();
        found.insert(name.to_string(), value.to_string());
    }
    found
}

fn history(d: &Daemon, op: &TestUser, other: &TestUser) {
    let asked = ok(d.elevate_as(
        op,
        &["--no-wait", "--reason", "deploy", "--", "/usr/bin/id"],
    ));
    ok(d.jitd(&["approve", asked.trim()]));
    let refused = ok(d.elevate_as(
        other,
        &["--no-wait", "--reason", "curious", "--", "/usr/bin/id"],
    ));
    ok(d.jitd(&["deny", refused.trim(), "--reason", "no"]));
    ok(d.jitd(&[
        "grant",
        &other.name,
        "--reason",
        "INC-7",
        "--",
        "/usr/bin/id",
    ]));
    let glass = ok(d.elevate_as(
        op,
        &[
            "--no-wait",
            "--role",
            "glass",
            "--reason",
            ATTACK,
            "--",
            "/usr/bin/id",
        ],
    ));
    ok(d.jitd(&["review", glass.trim(), "--comment", "checked"]));
}

fn chromium_screenshot(page: &Path, png: &Path, profile: &Path) -> String {
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--window-size=1200,2400",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", png.display()))
        .args(["--enable-logging=stderr", "--v=0"])
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("run chromium (apt-get install chromium)");
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stderr)
}

#[test]
fn the_html_report_renders_in_a_browser_without_errors_and_states_the_json_reports_numbers() {
    let op = TestUser::create("rep");
    let other = TestUser::create("rep");
    let d = Daemon::start_with(&format!(
        "[[role]]\nname = \"ops\"\ncommands = [\"/usr/bin/id\"]\nrequester_users = [\"{0}\", \"{1}\"]\n\n\
         [[role]]\nname = \"glass\"\ncommands = [\"/usr/bin/id\"]\nrequester_users = [\"{0}\"]\n\
         break_glass = true\nmax_duration = \"30m\"\n",
        op.name, other.name
    ));
    history(&d, &op, &other);

    let out = TempDir::new("report");
    let page = out.path().join("report.html");
    let config = d.config_path();
    let config = config.to_str().unwrap();
    let wrote = ok(d.jitd(&[
        "report",
        "--config",
        config,
        "--html",
        page.to_str().unwrap(),
    ]));
    assert!(wrote.contains("report.html"), "{wrote}");
    let report = json(d.jitd(&["report", "--config", config, "--json"]));
    let html = std::fs::read_to_string(&page).unwrap();

    // The attack is on the page as text, and nothing on it runs or loads.
    assert!(!html.contains("<script"), "{html}");
    assert!(!html.contains("<img"), "{html}");
    assert!(
        html.contains("&lt;script&gt;alert(&#39;xss&#39;)&lt;/script&gt;"),
        "{html}"
    );
    for outside in ["<link", "src=\"http", "href=\"http", "url(", "@import"] {
        assert!(!html.contains(outside), "{outside}");
    }

    // Every number the page states is the JSON report's.
    let m = metrics(&html);
    let u = &report["usage"];
    let n = |key: &str| {
        m.get(key)
            .unwrap_or_else(|| panic!("no {key} in {m:?}"))
            .clone()
    };
    assert_eq!(n("records"), u["records"].to_string());
    assert_eq!(n("approved"), u["approved"].to_string());
    assert_eq!(n("extensions"), u["extensions"].to_string());
    assert_eq!(n("break_glass_uses"), "1");
    assert_eq!(n("break_glass_uses"), u["break_glass_uses"].to_string());
    assert_eq!(
        n("break_glass_reviewed"),
        u["break_glass_reviewed"].to_string()
    );
    assert_eq!(n("break_glass_reviewed"), "1");
    let grants: u64 = u["grants_by_role"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(grants, 3, "approved, granted directly, break-glass: {u}");
    assert_eq!(n("grants_total"), grants.to_string());
    for (user, count) in u["grants_by_user"].as_object().unwrap() {
        assert_eq!(n(&format!("grants_by_user:{user}")), count.to_string());
    }
    assert_eq!(n(&format!("grants_by_user:{}", op.name)), "2");
    let per_day = u["requests_per_day"].as_object().unwrap();
    for outcome in ["approved", "denied", "break_glass"] {
        let want: u64 = per_day.values().filter_map(|d| d[outcome].as_u64()).sum();
        assert_eq!(n(&format!("outcome_{outcome}")), want.to_string());
    }
    assert_eq!(n("outcome_denied"), "1");
    assert!(
        !html.contains("Roles nobody asked for"),
        "both roles were used: {u}"
    );
    assert_eq!(n("outcome_approved"), "2");
    let decided: u64 = u["decision_time"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(
        decided, 2,
        "the approval and the denial waited for someone: {u}"
    );
    assert_eq!(n("decisions"), decided.to_string());
    let chain = &report["chain"];
    assert_eq!(chain["intact"], true);
    assert_eq!(n("chain_intact"), "intact");
    assert_eq!(n("chain_head"), chain["head_hash"].as_str().unwrap());
    assert_eq!(n("chain_records"), chain["records"].to_string());
    let s = &report["standing"];
    assert_eq!(
        n("standing_sudoers_rules"),
        s["sudoers_rules"].as_array().unwrap().len().to_string()
    );

    // A real browser renders it, and says nothing on its console (a blocked script or load
    // would be reported there).
    let png = out.path().join("report.png");
    let said = chromium_screenshot(&page, &png, &out.path().join("profile"));
    assert!(
        !said.contains("CONSOLE") && !said.contains("Uncaught"),
        "{said}"
    );
    let shot = std::fs::read(&png).unwrap();
    assert!(
        shot.starts_with(b"\x89PNG") && shot.len() > 10_000,
        "{} bytes",
        shot.len()
    );

    // --since in the future: nothing in the period.
    let later = ok(d.jitd(&[
        "report",
        "--config",
        config,
        "--json",
        "--since",
        "2999-01-01",
    ]));
    let later: serde_json::Value = serde_json::from_str(&later).unwrap();
    assert_eq!(later["usage"]["records"], 0);
}
