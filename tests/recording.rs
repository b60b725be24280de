//! Recording stories with the machine's real sudo: a recorded grant's commands are in sudo's
//! I/O log under the grant's own directory, `jitd replay` plays them back to root and
//! auditors, and the grant holder can neither read nor replay them.

use std::path::{Path, PathBuf};
use std::process::Output;

use jit_tests::pam::{grant, revoke};
use jit_tests::sshd::Sshd;
use jit_tests::{ok, text, Daemon, TestGroup, TestUser};

/// tlog's session recorder (Debian's `tlog`, which tests/run installs).
const TLOG: &str = "/usr/bin/tlog-rec-session";

/// `sudo -n ARGS` as `user`, through the real sudo.
fn sudo(user: &TestUser, args: &[&str]) -> Output {
    user.command("sudo").arg("-n").args(args).output().unwrap()
}

fn recordings(d: &Daemon) -> PathBuf {
    d.dir().join("recordings")
}

/// Root grants `user` exactly `/usr/bin/echo WORD`; returns the grant's id.
fn grant_echo(d: &Daemon, user: &TestUser, word: &str) -> String {
    ok(d.jitd(&[
        "grant",
        &user.name,
        "--reason",
        "INC-19",
        "--",
        "/usr/bin/echo",
        word,
    ]))
    .trim()
    .to_string()
}

fn replay_as_root(d: &Daemon, args: &[&str]) -> Output {
    let config = d.config_path();
    let mut all = vec!["replay", "--config", config.to_str().unwrap()];
    all.extend_from_slice(args);
    d.jitd(&all)
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                found.extend(files_under(&p));
            } else {
                found.push(p);
            }
        }
    }
    found
}

#[test]
fn a_recorded_grants_output_is_replayed_to_root_and_auditors_and_never_shown_to_its_holder() {
    let auditors = TestGroup::create("aud");
    let auditor = TestUser::create("aud");
    auditors.add(&auditor);
    let d = Daemon::start_enforcing(&format!("auditor_groups = [\"{}\"]", auditors.name));
    let op = TestUser::create("rec");
    let word = jit_tests::unique("printed-by-the-grant-");
    let id = grant_echo(&d, &op, &word);

    let run = sudo(&op, &["/usr/bin/echo", &word]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    assert_eq!(text(&run.stdout).trim(), word);
    let again = sudo(&op, &["/usr/bin/echo", &word]);
    assert!(again.status.success(), "{}", text(&again.stderr));

    // Two sessions in the grant's own directory, root's alone.
    let grant_dir = recordings(&d).join(&id);
    assert!(
        grant_dir.join("00/00/01/log").is_file(),
        "{:?}",
        files_under(&grant_dir)
    );
    assert!(grant_dir.join("00/00/02/log").is_file());
    use std::os::unix::fs::MetadataExt;
    let top = std::fs::metadata(recordings(&d)).unwrap();
    assert_eq!((top.uid(), top.mode() & 0o777), (0, 0o700));

    // Root replays every session, or the one asked for.
    let all = ok(replay_as_root(&d, &[&id]));
    assert_eq!(
        all.matches(&word).count(),
        4,
        "command line and output, twice: {all}"
    );
    assert!(all.contains("--- session 2 (000002) ---"), "{all}");
    let second = ok(replay_as_root(&d, &[&id, "--session", "2"]));
    assert!(
        second.contains(&word) && !second.contains("session 1"),
        "{second}"
    );
    let missing = replay_as_root(&d, &[&id, "--session", "3"]);
    assert!(!missing.status.success());
    assert!(
        text(&missing.stderr).contains("2 recorded session(s)"),
        "{}",
        text(&missing.stderr)
    );

    // The audit trail of the grant names its recordings.
    let config = d.config_path();
    let trail = ok(d.jitd(&["audit", "--config", config.to_str().unwrap(), "--id", &id]));
    assert!(
        trail.contains("recordings: 2 session(s)") && trail.contains(&format!("jitd replay {id}")),
        "{trail}"
    );

    // An auditor gets the output through the daemon.
    let seen = ok(d.jitd_as(&auditor, &["replay", &id, "--session", "1"]));
    assert!(seen.contains(&word), "{seen}");
    let trail = ok(d.jitd(&["audit", "--config", config.to_str().unwrap(), "--id", &id]));
    assert!(
        trail.contains(&format!(
            "{} replayed the recordings of grant {id} (session 1)",
            auditor.name
        )),
        "the auditor's look is on the trail: {trail}"
    );

    // The holder can neither read the files nor have them replayed.
    let files = files_under(&grant_dir);
    assert!(!files.is_empty());
    for f in files.iter().chain([&grant_dir, &recordings(&d)]) {
        let look = op.command("cat").arg(f).output().unwrap();
        assert!(
            !look.status.success(),
            "{} could read {}",
            op.name,
            f.display()
        );
    }
    let listing = op.command("ls").arg(recordings(&d)).output().unwrap();
    assert!(
        !listing.status.success(),
        "the holder listed the recordings"
    );
    let refused = d.jitd_as(&op, &["replay", &id]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains("auditor_groups"),
        "{}",
        text(&refused.stderr)
    );
    assert!(!text(&refused.stdout).contains(&word));
}

#[test]
fn a_grant_of_a_role_that_does_not_record_leaves_no_recording() {
    let d = Daemon::start_enforcing("record = \"off\"");
    let op = TestUser::create("norec");
    let word = jit_tests::unique("not-recorded-");
    let id = grant_echo(&d, &op, &word);
    let run = sudo(&op, &["/usr/bin/echo", &word]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    assert!(
        files_under(&recordings(&d)).is_empty(),
        "{:?}",
        files_under(&recordings(&d))
    );
    let none = replay_as_root(&d, &[&id]);
    assert_eq!(none.status.code(), Some(1));
    assert!(
        text(&none.stderr).contains("has no recordings"),
        "{}",
        text(&none.stderr)
    );
}

/// check-config says plainly that SSH grants of a recording role are not recorded when tlog
/// is not installed (the warning itself is unit-tested both ways in check_config.rs); with tlog
/// installed, as tests/run installs it, they are, and it says nothing; it never speaks of a role
/// that records nothing.
#[test]
fn check_config_warns_that_ssh_grants_of_recording_roles_are_not_recorded() {
    let dir = jit_tests::TempDir::new("reccfg");
    let config = dir.path().join("jitd.toml");
    let check = |roles: &str| {
        std::fs::write(&config, roles).unwrap();
        std::process::Command::new(jit_tests::bin("jitd"))
            .arg("check-config")
            .arg(&config)
            .output()
            .unwrap()
    };
    let recorded = check(
        "[[role]]\nname = \"shell\"\nssh = true\nrequester_users = [\"root\"]\nrecord = \"all\"\n",
    );
    assert!(recorded.status.success(), "{recorded:?}");
    let said = text(&recorded.stderr);
    if Path::new(TLOG).exists() {
        assert!(!said.contains("not recorded"), "{said}");
    } else {
        assert!(
            said.contains("SSH grants of recording roles are not recorded: tlog is not installed")
                && said.contains("shell (record = \"all\")"),
            "{said}"
        );
    }
    let off = check(
        "[[role]]\nname = \"shell\"\nssh = true\nrequester_users = [\"root\"]\nrecord = \"off\"\n",
    );
    assert!(off.status.success(), "{off:?}");
    assert!(
        !text(&off.stderr).contains("not recorded"),
        "{}",
        text(&off.stderr)
    );
    let typo = check(
        "[[role]]\nname = \"shell\"\nssh = true\nrequester_users = [\"root\"]\nrecord = \"input\"\n",
    );
    assert_eq!(typo.status.code(), Some(4));
    assert!(
        text(&typo.stderr).contains("\"output\", \"all\" or \"off\""),
        "{}",
        text(&typo.stderr)
    );
}

/// `record = "all"` is an explicit choice because it keeps what was typed: here the input a
/// command read is in the recording beside its output.
#[test]
fn a_role_that_records_all_keeps_what_was_typed_too() {
    let op = TestUser::create("typ");
    let d = Daemon::start_enforcing(&format!(
        "[[role]]\nname = \"typing\"\ncommands = [\"/usr/bin/cat\"]\nrequester_users = [\"{}\"]\nrecord = \"all\"\n",
        op.name
    ));
    let id = ok(d.jitd(&[
        "grant",
        &op.name,
        "--reason",
        "INC-19",
        "--",
        "/usr/bin/cat",
    ]))
    .trim()
    .to_string();
    let rule = std::fs::read_to_string(format!("/etc/sudoers.d/jit_{id}")).unwrap();
    assert!(
        rule.contains("NOPASSWD: LOG_INPUT: LOG_OUTPUT: JIT_"),
        "{rule}"
    );

    let typed = jit_tests::unique("typed-secret-");
    let mut child = op
        .command("sudo")
        .args(["-n", "/usr/bin/cat"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{typed}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));

    let input = std::process::Command::new("sudoreplay")
        .arg("-d")
        .arg(recordings(&d).join(&id))
        .args(["-m", "0", "-f", "stdin", "000001"])
        .output()
        .unwrap();
    assert!(
        text(&input.stdout).contains(&typed),
        "the input is recorded: {}{}",
        text(&input.stdout),
        text(&input.stderr)
    );
}

/// Recordings follow `retention`: once the grant's record leaves the history, they go too.
#[test]
fn recordings_leave_with_their_grants_record_after_retention() {
    let d = Daemon::start_enforcing("retention = \"2s\"");
    let op = TestUser::create("ret");
    let word = jit_tests::unique("kept-for-retention-");
    let id = grant_echo(&d, &op, &word);
    let run = sudo(&op, &["/usr/bin/echo", &word]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let grant_dir = recordings(&d).join(&id);
    assert!(grant_dir.join("00/00/01/log").is_file());
    ok(d.jitd(&["revoke", &id, "--reason", "done with it"]));

    d.wait_for_log(
        "removed the recordings of 1 grant(s)",
        std::time::Duration::from_secs(60),
    );
    assert!(!grant_dir.exists(), "{:?}", files_under(&grant_dir));
    assert!(recordings(&d).is_dir(), "the directory itself stays");
}

/// `user`'s login shell as /etc/passwd has it now.
fn login_shell(user: &TestUser) -> String {
    let out = std::process::Command::new("getent")
        .args(["passwd", &user.name])
        .output()
        .unwrap();
    let line = text(&out.stdout);
    line.trim().rsplit(':').next().unwrap().to_string()
}

fn ssh_recording(d: &Daemon, id: &str) -> PathBuf {
    d.dir().join("recordings-ssh").join(format!("{id}.tlog"))
}

fn assert_tlog_installed() {
    assert!(
        Path::new(TLOG).exists(),
        "{TLOG} is missing: apt-get install tlog (tests/run does)"
    );
}

#[test]
fn an_ssh_session_of_a_recording_grant_is_replayable_and_never_readable_by_its_holder() {
    assert_tlog_installed();
    let auditors = TestGroup::create("taud");
    let auditor = TestUser::create("taud");
    auditors.add(&auditor);
    let d = Daemon::start_with(&format!("auditor_groups = [\"{}\"]", auditors.name));
    let op = TestUser::create("tlg");
    let sshd = Sshd::start(&op, &d.socket(), None);
    let mark = jit_tests::unique("JIT-TLOG-MARK-");

    let id = grant(&d, &op.name, "2m", &["--ssh"]);
    assert_eq!(login_shell(&op), TLOG, "the grant's logins run under tlog");
    let run = sshd.ssh(&op, None, &["echo", &mark]).output().unwrap();
    assert!(run.status.success(), "{run:?}\n{}", sshd.log());
    assert_eq!(
        text(&run.stdout).trim(),
        mark,
        "the session's output is untouched"
    );

    // An interactive login: the login shell under tlog on a terminal. tlog registers the
    // terminal it makes in utmp (through libutempter's setgid helper) and gives up without
    // /run/utmp, which every Debian host has (systemd-update-utmp) but a container may not.
    if !Path::new("/run/utmp").exists() {
        let made = std::process::Command::new("install")
            .args([
                "-m",
                "0664",
                "-o",
                "root",
                "-g",
                "utmp",
                "/dev/null",
                "/run/utmp",
            ])
            .status()
            .unwrap();
        assert!(made.success());
    }
    // The shell computes the second mark, so what was typed (echoed back) is not it.
    let (mut client, master) = sshd.ssh_on_pty(&op, &["-tt"], &[]);
    let within = std::time::Duration::from_secs(20);
    let mut seen = String::new();
    let told = jit_tests::pty::read_until(&master, &mut seen, "recorded by jit (tlog)", within);
    assert!(told, "the holder is told: {seen}\n{}", sshd.log());
    // Typed once the recorded shell prompts (what comes before it is not the shell's).
    let mut prompt = String::new();
    assert!(
        jit_tests::pty::read_until(&master, &mut prompt, "$ ", within),
        "{seen}{prompt}"
    );
    jit_tests::pty::type_text(&master, "echo INTERACTIVE-$((6*7))-MARK; exit\n");
    let shown = jit_tests::pty::read_until(&master, &mut seen, "INTERACTIVE-42-MARK", within);
    assert!(shown, "{seen}\n{}", sshd.log());
    assert!(client.wait().unwrap().success(), "{seen}");

    // Root reads them back (not on a terminal: the output as printed).
    let all = ok(replay_as_root(&d, &[&id]));
    assert!(all.contains("--- session 1 (tlog "), "{all}");
    assert!(all.contains("--- session 2 (tlog "), "{all}");
    assert!(all.contains(&mark), "{all}");
    assert!(all.contains("INTERACTIVE-42-MARK"), "{all}");
    let first = ok(replay_as_root(&d, &[&id, "--session", "1"]));
    assert!(
        first.contains(&mark) && !first.contains("INTERACTIVE"),
        "{first}"
    );
    let config = d.config_path();
    let trail = ok(d.jitd(&["audit", "--config", config.to_str().unwrap(), "--id", &id]));
    assert!(trail.contains("recordings: 2 SSH session(s)"), "{trail}");
    // record = "output": nothing typed is kept (a password typed without echo would be).
    let messages = std::fs::read_to_string(ssh_recording(&d, &id)).unwrap();
    for line in messages.lines() {
        let m: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(m["in_txt"], "", "{line}");
    }
    // On root's terminal, tlog-play plays it with its timing.
    let term = jit_tests::pty::Terminal::open(80, 24);
    let mut played = std::process::Command::new(jit_tests::bin("jitd"))
        .args(["replay", "--config", config.to_str().unwrap(), &id])
        .args(["--session", "1"])
        .stdin(term.stdio())
        .stdout(term.stdio())
        .stderr(term.stdio())
        .spawn()
        .unwrap();
    let shown = term.read(within, &mark);
    assert!(shown.contains(&mark), "{shown}");
    assert!(played.wait().unwrap().success(), "{shown}");
    // An auditor, through the daemon.
    let seen = ok(d.jitd_as(&auditor, &["replay", &id]));
    assert!(seen.contains(&mark), "{seen}");

    // The holder can append to the file (tlog runs as them) but never read it, nor list
    // the directory, nor have it replayed.
    let file = ssh_recording(&d, &id);
    let look = op.command("cat").arg(&file).output().unwrap();
    assert!(
        !look.status.success(),
        "{} read {}",
        op.name,
        file.display()
    );
    let listing = op
        .command("ls")
        .arg(file.parent().unwrap())
        .output()
        .unwrap();
    assert!(
        !listing.status.success(),
        "the holder listed the SSH recordings"
    );
    let refused = d.jitd_as(&op, &["replay", &id]);
    assert!(!refused.status.success());
    assert!(!text(&refused.stdout).contains(&mark));

    // The grant's end puts the login shell back.
    revoke(&d, &id);
    assert_eq!(login_shell(&op), "/bin/sh");
}

#[test]
fn an_ssh_grant_of_a_role_that_does_not_record_leaves_the_login_shell_alone() {
    assert_tlog_installed();
    let d = Daemon::start_with("record = \"off\"");
    let op = TestUser::create("tlo");
    let sshd = Sshd::start(&op, &d.socket(), None);
    let id = grant(&d, &op.name, "2m", &["--ssh"]);
    assert_eq!(login_shell(&op), "/bin/sh");
    let run = sshd
        .ssh(&op, None, &["echo", "unrecorded"])
        .output()
        .unwrap();
    assert!(run.status.success(), "{run:?}\n{}", sshd.log());
    assert!(!ssh_recording(&d, &id).exists());
    let none = replay_as_root(&d, &[&id]);
    assert!(!none.status.success());
    assert!(
        text(&none.stderr).contains("has no recordings"),
        "{}",
        text(&none.stderr)
    );
}

/// A jitd killed after switching the login shell and before storing the grant, or after
/// storing a revocation and before putting the shell back, puts it back when it starts again.
#[test]
fn a_login_shell_switched_by_a_jitd_that_crashed_is_put_back_when_it_starts_again() {
    assert_tlog_installed();
    let op = TestUser::create("tlc");
    // Switched, then killed before the grant was stored: the grant never existed.
    let mut d = Daemon::start_with_env("", &[("JITD_FAILPOINT", "create_after_install")]);
    let out = d.jitd(&["grant", &op.name, "--for", "2m", "--reason", "x", "--ssh"]);
    assert!(!out.status.success(), "no answer from a crashed jitd");
    d.wait_for_exit(std::time::Duration::from_secs(10));
    assert_eq!(login_shell(&op), TLOG, "switched before the crash");
    d.restart_with_env(&[]);
    assert!(d.request_ids().is_empty());
    assert_eq!(login_shell(&op), "/bin/sh");

    // Revoked and stored, then killed before the shell went back.
    d.restart_with_env(&[("JITD_FAILPOINT", "transition_after_persist")]);
    let id = grant(&d, &op.name, "2m", &["--ssh"]);
    assert_eq!(login_shell(&op), TLOG);
    let out = d.jitd(&["revoke", &id, "--reason", "enough"]);
    assert!(!out.status.success(), "no answer from a crashed jitd");
    d.wait_for_exit(std::time::Duration::from_secs(10));
    assert_eq!(login_shell(&op), TLOG, "still switched after the crash");
    d.restart_with_env(&[]);
    assert_eq!(d.state_of(&id), "revoked");
    assert_eq!(login_shell(&op), "/bin/sh");
}

/// Two recorded SSH grants of one user share the switch: the shell goes back with the last.
/// A shell someone changed back meanwhile fails the recorded session closed (it would run
/// unrecorded), and is left as they set it when the grants end.
#[test]
fn a_recorded_ssh_login_does_not_run_once_its_login_shell_was_changed_back() {
    assert_tlog_installed();
    let d = Daemon::start();
    let op = TestUser::create("tlm");
    let sshd = Sshd::start(&op, &d.socket(), None);

    let first = grant(&d, &op.name, "2m", &["--ssh"]);
    let second = grant(&d, &op.name, "2m", &["--ssh"]);
    assert_eq!(login_shell(&op), TLOG);
    revoke(&d, &first);
    assert_eq!(login_shell(&op), TLOG, "the second grant still records");

    let changed = std::process::Command::new("usermod")
        .args(["-s", "/bin/bash", &op.name])
        .status()
        .unwrap();
    assert!(changed.success());
    let run = sshd
        .ssh(&op, None, &["echo", "unrecorded"])
        .output()
        .unwrap();
    assert!(!run.status.success(), "{run:?}");
    assert!(!text(&run.stdout).contains("unrecorded"));
    let config = d.config_path();
    let trail = ok(d.jitd(&[
        "audit",
        "--config",
        config.to_str().unwrap(),
        "--id",
        &second,
    ]));
    assert!(
        trail.contains("it cannot be recorded") && trail.contains("/bin/bash"),
        "{trail}"
    );

    revoke(&d, &second);
    assert_eq!(login_shell(&op), "/bin/bash", "theirs, not put back over");
}

#[test]
fn an_ssh_recording_leaves_with_its_grants_record_after_retention() {
    assert_tlog_installed();
    let d = Daemon::start_with("retention = \"2s\"");
    let op = TestUser::create("tlr");
    let sshd = Sshd::start(&op, &d.socket(), None);
    let id = grant(&d, &op.name, "2m", &["--ssh"]);
    let run = sshd.ssh(&op, None, &["echo", "kept"]).output().unwrap();
    assert!(run.status.success(), "{run:?}\n{}", sshd.log());
    assert!(ssh_recording(&d, &id).is_file());
    revoke(&d, &id);

    d.wait_for_log(
        "removed the recordings of 1 grant(s)",
        std::time::Duration::from_secs(60),
    );
    assert!(!ssh_recording(&d, &id).exists());
}
