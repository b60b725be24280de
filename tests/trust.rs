//! A grant opens only what root alone can change: the attacks a requester could make through
//! the program a grant names (their own file, their own PATH, a file made writable after the
//! request) and through arguments sudo cannot match exactly, each refused with the reason.

use std::os::unix::fs::{chown, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use jit_tests::{ok, text, Daemon, RootDir, TestUser};

const ONLY_ROOT: &str = "jit grants only programs that only root can change";

fn home(user: &TestUser) -> PathBuf {
    PathBuf::from(format!("/home/{}", user.name))
}

/// `~/bin/NAME` owned by `user`, printing `says`.
fn own_program(user: &TestUser, name: &str, says: &str) -> PathBuf {
    let bin = home(user).join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let prog = bin.join(name);
    std::fs::write(&prog, format!("#!/bin/sh\necho {says}\n")).unwrap();
    std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).unwrap();
    for p in [&bin, &prog] {
        chown(p, Some(user.uid), Some(user.gid)).unwrap();
    }
    prog
}

fn chmod(path: &str, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn drop_in(d: &Daemon, id: &str) -> PathBuf {
    d.dir().join("sudoers.d").join(format!("jit_{id}"))
}

#[test]
fn alice_asks_for_her_own_program_and_is_refused_at_submission() {
    let d = Daemon::start();
    let alice = TestUser::create("alice");
    // Approved, she could rewrite it afterwards and run anything as root.
    let hello = own_program(&alice, "hello", "hello");
    let out = d.elevate_as(
        &alice,
        &["--no-wait", "--reason", "x", "--", hello.to_str().unwrap()],
    );
    assert!(!out.status.success(), "her own program was accepted");
    let said = text(&out.stderr);
    assert!(
        said.contains(&format!(
            "refused: {} is writable by {} (owner uid {}); {ONLY_ROOT}",
            home(&alice).display(),
            alice.name,
            alice.uid
        )),
        "{said}"
    );
    assert!(d.request_ids().is_empty(), "nothing was recorded");

    // A root-owned file in a directory she owns is no better: she can replace it.
    let bin = home(&alice).join("bin");
    chown(&hello, Some(0), Some(0)).unwrap();
    chmod(home(&alice).to_str().unwrap(), 0o755);
    chown(home(&alice), Some(0), Some(0)).unwrap();
    let out = d.elevate_as(
        &alice,
        &["--no-wait", "--reason", "x", "--", hello.to_str().unwrap()],
    );
    assert!(
        text(&out.stderr).contains(&format!(
            "refused: {} is writable by {}",
            bin.display(),
            alice.name
        )),
        "{}",
        text(&out.stderr)
    );
    chown(home(&alice), Some(alice.uid), Some(alice.gid)).unwrap();
}

#[test]
fn alice_with_her_own_bin_first_in_path_asks_for_id_and_the_request_names_usr_bin_id() {
    let d = Daemon::start();
    let alice = TestUser::create("alice");
    own_program(&alice, "id", "not-the-real-id");
    let path = format!("{}/bin:/usr/bin:/bin", home(&alice).display());
    let id = ok(alice
        .command(jit_tests::bin("jit-elevate"))
        .env("PATH", &path)
        .arg("--socket")
        .arg(d.socket())
        .args(["--no-wait", "--reason", "x", "--", "id", "-u"])
        .output()
        .unwrap());
    let shown = d.show(&id);
    assert_eq!(shown["command"][0], "/usr/bin/id", "{shown}");
    assert_eq!(shown["command"][1], "-u");
    // What approvers list is the resolved path too.
    let listed = ok(d.jitd(&["list"]));
    assert!(listed.contains("/usr/bin/id -u"), "{listed}");
}

#[test]
fn alice_with_her_own_bin_first_in_path_runs_the_real_id_once_approved() {
    let d = Daemon::start_enforcing("");
    let alice = TestUser::create("alice");
    own_program(&alice, "id", "not-the-real-id");
    let path = format!("{}/bin:/usr/bin:/bin", home(&alice).display());
    let child = alice
        .command(jit_tests::bin("jit-elevate"))
        .env("PATH", &path)
        .arg("--socket")
        .arg(d.socket())
        .args(["--reason", "x", "--", "id", "-u"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let id = d.wait_for_pending();
    assert_eq!(d.show(&id)["command"][0], "/usr/bin/id");
    ok(d.jitd(&["approve", &id]));
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        text(&out.stdout).trim(),
        "0",
        "ran /usr/bin/id as root: {}",
        text(&out.stderr)
    );
    ok(d.jitd(&["revoke", &id, "--reason", "done"]));
}

#[test]
fn a_program_made_group_writable_before_approval_fails_the_grant_with_the_reason() {
    let d = Daemon::start();
    let alice = TestUser::create("alice");
    let dir = RootDir::new();
    let prog = dir.program("prog", "echo hi");
    let id = ok(d.elevate_as(&alice, &["--no-wait", "--reason", "x", "--", &prog]));
    assert_eq!(d.state_of(&id), "pending");
    // After the request, before the approval: the program becomes changeable by a group.
    chmod(&prog, 0o775);
    let _ = d.jitd(&["approve", &id]);
    let shown = d.show(&id);
    assert_eq!(shown["state"], "failed", "{shown}");
    let failure = shown["failure"].as_str().unwrap();
    assert!(
        failure.contains(&format!(
            "refused: {prog} is writable by group root (gid 0, mode 0775); {ONLY_ROOT}"
        )),
        "{failure}"
    );
    assert!(!drop_in(&d, &id).exists());
    d.wait_for_log(
        "grant could not be installed: refused:",
        Duration::from_secs(5),
    );
}

#[test]
fn an_installed_grant_whose_program_becomes_writable_is_withdrawn_at_reconcile() {
    let mut d = Daemon::start();
    let alice = TestUser::create("alice");
    let dir = RootDir::new();
    let prog = dir.program("prog", "echo hi");
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
    assert_eq!(d.state_of(&id), "active");
    assert!(drop_in(&d, &id).exists());
    // Handed to alice while the grant runs; the restart reconciles at once.
    chown(&prog, Some(alice.uid), None).unwrap();
    d.restart();
    let shown = d.show(&id);
    assert_eq!(shown["state"], "failed", "{shown}");
    let failure = shown["failure"].as_str().unwrap();
    assert!(
        failure.contains(&format!(
            "refused: {prog} is writable by {} (owner uid {})",
            alice.name, alice.uid
        )),
        "{failure}"
    );
    assert!(!drop_in(&d, &id).exists(), "the drop-in was withdrawn");
    d.wait_for_log(
        "grant withdrawn at reconciliation: refused:",
        Duration::from_secs(5),
    );
}

#[test]
fn an_argument_sudo_cannot_match_exactly_is_refused_when_asked() {
    let d = Daemon::start();
    let alice = TestUser::create("alice");
    for (arg, says) in [
        (
            "a b",
            "argument 1 cannot be granted exactly: it contains whitespace",
        ),
        ("", "argument 1 cannot be granted exactly: it is empty"),
        ("a\tb", "control character"),
    ] {
        let out = d.elevate_as(
            &alice,
            &["--no-wait", "--reason", "x", "--", "/usr/bin/echo", arg],
        );
        assert!(!out.status.success(), "{arg:?} was accepted");
        assert!(
            text(&out.stderr).contains(says),
            "{arg:?}: {}",
            text(&out.stderr)
        );
    }
    // An approver cannot grant it directly either.
    let out = d.jitd(&[
        "grant",
        &alice.name,
        "--reason",
        "x",
        "--",
        "/usr/bin/echo",
        "a b",
    ]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("it contains whitespace"));
    assert!(d.request_ids().is_empty(), "nothing was recorded");
    assert!(Path::new("/usr/bin/echo").exists());
}
