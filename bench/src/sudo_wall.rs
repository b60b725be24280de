//! Measurement 2: `sudo -n /usr/bin/true` wall time through the real sudo: this machine's stock
//! sudo stack (common-auth, common-account, common-session-noninteractive), the same with
//! pam_jit wired as jit-pam-setup wires it (account first, session last: what users run), and
//! with the account line alone (what the session phase costs on top).

use std::process::{Command, Stdio};
use std::time::Duration;

use jit_tests::pam::PlacedFile;
use jit_tests::{TestGroup, TestUser};

use crate::daemon::{release, BenchDaemon};
use crate::report::{Goal, Report};
use crate::stats::{summarise, time};

struct SudoUser {
    user: TestUser,
    _pam: PlacedFile,
    _sudoers: PlacedFile,
}

impl SudoUser {
    fn new(prefix: &str, account: &str, session: &str) -> SudoUser {
        let user = TestUser::create(prefix);
        let service = format!("jit-test-{}", user.name);
        let pam = PlacedFile::write(
            format!("/etc/pam.d/{service}"),
            &format!(
                "session required pam_limits.so\n@include common-auth\n{account}@include common-account\n@include common-session-noninteractive\n{session}"
            ),
            0o644,
        );
        // No dot in the name, or #includedir skips it.
        let sudoers = PlacedFile::write(
            format!("/etc/sudoers.d/jit_test_{}", user.name),
            &format!(
                "Defaults:{u} pam_service={service}\n{u} ALL=(root) NOPASSWD: /usr/bin/true\n",
                u = user.name
            ),
            0o440,
        );
        SudoUser {
            user,
            _pam: pam,
            _sudoers: sudoers,
        }
    }

    fn sudo(&self) -> Duration {
        let mut ok = false;
        let took = time(|| {
            ok = self
                .user
                .command("sudo")
                .args(["-n", "/usr/bin/true"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
        });
        assert!(ok, "sudo -n true failed for {}", self.user.name);
        took
    }
}

pub fn measure(report: &mut Report, jitd: &BenchDaemon, iterations: usize) {
    // As deployed: jit-account/jit-session name a break-glass group, which has a member
    // (jit-pam-setup refuses to wire without one), so pam_jit's membership lookup does the
    // work it does on a real host.
    let breakglass_member = TestUser::create("bsg");
    let breakglass = TestGroup::create("bsg");
    breakglass.add(&breakglass_member);
    let line = |phase: &str| {
        format!(
            "{phase} required {} socket={} kind=sudo exempt_group={}\n",
            release("libpam_jit.so").display(),
            jitd.socket().display(),
            breakglass.name
        )
    };
    let deployed = SudoUser::new("bsd", &line("account"), &line("session"));
    let with = SudoUser::new("bsj", &line("account"), "");
    let without = SudoUser::new("bsp", "", "");
    for holder in [&deployed, &with] {
        let out = jitd.jitd(&[
            "grant",
            &holder.user.name,
            "--for",
            "1h",
            "--reason",
            "benchmark",
            "--",
            "/usr/bin/true",
        ]);
        assert!(out.status.success(), "jitd grant: {out:?}");
    }
    let check = Command::new("visudo").arg("-c").output().expect("visudo");
    assert!(check.status.success(), "visudo -c: {check:?}");
    for _ in 0..10 {
        deployed.sudo();
        with.sudo();
        without.sudo();
    }
    let (mut a, mut b, mut d) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..iterations {
        d.push(deployed.sudo());
        a.push(with.sudo());
        b.push(without.sudo());
    }
    let deployed = summarise(&mut d);
    let with = summarise(&mut a);
    let without = summarise(&mut b);
    report.add(
        "sudo.deployed.p50_us",
        "sudo -n true, pam_jit in account and session (as deployed): p50",
        deployed.p50,
        "µs",
    );
    report.goal(
        "sudo.deployed_ratio.p50",
        "sudo -n true: as deployed / stock stack (p50)",
        deployed.p50 / without.p50,
        "×",
        Goal::AtMost(1.02),
    );
    report.add(
        "sudo.with_jit.p50_us",
        "sudo -n true, pam_jit in account: p50",
        with.p50,
        "µs",
    );
    report.add(
        "sudo.without_jit.p50_us",
        "sudo -n true, stock stack: p50",
        without.p50,
        "µs",
    );
    report.add(
        "sudo.with_jit.p99_us",
        "sudo -n true, pam_jit in account: p99",
        with.p99,
        "µs",
    );
    report.add(
        "sudo.without_jit.p99_us",
        "sudo -n true, stock stack: p99",
        without.p99,
        "µs",
    );
    report.goal(
        "sudo.ratio.p50",
        "sudo -n true: with / without pam_jit (p50)",
        with.p50 / without.p50,
        "×",
        Goal::AtMost(1.05),
    );
}
