//! jit-elevate as an operator uses it: once they press Ctrl-C, nothing runs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Stdio;
use std::time::Duration;

use jit_tests::{json, ok, Daemon, TestGroup, TestUser};

/// Ctrl-C while the request is being made, with a rule that approves it at once: before,
/// the command ran anyway (the answer was already "active"). Now nothing runs and no grant is
/// left open, whether the Ctrl-C landed before or during the submission.
#[test]
fn ctrl_c_during_an_automatically_approved_request_runs_nothing_and_leaves_no_grant() {
    let ops = TestGroup::create("ops");
    let alice = TestUser::create("alice");
    ops.add(&alice);
    let d = Daemon::start_with(&format!(
        r#"
[[role]]
name = "ids"
commands = ["/usr/bin/id -u"]
requester_groups = ["{ops}"]
max_duration = "30m"

[[role.auto_approve]]
name = "always"
max_duration = "30m"
"#,
        ops = ops.name
    ));
    // Without --no-wait jit-elevate first looks for a grant it already holds (the Ctrl-C
    // lands there); with it, it submits at once (the Ctrl-C lands in the submission, which
    // jitd approves by the rule as soon as it runs again).
    for (extra, asked) in [(None, false), (Some("--no-wait"), true)] {
        let before = json(d.jitd(&["list", "--all", "--json"]))
            .as_array()
            .unwrap()
            .len();
        // jitd stopped: jit-elevate's first call blocks until it is continued.
        d.signal(libc::SIGSTOP);
        let elevate = alice
            .command(jit_tests::bin("jit-elevate"))
            .arg("--socket")
            .arg(d.socket())
            .args(extra)
            .args(["--reason", "deploy", "--", "/usr/bin/id", "-u"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_for_a_waiting_connection(&d.socket());
        // SAFETY: kill(2) on our own child, not yet reaped.
        unsafe { libc::kill(elevate.id() as i32, libc::SIGINT) };
        d.signal(libc::SIGCONT);
        let out = elevate.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(130), "{extra:?}: {stderr}");
        assert!(
            out.stdout.is_empty(),
            "something ran or was printed: {out:?}"
        );
        let all = json(d.jitd(&["list", "--all", "--json"]));
        let all = all.as_array().unwrap();
        for r in all {
            assert_ne!(r["state"], "active", "a grant was left open: {r}\n{stderr}");
        }
        if asked {
            assert_eq!(all.len(), before + 1, "{stderr}");
            assert!(stderr.contains("ended unused"), "{stderr}");
        }
    }
}

/// Waits (10 s at most) until a client's connection sits in the stopped daemon's listen
/// backlog: jit-elevate is then inside its first call, past its start-up.
fn wait_for_a_waiting_connection(socket: &std::path::Path) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let out = std::process::Command::new("ss")
            .args(["-Hxl", "src"])
            .arg(socket)
            .output()
            .unwrap();
        let line = String::from_utf8_lossy(&out.stdout).to_string();
        let queued: u32 = line
            .split_whitespace()
            .nth(2)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        if queued > 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no connection reached jitd's backlog within 10 s (ss said: {line:?})"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The live status line fits an 80-column terminal: a line longer than the terminal wraps, and
/// every redraw (`\r`, erase line) then leaves a copy of it behind, filling the screen.
#[test]
fn the_live_status_fits_an_80_column_terminal() {
    let d = Daemon::start();
    let alice = TestUser::create("alice");
    let term = jit_tests::pty::Terminal::open(80, 24).owned_by(alice.uid);
    let mut elevate = alice
        .command(jit_tests::bin("jit-elevate"))
        .arg("--socket")
        .arg(d.socket())
        .args(["--reason", "a reason", "--", "/usr/bin/id", "-u"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(term.stdio())
        .spawn()
        .unwrap();
    // Three redraws at least (one per half second).
    let seen = term.read(Duration::from_secs(20), "(2s)");
    let id = d.wait_for_pending();
    ok(d.jitd(&["deny", &id, "--reason", "not now"]));
    let _ = elevate.wait();
    assert!(seen.contains("(2s)"), "no live status: {seen:?}");
    // The line said once, before the live one, names who approves and how.
    assert!(seen.contains(&format!("jitd approve {id}")), "{seen:?}");
    let redraws: Vec<&str> = seen.split("\r\x1b[K").skip(1).collect();
    assert!(redraws.len() >= 3, "{seen:?}");
    for line in redraws {
        let shown = line.trim_end_matches(['\r', '\n']);
        assert!(
            shown.chars().count() < 80,
            "a {}-column status line on an 80-column terminal: {shown:?}",
            shown.chars().count()
        );
    }
}
