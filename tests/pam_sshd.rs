//! Real OpenSSH consults pam_jit in the account phase: a public-key login needs an SSH grant.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Output;
use std::time::Duration;

use jit_tests::pam::*;
use jit_tests::sshd::*;
use jit_tests::{Daemon, TestUser};

fn assert_logged_in(out: &Output) {
    assert!(out.status.success(), "login failed: {out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "logged-in");
}

fn pam_denials(sshd: &Sshd, user: &TestUser) -> usize {
    let denial = format!(
        "Access denied for user {} by PAM account configuration",
        user.name
    );
    sshd.log().matches(&denial).count()
}

/// Tries to log in and expects PAM's account stack (pam_jit) to turn the user away.
fn assert_turned_away(sshd: &Sshd, user: &TestUser, netns: Option<&NetnsPair>) {
    let before = pam_denials(sshd, user);
    let out = sshd.login(user, netns);
    assert!(!out.status.success(), "login succeeded: {out:?}");
    // sshd writes the line as the connection ends; give it a moment.
    for _ in 0..100 {
        if pam_denials(sshd, user) > before {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("sshd did not log a PAM account denial:\n{}", sshd.log());
}

#[test]
fn an_ssh_login_needs_an_ssh_grant_and_ends_with_its_revocation() {
    let jitd = Daemon::start();
    let erin = TestUser::create("jitsh");
    let sshd = Sshd::start(&erin, &jitd.socket(), None);

    assert_turned_away(&sshd, &erin, None);

    // A sudo grant is not an SSH login.
    let sudo_grant = grant(&jitd, &erin.name, "2m", &["--", "/usr/bin/id"]);
    assert_turned_away(&sshd, &erin, None);
    revoke(&jitd, &sudo_grant);

    let id = grant(&jitd, &erin.name, "2m", &["--ssh"]);
    assert_logged_in(&sshd.login(&erin, None));

    revoke(&jitd, &id);
    assert_turned_away(&sshd, &erin, None);
}

#[test]
fn a_login_from_another_host_is_recorded_with_its_address() {
    let jitd = Daemon::start();
    let frank = TestUser::create("jitsh");
    let net = NetnsPair::create();
    let sshd = Sshd::start(&frank, &jitd.socket(), Some(&net));

    assert_turned_away(&sshd, &frank, Some(&net));

    let id = grant(&jitd, &frank.name, "2m", &["--ssh"]);
    let mut session = sshd
        .ssh(&frank, Some(&net), &["sleep", "3"])
        .spawn()
        .unwrap();
    let view = wait_for_view(&jitd, &id, Duration::from_secs(5), |v| {
        !v.sessions.is_empty()
    });
    let recorded = &view.sessions[0];
    assert_eq!(recorded.rhost.as_deref(), Some(NetnsPair::CLIENT_ADDR));
    assert_eq!(recorded.user, frank.name);
    assert_eq!(recorded.service, sshd.service);
    assert!(
        recorded.audit_session.is_some(),
        "no audit session id: {recorded:?}"
    );
    assert!(session.wait().unwrap().success());
    wait_for_view(&jitd, &id, Duration::from_secs(5), |v| {
        v.sessions.is_empty()
    });

    revoke(&jitd, &id);
    assert_turned_away(&sshd, &frank, Some(&net));
}

#[test]
fn revoking_the_grant_ends_the_ssh_session_it_registered() {
    let jitd = Daemon::start_with("kill_grace = \"1s\"");
    let gina = TestUser::create("jitsh");
    let sshd = Sshd::start(&gina, &jitd.socket(), None);
    let id = grant(&jitd, &gina.name, "2m", &["--ssh"]);

    let started = std::time::Instant::now();
    let mut session = sshd.ssh(&gina, None, &["sleep", "60"]).spawn().unwrap();
    wait_for_view(&jitd, &id, Duration::from_secs(5), |v| {
        !v.sessions.is_empty()
    });
    revoke(&jitd, &id);
    assert_ended_soon(&mut session, started);
}

/// The client sees its `sleep 60` session end, long before the sleep would.
fn assert_ended_soon(session: &mut std::process::Child, since: std::time::Instant) {
    let status = session.wait().unwrap();
    assert!(!status.success(), "{status:?}");
    assert!(
        since.elapsed() < Duration::from_secs(30),
        "{:?}",
        since.elapsed()
    );
}

#[test]
fn an_ssh_session_outlives_a_jitd_restart_and_still_ends_with_its_grant() {
    let mut jitd = Daemon::start_with("kill_grace = \"1s\"");
    let hana = TestUser::create("jitsr");
    let sshd = Sshd::start(&hana, &jitd.socket(), None);
    let id = grant(&jitd, &hana.name, "2m", &["--ssh"]);
    let mut session = sshd.ssh(&hana, None, &["sleep", "60"]).spawn().unwrap();
    // Not just registered (jitd records the session before it answers pam_jit): started, so
    // the crash below cannot fall between the two, which would rightly fail the login.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !sshd.log().contains("Starting session") {
        assert!(std::time::Instant::now() < deadline, "{}", sshd.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!sshd.log().contains("pam_open_session"), "{}", sshd.log());
    wait_for_view(&jitd, &id, Duration::from_secs(5), |v| {
        !v.sessions.is_empty()
    });

    // jitd crashes and starts again: its startup reconcile finds the session's processes
    // under a grant that is still active, and leaves them be.
    jitd.restart();
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        session.try_wait().unwrap().is_none(),
        "the session of an active grant ended when jitd restarted; jitd said:\n{}\nsshd said:\n{}",
        jitd.log(),
        sshd.log()
    );

    let revoked = std::time::Instant::now();
    revoke(&jitd, &id);
    assert_ended_soon(&mut session, revoked);
}

/// The user's crontab in the cron spool, removed on drop, with the spool directories this test
/// had to create (cron is not installed everywhere the tests run).
struct Crontab {
    path: std::path::PathBuf,
    created_dirs: Vec<std::path::PathBuf>,
}

impl Crontab {
    const SPOOL: &'static str = "/var/spool/cron/crontabs";

    fn of(user: &TestUser) -> Crontab {
        let mut created_dirs = Vec::new();
        for dir in ["/var/spool/cron", Self::SPOOL] {
            if !std::path::Path::new(dir).exists() {
                std::fs::create_dir(dir).unwrap();
                created_dirs.push(dir.into());
            }
        }
        Crontab {
            path: std::path::Path::new(Self::SPOOL).join(&user.name),
            created_dirs,
        }
    }

    /// What `crontab -` does for the user: the spool file, owned by them, mode 0600.
    fn write_as(&self, user: &TestUser, line: &str) {
        use std::os::unix::fs::PermissionsExt;
        let tmp = self.path.with_extension("new");
        std::fs::write(&tmp, line).unwrap();
        std::os::unix::fs::chown(&tmp, Some(user.uid), None).unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::rename(&tmp, &self.path).unwrap();
    }
}

impl Drop for Crontab {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        for dir in self.created_dirs.iter().rev() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// `jitd audit --id ID --json`: the request's audit records.
fn audit_records(jitd: &Daemon, id: &str) -> Vec<serde_json::Value> {
    let out = std::process::Command::new(jit_tests::bin("jitd"))
        .arg("audit")
        .arg("--config")
        .arg(jitd.config_path())
        .args(["--id", id, "--json"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_crontab_written_during_an_ssh_grant_is_named_when_the_grant_ends() {
    let jitd = Daemon::start_with("kill_grace = \"1s\"");
    let ivan = TestUser::create("jitcr");
    let crontab = Crontab::of(&ivan);
    let sshd = Sshd::start(&ivan, &jitd.socket(), None);
    let id = grant(&jitd, &ivan.name, "2m", &["--ssh"]);
    let mut session = sshd.ssh(&ivan, None, &["sleep", "60"]).spawn().unwrap();
    // Registered: what ivan had scheduled is recorded before the session runs anything.
    wait_for_view(&jitd, &id, Duration::from_secs(5), |v| {
        !v.sessions.is_empty()
    });

    // During the grant ivan leaves a job behind that cron would run long after it.
    let has_cron = std::process::Command::new("sh")
        .args(["-c", "command -v crontab"])
        .output()
        .is_ok_and(|o| o.status.success());
    if has_cron {
        let out = sshd
            .ssh(
                &ivan,
                None,
                &["sh", "-c", "'echo \"@reboot /bin/true\" | crontab -'"],
            )
            .output()
            .unwrap();
        assert!(out.status.success(), "crontab -: {out:?}");
    } else {
        crontab.write_as(&ivan, "@reboot /bin/true\n");
    }

    revoke(&jitd, &id);
    let _ = session.wait();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let left = loop {
        let records = audit_records(&jitd, &id);
        if let Some(r) = records.iter().find(|r| r["event"] == "left_behind") {
            break r.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no left_behind record for grant {id} within 10 s of its revocation: {records:#?}\n{}",
            jitd.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let path = crontab.path.display().to_string();
    assert_eq!(left["message_id"], "6a1b0f2e8c7d4e31a9f05b3c2d1e0f16");
    assert_eq!(left["user"], ivan.name.as_str());
    assert_eq!(left["extra"]["CRONTAB"], path.as_str(), "{left}");
    assert!(left["message"].as_str().unwrap().contains(&path), "{left}");
}
