//! Enforcement stories with the machine's real sudo and /etc/sudoers.d: a grant allows exactly
//! the approved command line, and nothing of it survives its window.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use jit_tests::{ok, text, Daemon, Identity, TestUser};

fn drop_in(id: &str) -> String {
    format!("/etc/sudoers.d/jit_{id}")
}

/// `sudo -n ARGS` as `user`, through the real sudo.
fn sudo(user: &Identity, args: &[&str]) -> Output {
    user.command("sudo").arg("-n").args(args).output().unwrap()
}

/// The operator runs jit-elevate and waits; root approves once the request shows up.
fn elevate_approved(d: &Daemon, user: &TestUser, args: &[&str]) -> Output {
    let mut cmd = user.command(jit_tests::bin("jit-elevate"));
    cmd.arg("--socket").arg(d.socket()).args(args);
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let id = d.wait_for_pending();
    ok(d.jitd(&["approve", &id]));
    child.wait_with_output().unwrap()
}

fn only_active_id(d: &Daemon) -> String {
    let list: serde_json::Value = serde_json::from_str(&ok(d.jitd(&["list", "--json"]))).unwrap();
    let active: Vec<_> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["state"] == "active")
        .collect();
    assert_eq!(active.len(), 1, "{list}");
    active[0]["id"].as_str().unwrap().to_string()
}

#[test]
fn an_approved_command_runs_as_root_and_nothing_broader() {
    let d = Daemon::start_enforcing("");
    let op = TestUser::create("op");
    let who = op.identity();
    // Without a grant, sudo refuses.
    assert!(!sudo(&who, &["/usr/bin/id", "-u"]).status.success());

    let out = elevate_approved(&d, &op, &["--reason", "deploy", "--", "/usr/bin/id", "-u"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "0", "the command ran as root");
    let id = only_active_id(&d);
    let meta = std::fs::metadata(drop_in(&id)).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o7777),
        (0, 0, 0o440)
    );

    // A second run of the same command uses the grant at once, without a new request.
    let again = op
        .command(jit_tests::bin("jit-elevate"))
        .arg("--socket")
        .arg(d.socket())
        .args(["--reason", "again", "--", "/usr/bin/id", "-u"])
        .output()
        .unwrap();
    assert_eq!(text(&again.stdout).trim(), "0", "{}", text(&again.stderr));
    assert!(text(&again.stderr).contains("using your active grant"));

    // Other arguments, or the bare program, are not covered.
    for args in [
        &["/usr/bin/id"][..],
        &["/usr/bin/id", "-u", "-n"],
        &["/usr/bin/id", "-g"],
        &["/bin/sh", "-c", "id"],
    ] {
        assert!(!sudo(&who, args).status.success(), "{args:?} was allowed");
    }

    ok(d.jitd(&["revoke", &id, "--reason", "done with it"]));
    assert!(
        !Path::new(&drop_in(&id)).exists(),
        "the drop-in is gone after revoke"
    );
    assert!(!sudo(&who, &["/usr/bin/id", "-u"]).status.success());
}

#[test]
fn sudoers_special_characters_in_arguments_match_exactly() {
    let d = Daemon::start_enforcing("");
    let op = TestUser::create("op");
    let who = op.identity();
    let argv = ["/bin/echo", "a,b", "c:d", "e=f", "g\\h", "*"];
    let mut args = vec![
        "grant",
        op.name.as_str(),
        "--for",
        "5m",
        "--reason",
        "x",
        "--",
    ];
    args.extend(argv);
    let id = ok(d.jitd(&args));
    let out = sudo(&who, &argv);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "a,b c:d e=f g\\h *\n");
    for other in [
        &["/bin/echo", "a"][..],
        &["/bin/echo", "a,b", "c:d", "e=f", "g\\h", "x"],
        &["/bin/echo", "a,b", "c:d", "e=f", "g\\h", "*", "more"],
    ] {
        assert!(!sudo(&who, other).status.success(), "{other:?} was allowed");
    }
    ok(d.elevate_as(&op, &["done", &id]));
    assert!(!Path::new(&drop_in(&id)).exists());
    assert!(!sudo(&who, &argv).status.success());
}

#[test]
fn the_window_closes_by_itself() {
    let d = Daemon::start_enforcing("");
    let op = TestUser::create("op");
    let id = ok(d.jitd(&[
        "grant",
        &op.name,
        "--for",
        "2s",
        "--reason",
        "x",
        "--",
        "/usr/bin/true",
    ]));
    assert!(sudo(&op.identity(), &["/usr/bin/true"]).status.success());
    d.wait_for_state(&id, "expired", Duration::from_secs(4));
    // `expired` is in the registry before the drop-in goes (a check refuses at once; the
    // drop-in's NOTAFTER refuses too), so its removal is waited for, with a deadline far
    // beyond the wake-up that removes it: a bound on speed would fail on a loaded machine.
    let expired = Instant::now();
    while Path::new(&drop_in(&id)).exists() {
        assert!(
            expired.elapsed() < Duration::from_secs(10),
            "the drop-in outlived the window"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!sudo(&op.identity(), &["/usr/bin/true"]).status.success());
}

#[test]
fn a_grant_that_outlived_a_crash_is_removed_at_startup() {
    let mut d = Daemon::start_enforcing("");
    let op = TestUser::create("op");
    let id = ok(d.jitd(&[
        "grant",
        &op.name,
        "--for",
        "1s",
        "--reason",
        "x",
        "--",
        "/usr/bin/true",
    ]));
    d.kill9();
    assert!(Path::new(&drop_in(&id)).exists());
    // sudo honours NOTAFTER to the second, inclusively: be past that second.
    std::thread::sleep(Duration::from_millis(3000));
    // Even with jitd down, sudo's own NOTAFTER backstop refuses the expired rule.
    assert!(!sudo(&op.identity(), &["/usr/bin/true"]).status.success());
    d.restart();
    assert_eq!(d.state_of(&id), "expired");
    assert!(
        !Path::new(&drop_in(&id)).exists(),
        "the drop-in is removed at startup"
    );
}

#[test]
fn a_missing_drop_in_of_an_active_grant_comes_back_at_startup() {
    let mut d = Daemon::start_enforcing("");
    let op = TestUser::create("op");
    let id = ok(d.jitd(&[
        "grant",
        &op.name,
        "--for",
        "5m",
        "--reason",
        "x",
        "--",
        "/usr/bin/true",
    ]));
    d.kill9();
    std::fs::remove_file(drop_in(&id)).unwrap();
    // And a stray jit drop-in that no grant accounts for goes away.
    std::fs::write("/etc/sudoers.d/jit_zzzzzzzzzz", "# stale\n").unwrap();
    d.restart();
    assert!(Path::new(&drop_in(&id)).exists());
    assert!(!Path::new("/etc/sudoers.d/jit_zzzzzzzzzz").exists());
    assert!(sudo(&op.identity(), &["/usr/bin/true"]).status.success());
}

/// Removes a file on drop.
struct Planted(&'static str);
impl Drop for Planted {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.0);
    }
}

#[test]
fn a_broken_sudoers_file_stops_installs_and_is_left_alone() {
    let d = Daemon::start_enforcing("");
    let op = TestUser::create("op");
    let broken = "/etc/sudoers.d/zz-jit-test-broken";
    let _cleanup = Planted(broken);
    std::fs::write(broken, "this is not sudoers syntax ((\n").unwrap();
    std::fs::set_permissions(broken, std::os::unix::fs::PermissionsExt::from_mode(0o440)).unwrap();
    let id = ok(d.jitd(&[
        "grant",
        &op.name,
        "--for",
        "5m",
        "--reason",
        "x",
        "--",
        "/usr/bin/true",
    ]));
    let shown = d.show(&id);
    assert_eq!(shown["state"], "failed");
    let failure = shown["failure"].as_str().unwrap();
    assert!(
        failure.contains("zz-jit-test-broken"),
        "the failure names the file: {failure}"
    );
    assert!(!Path::new(&drop_in(&id)).exists());
    assert_eq!(
        std::fs::read_to_string(broken).unwrap(),
        "this is not sudoers syntax ((\n"
    );
}

#[test]
fn a_user_named_first_dot_last_gets_a_working_grant() {
    let d = Daemon::start_enforcing("");
    let name = format!("f{}.last", std::process::id() % 100_000);
    let user = TestUser::create_named(&name);
    let id = ok(d.jitd(&[
        "grant",
        &name,
        "--for",
        "5m",
        "--reason",
        "x",
        "--",
        "/usr/bin/id",
        "-u",
    ]));
    let out = sudo(&user.identity(), &["/usr/bin/id", "-u"]);
    assert_eq!(text(&out.stdout).trim(), "0", "{}", text(&out.stderr));
    ok(d.jitd(&["revoke", &id, "--reason", "x"]));
    let _ = Command::new("true").status();
}

/// Sudo for `user` goes through a PAM service with pam_jit in its account and session stacks
/// (as on a real host), so the sessions a grant starts are registered with jitd. The sudoers
/// rule itself comes from jitd's drop-in.
struct SudoThroughJit {
    _pam: jit_tests::pam::PlacedFile,
    _defaults: jit_tests::pam::PlacedFile,
}

impl SudoThroughJit {
    fn new(d: &Daemon, user: &TestUser) -> SudoThroughJit {
        let service = format!("jit-test-{}", user.name);
        let module = jit_tests::pam::module_path();
        let pam = jit_tests::pam::PlacedFile::write(
            format!("/etc/pam.d/{service}"),
            &format!(
                "auth required pam_deny.so\naccount required {m} socket={s} kind=sudo\nsession required {m} socket={s} kind=sudo\n",
                m = module.display(),
                s = d.socket().display()
            ),
            0o644,
        );
        let defaults = jit_tests::pam::PlacedFile::write(
            format!("/etc/sudoers.d/jit_test_{}", user.name),
            &format!("Defaults:{} pam_service={service}\n", user.name),
            0o440,
        );
        SudoThroughJit {
            _pam: pam,
            _defaults: defaults,
        }
    }
}

/// Processes whose command line contains `marker`.
fn running(marker: &str) -> Vec<String> {
    let out = Command::new("pgrep")
        .args(["-a", "-f", marker])
        .output()
        .unwrap();
    text(&out.stdout)
        .lines()
        .filter(|l| !l.contains("pgrep"))
        .map(String::from)
        .collect()
}

#[test]
fn every_process_a_grant_started_ends_with_it_however_it_detached() {
    let d = Daemon::start_enforcing("kill_grace = \"1s\"");
    let op = TestUser::create("op");
    let _sudo = SudoThroughJit::new(&d, &op);
    let scripts = jit_tests::TempDir::new("spawn");
    for ending in ["revoke", "done", "expiry"] {
        // A task that leaves detached children behind: setsid, nohup &, and one that
        // ignores SIGTERM. Unique sleep lengths mark them.
        let base = 100_000 + (std::process::id() % 50_000) * 3;
        let marks = [base, base + 1, base + 2, base + 3].map(|n| n.to_string());
        let script = scripts.path().join(format!("task-{ending}.sh"));
        std::fs::write(
            &script,
            format!(
                "setsid sleep {0} </dev/null >/dev/null 2>&1 &\nnohup sleep {1} >/dev/null 2>&1 &\n\
                 (trap '' TERM; sleep {2}) </dev/null >/dev/null 2>&1 &\nexec sleep {3}\n",
                marks[0], marks[1], marks[2], marks[3]
            ),
        )
        .unwrap();
        let script = script.display().to_string();
        let duration = if ending == "expiry" { "4s" } else { "5m" };
        let id = ok(d.jitd(&[
            "grant", &op.name, "--for", duration, "--reason", "x", "--", "/bin/sh", &script,
        ]));
        let mut task = op
            .command("sudo")
            .args(["-n", "/bin/sh", &script])
            .spawn()
            .unwrap();
        let registered = Instant::now();
        while d.show(&id)["sessions"].as_array().unwrap().is_empty() {
            assert!(
                registered.elapsed() < Duration::from_secs(5),
                "no session registered"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let started = Instant::now();
        while marks
            .iter()
            .any(|m| running(&format!("sleep {m}")).is_empty())
        {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "the task did not start everything"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        match ending {
            "revoke" => {
                ok(d.jitd(&["revoke", &id, "--reason", "x"]));
            }
            "done" => {
                ok(d.elevate_as(&op, &["done", &id]));
            }
            _ => d.wait_for_state(&id, "expired", Duration::from_secs(6)),
        }
        let ended_at = Instant::now();
        // A deadline, not a measure of speed: kill_grace (1 s) plus room for a loaded machine.
        while marks
            .iter()
            .any(|m| !running(&format!("sleep {m}")).is_empty())
        {
            assert!(
                ended_at.elapsed() < Duration::from_secs(11),
                "after {ending}, still running: {:?}",
                marks
                    .iter()
                    .flat_map(|m| running(&format!("sleep {m}")))
                    .collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = task.wait();
        assert!(!Path::new(&drop_in(&id)).exists());
        assert!(
            !sudo(&op.identity(), &["/bin/sh", &script]).status.success(),
            "after {ending}"
        );
    }
}

/// A sudo session is answered before its record is stored (the process is already in the
/// grant's cgroup). Crash jitd in that gap: the record on disk never heard of the session, and
/// still everything the session started ends with the grant, whether the window closes after
/// the restart or closed while jitd was down.
#[test]
fn a_session_whose_record_a_crash_lost_still_ends_with_its_grant() {
    let mut d = Daemon::start_enforcing("kill_grace = \"1s\"");
    let op = TestUser::create("lost");
    let _sudo = SudoThroughJit::new(&d, &op);
    let scripts = jit_tests::TempDir::new("lost");
    for (case, n) in [
        ("closes after the restart", 0),
        ("closed while jitd was down", 1),
    ] {
        d.restart_through(&["env", "JITD_FAILPOINT=session_open_before_record"]);
        let mark = (200_000 + (std::process::id() % 50_000) * 2 + n).to_string();
        let script = scripts.path().join(format!("task-{n}.sh"));
        std::fs::write(
            &script,
            format!("setsid sleep {mark} </dev/null >/dev/null 2>&1 &\nexec sleep {mark}\n"),
        )
        .unwrap();
        let script = script.display().to_string();
        let id = ok(d.jitd(&[
            "grant", &op.name, "--for", "6s", "--reason", "x", "--", "/bin/sh", &script,
        ]));
        let expires = Instant::now() + Duration::from_secs(6);
        let mut task = op
            .command("sudo")
            .args(["-n", "/bin/sh", &script])
            .spawn()
            .unwrap();
        let started = Instant::now();
        while running(&format!("sleep {mark}")).len() < 2 {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{case}: the session did not start its task: {}",
                d.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(
            d.log().contains("failpoint session_open_before_record hit"),
            "{case}: the session's record was not deferred: {}",
            d.log()
        );
        let stored: serde_json::Value =
            serde_json::from_slice(&std::fs::read(d.record_file(&id)).unwrap()).unwrap();
        assert_eq!(
            stored["sessions"].as_array().map(Vec::len).unwrap_or(0),
            0,
            "{case}: the crash is meant to come before the session is stored: {stored}"
        );
        d.kill9();
        if n == 1 {
            // Past the window before jitd is back.
            std::thread::sleep(expires.saturating_duration_since(Instant::now()));
            std::thread::sleep(Duration::from_millis(500));
        }
        d.restart_through(&[]);
        d.wait_for_state(&id, "expired", Duration::from_secs(10));
        let ended_at = Instant::now();
        // A deadline, not a measure of speed: kill_grace (1 s) plus room for a loaded machine.
        while !running(&format!("sleep {mark}")).is_empty() {
            assert!(
                ended_at.elapsed() < Duration::from_secs(11),
                "{case}: still running after the grant ended: {:?}",
                running(&format!("sleep {mark}"))
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = task.wait();
        assert!(!Path::new(&drop_in(&id)).exists(), "{case}");
    }
}

/// Whether `pid` is still the live process that started at `ticks` (not a zombie, not a
/// reused pid).
fn still_running(pid: u32, ticks: u64) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let rest = &stat[stat.rfind(')').unwrap() + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields[0] != "Z" && fields[19].parse::<u64>().ok() == Some(ticks)
}

fn start_ticks_of(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 1..];
    rest.split_whitespace().nth(19).unwrap().parse().unwrap()
}

/// SIGKILLs a root process of the test's own on drop.
struct KillOnDrop(u32);
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // SAFETY: kill(2) on a pid this test started.
        unsafe { libc::kill(self.0 as i32, libc::SIGKILL) };
    }
}

#[test]
fn after_a_restart_ending_a_grant_spares_an_older_root_process_of_the_same_login() {
    use std::io::{BufRead, BufReader, Write};
    let mut d = Daemon::start_enforcing("kill_grace = \"1s\"");
    let op = TestUser::create("op");
    let _sudo = SudoThroughJit::new(&d, &op);
    let scripts = jit_tests::TempDir::new("restart");
    let script = scripts.path().join("task.sh");
    std::fs::write(
        &script,
        "setsid sleep 1000 </dev/null >/dev/null 2>&1 &\necho $!\necho $$\nexec sleep 1000\n",
    )
    .unwrap();
    let script = script.display().to_string();

    // op's login: pam_loginuid gives it a new audit session. From it, earlier, a root process
    // was started that has nothing to do with any grant (a service restarted by hand, say).
    // Then, once granted, op runs the granted command through sudo in the same login.
    let mut login = Command::new("/bin/sh")
        .args([
            "-c",
            &format!(
                "echo {uid} > /proc/self/loginuid || exit 1\n\
                 setsid sleep 1000 </dev/null >/dev/null 2>&1 &\necho $!\n\
                 read go\n\
                 setpriv --reuid={uid} --regid={gid} --clear-groups -- sudo -n /bin/sh {script}",
                uid = op.uid,
                gid = op.gid,
            ),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(login.stdout.take().unwrap()).lines();
    let mut next_pid = |what: &str| -> u32 {
        let line = lines.next().unwrap_or_else(|| panic!("no pid of {what}"));
        line.unwrap().trim().parse().unwrap()
    };
    let older = next_pid("the older root process");
    let _older_guard = KillOnDrop(older);
    let older_ticks = start_ticks_of(older);
    let sid = std::fs::read_to_string(format!("/proc/{older}/sessionid")).unwrap();

    let id = ok(d.jitd(&[
        "grant", &op.name, "--for", "5m", "--reason", "x", "--", "/bin/sh", &script,
    ]));
    writeln!(login.stdin.as_mut().unwrap(), "go").unwrap();
    let detached = next_pid("the grant's detached process");
    let command = next_pid("the granted command");
    let (detached_ticks, command_ticks) = (start_ticks_of(detached), start_ticks_of(command));
    assert_eq!(
        std::fs::read_to_string(format!("/proc/{detached}/sessionid")).unwrap(),
        sid,
        "the grant's processes share the login's audit session"
    );
    let registered = Instant::now();
    while d.show(&id)["sessions"].as_array().unwrap().is_empty() {
        assert!(
            registered.elapsed() < Duration::from_secs(5),
            "the sudo session was not registered within 5 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    d.restart();
    ok(d.jitd(&["revoke", &id, "--reason", "x"]));
    d.wait_for_log(
        &format!("ended the processes of grant {id}"),
        Duration::from_secs(5),
    );
    let _ = login.wait();
    assert!(
        !still_running(detached, detached_ticks) && !still_running(command, command_ticks),
        "the grant's processes were ended"
    );
    assert!(
        still_running(older, older_ticks),
        "a root process of the same login that predates the grant was ended with it:\n{}",
        d.log()
    );
}
