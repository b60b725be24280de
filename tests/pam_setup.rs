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
