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

/// The passes on the review backlog of `user`, waiting up to 10 s for `want` of them.
fn passes_of(jitd: &Daemon, user: &str, want: usize) -> Vec<serde_json::Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let out = jitd.jitd(&["list", "--unreviewed", "--json"]);
        let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let found: Vec<serde_json::Value> = list
            .into_iter()
            .filter(|r| r["user"] == user && r["state"] == "passed")
            .collect();
        if found.len() >= want || std::time::Instant::now() > deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The review's hole: a break-glass sudo was never recorded (sudo's log line carries the
/// user's uid and was dropped). pam_jit now tells jitd at once; the pass is a record on the
/// review backlog, with sudo's command line, until an approver reviews it.
#[test]
fn a_break_glass_sudo_is_recorded_with_its_command_for_review() {
    let jitd = Daemon::start();
    let breakglass = TestGroup::create("jitbg");
    let admin = TestUser::create("jitsu");
    breakglass.add(&admin);
    let admin = SudoUser::with_args(
        admin,
        &jitd.socket(),
        &format!("exempt_group={}", breakglass.name),
    );
    assert_ran_as_root(&admin.sudo(&["/usr/bin/id"]));

    let found = passes_of(&jitd, &admin.user.name, 1);
    assert_eq!(found.len(), 1, "the pass is not on the review backlog");
    let pass = &found[0];
    assert_eq!(pass["break_glass"], true);
    assert_eq!(
        pass["command"],
        serde_json::json!(["sudo", "-n", "/usr/bin/id"]),
        "{pass}"
    );
    assert!(
        pass["reason"]
            .as_str()
            .unwrap()
            .contains("exempt (break-glass) group"),
        "{pass}"
    );
    let id = pass["id"].as_str().unwrap();
    assert!(
        jitd.log().contains("BREAK-GLASS") && jitd.log().contains(id),
        "{}",
        jitd.log()
    );
    let reviewed = jitd.jitd(&["review", id, "--comment", "checked the outage ticket"]);
    assert!(reviewed.status.success(), "{reviewed:?}");
    assert!(passes_of(&jitd, &admin.user.name, 0).is_empty());
}

/// A user cannot put passes on the record (to flood the approvers' backlog, or to frame
/// someone): only root — sudo, sshd — is heard.
#[test]
fn a_pass_report_from_a_user_is_refused() {
    let jitd = Daemon::start();
    let mallory = TestUser::create("jitsu");
    let report = format!(
        r#"{{"v":1,"op":"passed","user":"root","kind":"sudo","service":"sudo","ruser":"{}","how":"exempt","key":"forged"}}"#,
        mallory.name
    );
    let out = mallory
        .command("python3")
        .arg("-c")
        .arg(format!(
            "import socket,struct,sys\ns=socket.socket(socket.AF_UNIX)\ns.connect({:?})\nb={:?}.encode()\ns.sendall(struct.pack('>I',len(b))+b)\nn=struct.unpack('>I',s.recv(4))[0]\nsys.stdout.write(s.recv(n).decode())",
            jitd.socket().display().to_string(),
            report
        ))
        .output()
        .unwrap();
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(answer["code"], "forbidden", "{answer}");
    let list = jitd.jitd(&["list", "--unreviewed", "--json"]);
    assert!(
        !String::from_utf8_lossy(&list.stdout).contains(&mallory.name),
        "a forged pass was recorded"
    );
}
