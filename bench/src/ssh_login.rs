//! Measurement: an SSH login as a user makes one — `ssh -i KEY user@127.0.0.1 true` with a
//! public key through a real OpenSSH server on this machine's stock sshd PAM stack — with
//! pam_jit wired as jit-pam-setup wires it (account before the first account line, session
//! after the last session line, both through `@include` files like the package's
//! jit-account/jit-session, with a break-glass group that has a member), and without it.
//!
//! Two sshds, one per PAM service: sshd names its PAM service after the name it was started
//! as, so each runs through a symlink to /usr/sbin/sshd named after its service file in
//! /etc/pam.d (as tests/harness/sshd.rs does). Logins alternate between them in pairs, the
//! order flipping every pair so neither side is always the first after a pause. One user
//! holds a real SSH grant from jitd; before timing, a user without one must be turned away by
//! the pam_jit sshd (otherwise the figure would not be of pam_jit at all).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jit_tests::pam::PlacedFile;
use jit_tests::{unique, TempDir, TestGroup, TestUser};

use crate::daemon::{release, BenchDaemon};
use crate::report::{Goal, Report};
use crate::stats::time;

/// Where jit-pam-setup puts its two lines in a service's stack, as it does it (first account
/// line, last session line; a `-account` line or an `@include common-account…` counts).
/// `None` when the stack has no account or no session line (jit-pam-setup refuses those).
pub fn wire(stock: &str, account: &str, session: &str) -> Option<String> {
    let is = |line: &str, kind: &str| {
        let mut words = line.split_whitespace();
        match words.next() {
            Some(w) if w == kind || w.strip_prefix('-') == Some(kind) => true,
            Some("@include") => words
                .next()
                .is_some_and(|f| f.starts_with(&format!("common-{kind}"))),
            _ => false,
        }
    };
    let lines: Vec<&str> = stock.lines().collect();
    let first_account = lines.iter().position(|l| is(l, "account"))?;
    let last_session = lines.iter().rposition(|l| is(l, "session"))?;
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        if i == first_account {
            out.push_str(account);
            out.push('\n');
        }
        out.push_str(line);
        out.push('\n');
        if i == last_session {
            out.push_str(session);
            out.push('\n');
        }
    }
    Some(out)
}

/// An sshd on 127.0.0.1 whose PAM service is `service` (a file in /etc/pam.d). Killed on drop.
struct BenchSshd {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl BenchSshd {
    fn start(dir: &Path, service: &str, users: &[&str]) -> BenchSshd {
        // sshd refuses to start without its privilege separation directory.
        std::fs::create_dir_all("/run/sshd").expect("/run/sshd");
        let program = dir.join(service);
        std::os::unix::fs::symlink("/usr/sbin/sshd", &program).expect("symlink sshd");
        // A port free now may be taken before sshd binds it: then sshd says so and exits,
        // and it is started again on another.
        for attempt in 1.. {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            let config = dir.join(format!("{service}.conf"));
            std::fs::write(
                &config,
                format!(
                    "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\n\
                     PidFile {d}/{service}.pid\nUsePAM yes\nPubkeyAuthentication yes\n\
                     PasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                     AuthorizedKeysFile {d}/authorized_keys/%u\nStrictModes no\n\
                     AllowUsers {u}\nPermitRootLogin no\nMaxStartups 100\n",
                    d = dir.display(),
                    u = users.join(" ")
                ),
            )
            .expect("sshd config");
            let log = dir.join(format!("{service}.log"));
            let _ = std::fs::remove_file(&log);
            let mut child = Command::new(&program)
                .arg("-D")
                .arg("-f")
                .arg(&config)
                .arg("-E")
                .arg(&log)
                .stdin(Stdio::null())
                .spawn()
                .expect("start sshd");
            let said = || std::fs::read_to_string(&log).unwrap_or_default();
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if said().contains("Server listening") {
                    return BenchSshd { child, port, log };
                }
                if let Ok(Some(status)) = child.try_wait() {
                    assert!(
                        said().contains("Address already in use") && attempt < 5,
                        "sshd {service} exited ({status}) before listening: {}",
                        said()
                    );
                    break;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("sshd {service} did not listen within 20 s: {}", said());
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        unreachable!()
    }

    /// `ssh … user@127.0.0.1 true`, as a user runs it: whether it logged in, and how long
    /// the whole client took.
    fn login(&self, key: &Path, user: &str) -> (bool, Duration) {
        let mut ok = false;
        let took = time(|| {
            ok = Command::new("ssh")
                .args(["-F", "/dev/null", "-i"])
                .arg(key)
                .args([
                    "-o",
                    "IdentitiesOnly=yes",
                    "-o",
                    "StrictHostKeyChecking=no",
                    "-o",
                    "UserKnownHostsFile=/dev/null",
                    "-o",
                    "BatchMode=yes",
                    "-o",
                    "ConnectTimeout=10",
                    "-o",
                    "LogLevel=ERROR",
                    "-p",
                ])
                .arg(self.port.to_string())
                .arg(format!("{user}@127.0.0.1"))
                .arg("true")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
        });
        (ok, took)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for BenchSshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn keygen(path: &Path) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .output()
        .expect("ssh-keygen");
    assert!(out.status.success(), "ssh-keygen: {out:?}");
}

/// Value at or below which `q` of the (sorted) samples lie, nearest rank.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

pub fn measure(report: &mut Report, jitd: &BenchDaemon, pairs: usize) {
    let stock = match std::fs::read_to_string("/etc/pam.d/sshd") {
        Ok(text) => text,
        Err(e) => {
            report.note(format!("SSH login left out: /etc/pam.d/sshd: {e}"));
            return;
        }
    };
    let holder = TestUser::create("bsh");
    let stranger = TestUser::create("bsn");
    // As deployed: a break-glass group with a member (jit-pam-setup refuses to wire without
    // one), so pam_jit's membership lookup does the work it does on a real host.
    let breakglass_member = TestUser::create("bsg");
    let breakglass = TestGroup::create("bsg");
    breakglass.add(&breakglass_member);

    let dir = TempDir::new("benchsshd");
    // sshd reads the keys as the user when StrictModes is off; let it in.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    keygen(&dir.path().join("host_key"));
    let key = dir.path().join("client_key");
    keygen(&key);
    std::fs::create_dir(dir.path().join("authorized_keys")).expect("mkdir");
    for user in [&holder, &stranger] {
        std::fs::copy(
            dir.path().join("client_key.pub"),
            dir.path().join("authorized_keys").join(&user.name),
        )
        .expect("authorized key");
    }

    // The package's jit-account and jit-session, pointed at this jitd and this build, and
    // with kind=ssh: the service is not named sshd (pam_jit infers the kind from that name).
    let tag = unique("jit-test-bssh-");
    let module = format!(
        "{} socket={} kind=ssh exempt_group={}",
        release("libpam_jit.so").display(),
        jitd.socket().display(),
        breakglass.name
    );
    let account = PlacedFile::write(
        format!("/etc/pam.d/{tag}-account"),
        &format!("account  required  {module}\n"),
        0o644,
    );
    let session = PlacedFile::write(
        format!("/etc/pam.d/{tag}-session"),
        &format!("session  required  {module}\n"),
        0o644,
    );
    let Some(wired) = wire(
        &stock,
        &format!("@include {tag}-account # jit-pam-setup"),
        &format!("@include {tag}-session # jit-pam-setup"),
    ) else {
        report.note("SSH login left out: /etc/pam.d/sshd has no account or no session line");
        return;
    };
    let (with_service, without_service) = (format!("{tag}-jit"), format!("{tag}-stock"));
    let _with_pam = PlacedFile::write(format!("/etc/pam.d/{with_service}"), &wired, 0o644);
    let _without_pam = PlacedFile::write(format!("/etc/pam.d/{without_service}"), &stock, 0o644);
    let users = [holder.name.as_str(), stranger.name.as_str()];
    let with = BenchSshd::start(dir.path(), &with_service, &users);
    let without = BenchSshd::start(dir.path(), &without_service, &users);

    let out = jitd.jitd(&[
        "grant",
        &holder.name,
        "--for",
        "1h",
        "--ssh",
        "--reason",
        "benchmark",
    ]);
    assert!(out.status.success(), "jitd grant --ssh: {out:?}");
    // pam_jit must be what decides on the pam_jit side, and nothing must stop the stock side.
    assert!(
        !with.login(&key, &stranger.name).0,
        "a user without a grant logged in through pam_jit: the figure would not be of pam_jit\n{}",
        with.log()
    );
    assert!(
        without.login(&key, &stranger.name).0,
        "the stock sshd stack refused a login:\n{}",
        without.log()
    );

    let login = |sshd: &BenchSshd| {
        let (ok, took) = sshd.login(&key, &holder.name);
        assert!(
            ok,
            "ssh login of {} failed:\n{}\njitd:\n{}",
            holder.name,
            sshd.log(),
            jitd.log()
        );
        took.as_nanos() as f64 / 1e6
    };
    for _ in 0..3 {
        login(&with);
        login(&without);
    }
    let (mut a, mut b, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..pairs {
        let (w, wo) = if i % 2 == 0 {
            let w = login(&with);
            (w, login(&without))
        } else {
            let wo = login(&without);
            (login(&with), wo)
        };
        a.push(w);
        b.push(wo);
        ratios.push(w / wo);
    }
    for v in [&mut a, &mut b, &mut ratios] {
        v.sort_by(f64::total_cmp);
    }
    drop((with, without, account, session));

    report.goal(
        "ssh.ratio.p50",
        &format!("ssh login: as deployed / stock stack (median of {pairs} pairs)"),
        quantile(&ratios, 0.5),
        "×",
        Goal::AtMost(1.02),
    );
    report.add(
        "ssh.ratio_of_medians",
        "ssh login: median as deployed / median stock",
        quantile(&a, 0.5) / quantile(&b, 0.5),
        "×",
    );
    report.add(
        "ssh.with_jit.p50_ms",
        "ssh login, pam_jit in account and session (as deployed): p50",
        quantile(&a, 0.5),
        "ms",
    );
    report.add(
        "ssh.with_jit.p90_ms",
        "ssh login, pam_jit in account and session (as deployed): p90",
        quantile(&a, 0.9),
        "ms",
    );
    report.add(
        "ssh.without_jit.p50_ms",
        "ssh login, stock stack: p50",
        quantile(&b, 0.5),
        "ms",
    );
    report.add(
        "ssh.without_jit.p90_ms",
        "ssh login, stock stack: p90",
        quantile(&b, 0.9),
        "ms",
    );
    report.add(
        "ssh.ratio.p90",
        "ssh login: as deployed / stock stack, p90 of the pairs' ratios",
        quantile(&ratios, 0.9),
        "×",
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lines_go_where_jit_pam_setup_puts_them() {
        let stock =
            "@include common-auth\naccount required pam_nologin.so\n@include common-account\n\
                     session required pam_loginuid.so\n@include common-session\n\
                     session required pam_env.so\n@include common-password\n";
        let wired = wire(stock, "A", "S").unwrap();
        assert_eq!(
            wired,
            "@include common-auth\nA\naccount required pam_nologin.so\n@include common-account\n\
             session required pam_loginuid.so\n@include common-session\n\
             session required pam_env.so\nS\n@include common-password\n"
        );
    }

    #[test]
    fn a_stack_without_an_account_line_is_not_wired() {
        assert_eq!(wire("session required pam_env.so\n", "A", "S"), None);
        assert_eq!(wire("account required pam_unix.so\n", "A", "S"), None);
    }

    #[test]
    fn an_included_common_account_counts_as_the_first_account_line() {
        let wired = wire(
            "@include common-account\nsession required pam_env.so\n",
            "A",
            "S",
        );
        assert_eq!(
            wired.as_deref(),
            Some("A\n@include common-account\nsession required pam_env.so\nS\n")
        );
    }
}
