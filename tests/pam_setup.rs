//! `jit-pam-setup` on copies of this host's own /etc/pam.d/sudo and sshd (`JIT_PAM_DIR`):
//! where it puts the lines, how it repairs an older wiring, and that a typo fails loudly.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output};

use jit_tests::{workspace_root, TempDir};

fn pam_dir() -> TempDir {
    let dir = TempDir::new("pam-setup");
    for service in ["sudo", "sshd"] {
        std::fs::copy(
            Path::new("/etc/pam.d").join(service),
            dir.path().join(service),
        )
        .unwrap();
    }
    std::fs::write(dir.path().join("jit-account"), "").unwrap();
    std::fs::write(dir.path().join("jit-session"), "").unwrap();
    dir
}

fn setup(dir: &TempDir, args: &[&str]) -> Output {
    Command::new(workspace_root().join("packaging/jit-pam-setup"))
        .args(args)
        .env("JIT_PAM_DIR", dir.path())
        .output()
        .unwrap()
}

fn lines(dir: &TempDir, service: &str) -> Vec<String> {
    std::fs::read_to_string(dir.path().join(service))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Index of the first line that is part of the account stack (`account …` or an include of
/// common-account or jit-account).
fn first_account_line(lines: &[String]) -> usize {
    lines
        .iter()
        .position(|l| {
            let mut words = l.split_whitespace();
            match (words.next(), words.next()) {
                (Some("account" | "-account"), _) => true,
                (Some("@include"), Some(f)) => {
                    f.starts_with("common-account") || f == "jit-account"
                }
                _ => false,
            }
        })
        .expect("an account line")
}

#[test]
fn enable_puts_the_account_check_before_every_other_account_line() {
    let dir = pam_dir();
    for target in ["sudo", "sshd"] {
        let out = setup(&dir, &["enable", target, "--force"]);
        assert!(out.status.success(), "{out:?}");
        let lines = lines(&dir, target);
        assert_eq!(
            lines[first_account_line(&lines)],
            "@include jit-account # jit-pam-setup",
            "{target}: {lines:#?}"
        );
        let session = lines
            .iter()
            .rposition(|l| l.starts_with("session") || l.starts_with("@include common-session"))
            .unwrap();
        assert_eq!(
            lines[session + 1],
            "@include jit-session # jit-pam-setup",
            "{target}: the session line comes after the last session line: {lines:#?}"
        );
    }
    let status = setup(&dir, &["status"]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains("/sudo: wired\n"), "{text}");
    assert!(text.contains("/sshd: wired\n"), "{text}");
}

#[test]
fn an_older_wiring_after_common_account_is_named_by_status_and_moved_by_enable() {
    let dir = pam_dir();
    let old = std::fs::read_to_string(dir.path().join("sudo"))
        .unwrap()
        .replace(
            "@include common-account",
            "@include common-account\n@include jit-account # jit-pam-setup",
        )
        .replace(
            "@include common-session-noninteractive",
            "@include common-session-noninteractive\n@include jit-session # jit-pam-setup",
        );
    std::fs::write(dir.path().join("sudo"), old).unwrap();

    let status = setup(&dir, &["status"]);
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("/sudo: wired AFTER other account lines"),
        "{status:?}"
    );
    let out = setup(&dir, &["enable", "sudo", "--force"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("moved"),
        "{out:?}"
    );
    let lines = lines(&dir, "sudo");
    assert_eq!(
        lines[first_account_line(&lines)],
        "@include jit-account # jit-pam-setup"
    );
    let ours = lines
        .iter()
        .filter(|l| l.ends_with("# jit-pam-setup"))
        .count();
    assert_eq!(ours, 2, "one account and one session line: {lines:#?}");
}

#[test]
fn an_unknown_target_fails_and_changes_nothing_while_ssh_means_sshd() {
    let dir = pam_dir();
    let before = (lines(&dir, "sudo"), lines(&dir, "sshd"));
    for args in [
        &["enable", "sudoo", "--force"][..],
        &["disable", "nginx"][..],
        &["enable"][..],
    ] {
        let out = setup(&dir, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
    }
    assert_eq!((lines(&dir, "sudo"), lines(&dir, "sshd")), before);

    let out = setup(&dir, &["enable", "ssh", "--force"]);
    assert!(out.status.success(), "{out:?}");
    assert!(lines(&dir, "sshd").contains(&"@include jit-account # jit-pam-setup".to_string()));
}

#[test]
fn disable_removes_exactly_the_lines_enable_added() {
    let dir = pam_dir();
    let before = lines(&dir, "sudo");
    assert!(setup(&dir, &["enable", "sudo", "--force"]).status.success());
    assert_ne!(lines(&dir, "sudo"), before);
    assert!(setup(&dir, &["disable", "sudo"]).status.success());
    assert_eq!(lines(&dir, "sudo"), before);
}

/// The package's own jit-account (`pam_dir` leaves it empty), which `--wait` derives its line
/// from.
fn with_packaged_account(dir: &TempDir) {
    std::fs::copy(
        workspace_root().join("packaging/pam/jit-account"),
        dir.path().join("jit-account"),
    )
    .unwrap();
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

const WAITING: &str =
    "account required pam_jit.so exempt_group=jit-breakglass wait=2m # jit-pam-setup";

/// Login-time approval, wired rather than written by hand: sshd's account check becomes
/// jit-account's pam_jit line with `wait=`, first of its account lines; status says so; it is
/// no hand-wired line; enable without `--wait` takes it back, and disable removes it.
#[test]
fn enable_sshd_with_wait_makes_the_login_the_request_and_enable_without_it_takes_that_back() {
    let dir = pam_dir();
    with_packaged_account(&dir);
    let before = lines(&dir, "sshd");
    let out = setup(&dir, &["enable", "sshd", "--wait", "2m", "--force"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("wait up to 2m"), "{}", text(&out));
    let wired = lines(&dir, "sshd");
    let first = first_account_line(&wired);
    assert_eq!(wired[first], WAITING, "{wired:#?}");
    assert!(
        !wired.iter().any(|l| l.starts_with("@include jit-account")),
        "one account check, not two: {wired:#?}"
    );
    assert!(wired.contains(&"@include jit-session # jit-pam-setup".to_string()));
    let status = setup(&dir, &["status"]);
    assert!(
        text(&status).contains("sshd: wired; logins without a grant wait up to 2m for approval"),
        "{}",
        text(&status)
    );
    let hand = setup(&dir, &["hand-wired"]);
    assert!(hand.status.success(), "{}", text(&hand));

    // Again: nothing changes. In any order of the options.
    let again = setup(&dir, &["enable", "sshd", "--force", "--wait", "2m"]);
    assert!(text(&again).contains("already wired"), "{}", text(&again));
    assert_eq!(lines(&dir, "sshd"), wired);

    // Another wait replaces the line; none puts the include back.
    assert!(setup(&dir, &["enable", "sshd", "--wait", "90s", "--force"])
        .status
        .success());
    let waits: Vec<String> = lines(&dir, "sshd")
        .into_iter()
        .filter(|l| l.contains("wait="))
        .collect();
    assert_eq!(
        waits,
        vec![WAITING.replace("wait=2m", "wait=90s")],
        "exactly one wait line"
    );
    let out = setup(&dir, &["enable", "sshd", "--force"]);
    assert!(text(&out).contains("no longer wait"), "{}", text(&out));
    let plain = lines(&dir, "sshd");
    assert_eq!(
        plain[first_account_line(&plain)],
        "@include jit-account # jit-pam-setup"
    );
    assert!(!plain.iter().any(|l| l.contains("wait=")), "{plain:#?}");

    assert!(setup(&dir, &["enable", "sshd", "--wait", "2m", "--force"])
        .status
        .success());
    assert!(setup(&dir, &["disable", "sshd"]).status.success());
    assert_eq!(lines(&dir, "sshd"), before);
}

/// A wait pam_jit would refuse (so every login would fail on its argument), a wait for sudo,
/// or an option nobody knows: refused with the reason, and no file changes.
#[test]
fn a_wait_pam_jit_would_refuse_or_a_wait_for_sudo_fails_and_changes_nothing() {
    let dir = pam_dir();
    with_packaged_account(&dir);
    let (sshd, sudo) = (lines(&dir, "sshd"), lines(&dir, "sudo"));
    for bad in [
        "0s", "11m", "601s", "2h", "2 m", "abc", "-1s", "2m;id", "1s30m", "",
    ] {
        let out = setup(&dir, &["enable", "sshd", "--wait", bad, "--force"]);
        assert_eq!(out.status.code(), Some(1), "--wait {bad:?}: {}", text(&out));
        assert!(
            text(&out).contains("from 1s to 10m"),
            "--wait {bad:?}: {}",
            text(&out)
        );
    }
    let out = setup(&dir, &["enable", "sudo", "--wait", "2m", "--force"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("jit-elevate"), "{}", text(&out));
    for args in [
        &["enable", "sshd", "--wait"][..],
        &["enable", "sshd", "--forse"],
        &["enable"],
    ] {
        let out = setup(&dir, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
    }
    assert_eq!(lines(&dir, "sshd"), sshd);
    assert_eq!(lines(&dir, "sudo"), sudo);
}

/// The waiting line is jit-account's own, so what an administrator set there (another
/// exempt group, a timeout, a wait= of their own) carries over, with the wait asked for.
#[test]
fn the_waiting_line_keeps_what_jit_account_sets_and_takes_the_wait_asked_for() {
    let dir = pam_dir();
    std::fs::write(
        dir.path().join("jit-account"),
        "# edited\naccount  required  pam_jit.so exempt_group=ops timeout_ms=500 wait=5m # mine\n",
    )
    .unwrap();
    let out = setup(&dir, &["enable", "sshd", "--wait", "1m30s", "--force"]);
    assert!(out.status.success(), "{}", text(&out));
    let wired = lines(&dir, "sshd");
    assert_eq!(
        wired[first_account_line(&wired)],
        "account required pam_jit.so exempt_group=ops timeout_ms=500 wait=1m30s # jit-pam-setup"
    );
    // A jit-account without pam_jit's account line gives nothing to derive from.
    std::fs::write(dir.path().join("jit-account"), "# emptied\n").unwrap();
    let out = setup(&dir, &["enable", "sshd", "--wait", "2m", "--force"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("reinstall"), "{}", text(&out));
}

/// `/etc/pam.d/sudo` wired by hand as docs/pam.md used to show, plus a service of the
/// administrator's own that uses the module by its full path.
fn hand_wired(dir: &TempDir) {
    let sudo = std::fs::read_to_string(dir.path().join("sudo"))
        .unwrap()
        .replacen(
            "@include common-account",
            "account  required  pam_jit.so exempt_group=jit-breakglass\n@include common-account",
            1,
        );
    std::fs::write(dir.path().join("sudo"), sudo).unwrap();
    std::fs::write(
        dir.path().join("myapp"),
        "# account required pam_jit.so (a comment: not a line)\n\
         auth     required  pam_unix.so # pam_jit.so in a comment\n\
         account  [success=ok default=bad]  /lib/x86_64-linux-gnu/security/pam_jit.so kind=ssh\n",
    )
    .unwrap();
    // Backups no service is named after are not read by libpam.
    std::fs::write(
        dir.path().join("myapp.dpkg-old"),
        "account required pam_jit.so\n",
    )
    .unwrap();
}

/// The attack (an accident here): lines wired by hand survive `apt remove`, after which every
/// sudo fails, break-glass included. `status` must see them, wherever they are; comments and
/// backups are not lines.
#[test]
fn status_and_hand_wired_name_every_pam_jit_line_jit_pam_setup_did_not_write() {
    let dir = pam_dir();
    hand_wired(&dir);
    let status = setup(&dir, &["status"]);
    assert!(status.status.success(), "{status:?}");
    let text = String::from_utf8_lossy(&status.stdout);
    let sudo = dir.path().join("sudo").display().to_string();
    let myapp = dir.path().join("myapp").display().to_string();
    assert!(
        text.contains(&format!("{sudo}: wired BY HAND, line ")),
        "{text}"
    );
    assert!(
        text.contains(&format!("{myapp}: wired BY HAND, line 3 ")),
        "{text}"
    );
    assert!(!text.contains("dpkg-old"), "{text}");
    assert!(!text.contains(&format!("{sudo}: not wired")), "{text}");

    let listed = setup(&dir, &["hand-wired"]);
    assert_eq!(listed.status.code(), Some(1), "{listed:?}");
    let lines: Vec<String> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(lines.iter().any(|l| l.starts_with(&format!("{myapp}:3: "))));
    assert!(lines
        .iter()
        .any(|l| l.starts_with(&format!("{sudo}:")) && l.ends_with("exempt_group=jit-breakglass")));

    // Lines jit-pam-setup wrote itself are not "by hand".
    let dir = pam_dir();
    assert!(setup(&dir, &["enable", "sudo", "--force"]).status.success());
    assert!(setup(&dir, &["enable", "sshd", "--force"]).status.success());
    let listed = setup(&dir, &["hand-wired"]);
    assert!(
        listed.status.success() && listed.stdout.is_empty(),
        "{listed:?}"
    );
}

#[test]
fn disable_comments_out_lines_wired_by_hand_and_enable_refuses_beside_them() {
    let dir = pam_dir();
    hand_wired(&dir);
    let before = lines(&dir, "sudo");
    let out = setup(&dir, &["enable", "sudo", "--force"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("jit-pam-setup disable sudo"),
        "{out:?}"
    );
    assert_eq!(
        lines(&dir, "sudo"),
        before,
        "a refused enable changes nothing"
    );

    let out = setup(&dir, &["disable", "sudo"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("commented out"),
        "{out:?}"
    );
    let after = lines(&dir, "sudo");
    assert!(after.contains(
        &"# disabled by jit-pam-setup: account  required  pam_jit.so exempt_group=jit-breakglass"
            .to_string()
    ));
    assert_eq!(after.len(), before.len(), "commented out, not deleted");
    // Now enable wires it the checked way.
    assert!(setup(&dir, &["enable", "sudo", "--force"]).status.success());
    let wired = lines(&dir, "sudo");
    assert_eq!(
        wired[first_account_line(&wired)],
        "@include jit-account # jit-pam-setup"
    );
}

/// Runs the package's prerm as dpkg would on `apt remove`, against the private PAM dir, with
/// this checkout's jit-pam-setup first in PATH.
fn prerm_remove(dir: &TempDir) -> Output {
    let path = format!(
        "{}:{}",
        workspace_root().join("packaging").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new("sh")
        .arg(workspace_root().join("packaging/debian/prerm"))
        .arg("remove")
        .env("JIT_PAM_DIR", dir.path())
        .env("PATH", path)
        .output()
        .unwrap()
}

#[test]
fn package_removal_refuses_while_a_hand_wired_line_remains_and_changes_nothing() {
    let dir = pam_dir();
    assert!(setup(&dir, &["enable", "sshd", "--force"]).status.success());
    hand_wired(&dir);
    let before = (
        lines(&dir, "sudo"),
        lines(&dir, "sshd"),
        lines(&dir, "myapp"),
    );
    let out = prerm_remove(&dir);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("NOT removing jit")
            && said.contains(&format!("{}:3:", dir.path().join("myapp").display()))
            && said.contains("jit-pam-setup disable"),
        "{said}"
    );
    assert_eq!(
        (
            lines(&dir, "sudo"),
            lines(&dir, "sshd"),
            lines(&dir, "myapp")
        ),
        before,
        "a refused removal changes nothing, not even the lines jit-pam-setup wrote"
    );

    // Once only jit-pam-setup's own lines are left, removal takes them out and goes ahead.
    std::fs::remove_file(dir.path().join("myapp")).unwrap();
    assert!(setup(&dir, &["disable", "sudo"]).status.success());
    let out = prerm_remove(&dir);
    assert!(out.status.success(), "{out:?}");
    let listed = setup(&dir, &["status"]);
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(
        text.contains("/sshd: not wired") && !text.contains("BY HAND"),
        "{text}"
    );
}
