//! Real sudo consults pam_jit: a test user, a sudoers drop-in that points sudo at a test PAM
//! service and allows the command, and a real jitd deciding.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use jit_proto::State;
use jit_tests::pam::*;
use jit_tests::{Daemon, TempDir, TestGroup, TestUser};

/// A user whose sudo goes through `/etc/pam.d/jit-test-<x>`, where pam_jit guards account and
/// session, and whose sudoers drop-in allows `/usr/bin/id` and `/usr/bin/sleep` without a
/// password. Everything is removed on drop.
struct SudoUser {
    user: TestUser,
    service: String,
    _sudoers: PlacedFile,
    _pam: PlacedFile,
}

impl SudoUser {
    fn new(socket: &Path) -> SudoUser {
        Self::with_args(TestUser::create("jitsu"), socket, "")
    }

    fn with_args(user: TestUser, socket: &Path, extra: &str) -> SudoUser {
        let service = format!("jit-test-{}", user.name);
        let module = module_path();
        // No auth stack is needed (NOPASSWD); pam_deny makes sure nothing slips through one.
        let pam = PlacedFile::write(
            format!("/etc/pam.d/{service}"),
            &format!(
                "auth required pam_deny.so\n\
                 account required {m} socket={s} kind=sudo {extra}\n\
                 session required {m} socket={s} kind=sudo {extra}\n",
                m = module.display(),
                s = socket.display()
            ),
            0o644,
        );
        // The drop-in's name has no dot, or sudo's #includedir would skip it.
        let sudoers = PlacedFile::write(
            format!("/etc/sudoers.d/jit_test_{}", user.name),
            &format!(
                "Defaults:{u} pam_service={service}\n{u} ALL=(root) NOPASSWD: /usr/bin/id, /usr/bin/sleep\n",
                u = user.name
            ),
            0o440,
        );
        let check = Command::new("visudo")
            .args(["-cf"])
            .arg(&sudoers.0)
            .output()
            .unwrap();
        assert!(check.status.success(), "{check:?}");
        SudoUser {
            user,
            service,
            _sudoers: sudoers,
            _pam: pam,
        }
    }

    fn sudo(&self, args: &[&str]) -> Output {
        self.sudo_command(args).output().unwrap()
    }

    fn sudo_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", &self.user.name, "--", "sudo", "-n"])
            .args(args)
            .stdin(Stdio::null());
        cmd
    }
}

fn assert_refused(out: &Output) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "sudo succeeded: {out:?}");
    assert!(stderr.contains("PAM account management error"), "{stderr}");
    assert!(
        stderr.contains("jit-elevate --reason \"why\" -- <command>"),
        "the user was not told what to do: {stderr}"
    );
}

fn assert_ran_as_root(out: &Output) {
    assert!(out.status.success(), "sudo failed: {out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("uid=0(root)"));
}

#[test]
fn sudo_needs_a_grant_and_stops_working_when_it_is_revoked() {
    let jitd = Daemon::start();
    let alice = SudoUser::new(&jitd.socket());

    assert_refused(&alice.sudo(&["/usr/bin/id"]));

    let id = grant(&jitd, &alice.user.name, "2m", &["--", "/usr/bin/id"]);
    assert_ran_as_root(&alice.sudo(&["/usr/bin/id"]));

    revoke(&jitd, &id);
    assert_refused(&alice.sudo(&["/usr/bin/id"]));
}

#[test]
fn sudo_stops_working_when_the_grant_expires() {
    let jitd = Daemon::start();
    let bob = SudoUser::new(&jitd.socket());

    let id = grant(&jitd, &bob.user.name, "2s", &["--", "/usr/bin/id"]);
    assert_ran_as_root(&bob.sudo(&["/usr/bin/id"]));

    wait_for_view(&jitd, &id, Duration::from_secs(10), |v| {
        v.state == State::Expired
    });
    assert_refused(&bob.sudo(&["/usr/bin/id"]));
}

#[test]
fn a_running_sudo_session_is_registered_under_its_grant() {
    let jitd = Daemon::start();
    let carol = SudoUser::new(&jitd.socket());
    let id = grant(
        &jitd,
        &carol.user.name,
        "2m",
        &["--", "/usr/bin/sleep", "3"],
    );

    let mut running = carol
        .sudo_command(&["/usr/bin/sleep", "3"])
        .spawn()
        .unwrap();
    let view = wait_for_view(&jitd, &id, Duration::from_secs(3), |v| {
        !v.sessions.is_empty()
    });
    let session = &view.sessions[0];
    // sudo's session phase: the target user, with the invoking user as ruser.
    assert_eq!(session.user, "root");
    assert_eq!(session.ruser.as_deref(), Some(carol.user.name.as_str()));
    assert_eq!(session.service, carol.service);
    let comm = std::fs::read_to_string(format!("/proc/{}/comm", session.pid)).unwrap();
    assert_eq!(comm.trim(), "sudo", "the registered pid is not sudo's");

    assert!(running.wait().unwrap().success());
    // Closing the session deregisters it.
    wait_for_view(&jitd, &id, Duration::from_secs(3), |v| {
        v.sessions.is_empty()
    });
}

#[test]
fn sudo_is_refused_when_jitd_is_not_running() {
    let dir = TempDir::new("sudo-down");
    let dave = SudoUser::new(&dir.path().join("absent.sock"));
    let out = dave.sudo(&["/usr/bin/id"]);
    assert!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("PAM account management error"), "{stderr}");
    assert!(stderr.contains("not answering"), "{stderr}");
}

#[test]
fn a_break_glass_member_can_sudo_while_jitd_is_down() {
    let dir = TempDir::new("sudo-breakglass");
    let breakglass = TestGroup::create("jitbg");
    let admin = TestUser::create("jitsu");
    breakglass.add(&admin);
    let admin = SudoUser::with_args(
        admin,
        &dir.path().join("absent.sock"),
        &format!("exempt_group={}", breakglass.name),
    );
    assert_ran_as_root(&admin.sudo(&["/usr/bin/id"]));

    // Someone outside the group, same configuration: refused.
    let other = SudoUser::with_args(
        TestUser::create("jitsu"),
        &dir.path().join("absent.sock"),
        &format!("exempt_group={}", breakglass.name),
    );
    let out = other.sudo(&["/usr/bin/id"]);
    assert!(!out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("PAM account management error"));
}
