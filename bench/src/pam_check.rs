//! Measurement 1: the PAM account check through the real libpam: pam_start_confdir → pam_acct_mgmt →
//! pam_end, for pam_jit asking a jitd that holds 100,000 active grants (a bare line, and the
//! stack as deployed: jit-account's and jit-session's lines, with `exempt_group=` naming a
//! break-glass group that has a member), next to the floor (a
//! stack of pam_permit alone) and to what people build by hand (pam_exec running a shell
//! script that looks the user up in a grant file of the same 100,000 grants).

use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use jit_tests::pam::{Pam, PAM_SUCCESS};
use jit_tests::{TempDir, TestGroup, TestUser};

use crate::daemon::release;
use crate::report::{Goal, Report};
use crate::stats::{summarise, time, Summary};

/// The hand-built gate: is PAM_USER listed with an expiry (epoch seconds) in the future?
const SCRIPT: &str = r#"#!/bin/sh
now=$(date +%s)
exec awk -v u="$PAM_USER" -v now="$now" '$1 == u && $2 > now { found = 1; exit } END { exit !found }' "$(dirname "$0")/grants"
"#;

pub struct Services {
    dir: TempDir,
    /// The break-glass group of the deployed stack and its member (removed on drop).
    breakglass: (TestGroup, TestUser),
}

impl Services {
    /// Three services in a private PAM directory; `grant_file` lines are `user expiry_epoch`.
    pub fn new(socket: &Path, grant_file: &str) -> Services {
        let dir = TempDir::new("benchpam");
        let script = dir.path().join("lookup.sh");
        std::fs::write(&script, SCRIPT).expect("script");
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::fs::write(dir.path().join("grants"), grant_file).expect("grant file");
        // As deployed: jit-pam-setup refuses to wire a host whose break-glass group has no
        // member, and the bench's user is not one, so pam_jit reads the group's entry (and
        // its member list) before it asks jitd, as on a real host.
        let member = TestUser::create("bpg");
        let breakglass = TestGroup::create("bpg");
        breakglass.add(&member);
        let files = [
            (
                "bench-jit",
                format!(
                    "account required {} socket={} kind=ssh\n",
                    release("libpam_jit.so").display(),
                    socket.display()
                ),
            ),
            // The stack as deployed: jit-account's and jit-session's lines (only the account
            // phase is timed; libpam loads the module once for both), with `socket=` and
            // `kind=ssh` added as for a service not named sshd.
            (
                "bench-jit-exempt",
                ["account", "session"]
                    .map(|phase| {
                        format!(
                            "{phase} required {} socket={} kind=ssh exempt_group={}\n",
                            release("libpam_jit.so").display(),
                            socket.display(),
                            breakglass.name
                        )
                    })
                    .concat(),
            ),
            ("bench-permit", "account required pam_permit.so\n".into()),
            (
                "bench-exec",
                format!("account required pam_exec.so quiet {}\n", script.display()),
            ),
        ];
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).expect("service file");
        }
        Services {
            dir,
            breakglass: (breakglass, member),
        }
    }

    /// The deployed stack's break-glass group (the bench's user is not in it).
    pub fn breakglass(&self) -> &str {
        &self.breakglass.0.name
    }

    /// Times `n` whole transactions on `service` for `user`, counting the ones that did not
    /// succeed (their times are kept too).
    pub fn run_counting(&self, service: &str, user: &str, n: usize) -> (Vec<Duration>, usize) {
        let mut failed = 0;
        let times = (0..n)
            .map(|_| {
                let mut rc = -1;
                let took = time(|| {
                    let mut pam = Pam::start(self.dir.path(), service, user);
                    rc = pam.acct_mgmt();
                });
                if rc != PAM_SUCCESS {
                    failed += 1;
                }
                took
            })
            .collect();
        (times, failed)
    }

    /// Times `n` whole transactions on `service` for `user`; every one must succeed.
    pub fn run(&self, service: &str, user: &str, n: usize) -> Vec<Duration> {
        let (times, failed) = self.run_counting(service, user, n);
        assert_eq!(
            failed, 0,
            "{service} refused {user} {failed} time(s): the figure would be wrong"
        );
        times
    }
}

/// The grant file the pam_exec script reads: the same grants jitd holds.
pub fn grant_file(users: impl Iterator<Item = String>, expires: i64) -> String {
    let mut text = String::new();
    for u in users {
        let _ = writeln!(text, "{u} {expires}");
    }
    text
}

pub fn measure(report: &mut Report, services: &Services, user: &str, iterations: usize) {
    // Interleaved blocks, so drift on a shared machine hits both alike.
    let block = 500.min(iterations);
    let mut jit = Vec::new();
    let mut deployed = Vec::new();
    let mut permit = Vec::new();
    services.run("bench-jit", user, 200);
    services.run("bench-jit-exempt", user, 200);
    services.run("bench-permit", user, 200);
    while jit.len() < iterations {
        jit.extend(services.run("bench-jit", user, block));
        deployed.extend(services.run("bench-jit-exempt", user, block));
        permit.extend(services.run("bench-permit", user, block));
    }
    // The same, with the module kept loaded by this process, so libpam's dlopen/dlclose of
    // pam_jit.so costs nothing: splits the figure into loading the module and the check.
    let mut loaded = {
        let _module = KeepLoaded::new(&release("libpam_jit.so"));
        services.run("bench-jit", user, 200);
        services.run("bench-jit", user, iterations / 4)
    };
    let exec_n = (iterations / 20).max(50);
    let mut exec = services.run("bench-exec", user, exec_n);
    let jit = summarise(&mut jit);
    let deployed = summarise(&mut deployed);
    let permit = summarise(&mut permit);
    let exec = summarise(&mut exec);
    let loaded = summarise(&mut loaded);
    let jit_label = "PAM account: pam_jit";
    rows(
        report,
        "pam.jit",
        jit_label,
        &jit,
        Some(Goal::AtMost(200.0)),
    );
    rows(
        report,
        "pam.deployed",
        "PAM account: pam_jit as deployed (jit-account + jit-session, exempt_group=)",
        &deployed,
        None,
    );
    rows(
        report,
        "pam.jit_preloaded",
        "PAM account: pam_jit, module kept loaded",
        &loaded,
        None,
    );
    rows(
        report,
        "pam.permit",
        "PAM account: pam_permit (floor)",
        &permit,
        None,
    );
    rows(
        report,
        "pam.exec",
        "PAM account: pam_exec + script",
        &exec,
        None,
    );
    report.goal(
        "pam.jit_over_permit.p99",
        "PAM account: pam_jit / pam_permit (p99)",
        jit.p99 / permit.p99,
        "×",
        Goal::AtMost(2.0),
    );
    report.goal(
        "pam.deployed_over_permit.p99",
        "PAM account as deployed / pam_permit (p99)",
        deployed.p99 / permit.p99,
        "×",
        Goal::AtMost(2.0),
    );
    report.goal(
        "pam.exec_over_jit.p99",
        "PAM account: pam_exec / pam_jit (p99)",
        exec.p99 / jit.p99,
        "×",
        Goal::AtLeast(10.0),
    );
}

fn rows(report: &mut Report, key: &str, label: &str, s: &Summary, p99_goal: Option<Goal>) {
    report.add(
        &format!("{key}.p50_us"),
        &format!("{label} p50"),
        s.p50,
        "µs",
    );
    let (p99_key, p99_label) = (format!("{key}.p99_us"), format!("{label} p99"));
    match p99_goal {
        Some(g) => report.goal(&p99_key, &p99_label, s.p99, "µs", g),
        None => report.add(&p99_key, &p99_label, s.p99, "µs"),
    }
    report.add(
        &format!("{key}.p999_us"),
        &format!("{label} p99.9"),
        s.p999,
        "µs",
    );
    report.add(
        &format!("{key}.max_us"),
        &format!("{label} max"),
        s.max,
        "µs",
    );
    report.add(
        &format!("{key}.n"),
        &format!("{label} samples"),
        s.n as f64,
        "",
    );
}

/// Holds a dlopen reference to a module for as long as it lives.
pub struct KeepLoaded(*mut libc::c_void);

impl KeepLoaded {
    pub fn new(path: &Path) -> KeepLoaded {
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("path");
        // SAFETY: a valid C string; the handle is closed in Drop.
        let handle = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW) };
        assert!(!handle.is_null(), "dlopen {}", path.display());
        KeepLoaded(handle)
    }
}

impl Drop for KeepLoaded {
    fn drop(&mut self) {
        // SAFETY: the handle came from dlopen and is closed once.
        unsafe { libc::dlclose(self.0) };
    }
}
