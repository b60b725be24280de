//! Stories for ending a grant's sessions, with real users, real processes, the real cgroup2
//! hierarchy of this host and a real pty.

use super::*;
use crate::shell::testing::{unique_id, TestUser};
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};

/// What a user might do inside a grant to leave something running: background jobs, a new
/// session, nohup, a double fork, and one job that ignores SIGTERM when `stubborn`.
fn detaching_script(stubborn: bool) -> String {
    let stubborn = if stubborn {
        "(trap '' TERM; exec sleep 1000) &\n"
    } else {
        ""
    };
    format!(
        "sleep 1000 &\n\
         setsid sleep 1000 &\n\
         nohup sleep 1000 >/dev/null 2>&1 &\n\
         (sleep 1000 &)\n\
         {stubborn}\
         echo ready\n\
         exec sleep 1000\n"
    )
}

/// Live (not zombie: a zombie has ended and only awaits its parent) processes whose real uid
/// is `uid`.
fn processes_of(uid: u32) -> Vec<u32> {
    let want = uid.to_string();
    fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            fs::read_to_string(format!("/proc/{pid}/status"))
                .ok()
                .and_then(|s| {
                    let zombie = s.lines().any(|l| l.starts_with("State:\tZ"));
                    s.lines()
                        .find_map(|l| l.strip_prefix("Uid:"))
                        .map(|u| !zombie && u.split_whitespace().next() == Some(want.as_str()))
                })
                .unwrap_or(false)
        })
        .collect()
}

/// A session started as `user` by a root-owned shell line of ours (`prefix`), which waits for
/// "go" on stdin and then `exec`s runuser: like sudo and sshd, which call pam_jit's session
/// hook (and so jitd's adopt) before they fork anything, it starts nothing until adopted.
struct Session {
    child: Child,
    user_uid: u32,
    /// When it was let go (as PAM registers a session before it starts anything).
    registered_ticks: u64,
}

impl Session {
    fn start(user: &TestUser, prefix: &str, stubborn: bool) -> Session {
        let line = format!(
            "{prefix}read go && exec runuser -u {} -- /bin/sh -c \"$0\"",
            user.name
        );
        let child = Command::new("/bin/sh")
            .args(["-c", &line, &detaching_script(stubborn)])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start session");
        Session {
            child,
            user_uid: user.uid,
            registered_ticks: u64::MAX,
        }
    }

    /// Lets the script start its processes and waits until it has.
    fn go(&mut self) {
        self.registered_ticks = boot::ticks_now();
        writeln!(self.child.stdin.as_mut().unwrap(), "go").unwrap();
        let mut line = String::new();
        BufReader::new(self.child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line, "ready\n");
        std::thread::sleep(Duration::from_millis(200));
    }

    fn session_ref(&self, adopted: bool) -> SessionRef {
        let pid = self.child.id();
        SessionRef {
            pid,
            start_ticks: start_ticks(pid),
            audit_session: fs::read_to_string(format!("/proc/{pid}/sessionid"))
                .ok()
                .and_then(|s| s.trim().parse().ok()),
            since_ticks: Some(self.registered_ticks),
            tty: None,
            adopted,
            elevated_only: false,
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        for pid in processes_of(self.user_uid) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A cgroup directory of its own under the cgroup2 mount, so tests never meet jitd's real
/// `jit/` leaves; anything left in it is killed and it is removed on drop.
struct TestCgroups(Sessions);

impl TestCgroups {
    fn new() -> TestCgroups {
        let sessions = Sessions::detect_with_base(&unique_id("jittest"));
        assert!(sessions.cgroups().is_some(), "this host mounts cgroup2");
        TestCgroups(sessions)
    }
}

impl Drop for TestCgroups {
    fn drop(&mut self) {
        if let Some(cg) = self.0.cgroups() {
            for id in cg.ids().unwrap_or_default() {
                let id = GrantFileId::parse(&id).unwrap();
                let _ = cg.kill_all(&id);
                std::thread::sleep(Duration::from_millis(100));
                let _ = cg.remove(&id);
            }
            let _ = fs::remove_dir(cg.base());
        }
    }
}

#[test]
fn ending_a_grant_ends_detached_processes_and_sigkills_one_that_ignores_sigterm() {
    let user = TestUser::create(&unique_id("jte"));
    let cgroups = TestCgroups::new();
    let sessions = &cgroups.0;
    let grant = "g1";
    let mut session = Session::start(&user, "", true);
    sessions.adopt(grant, session.child.id()).expect("adopt");
    session.go();
    let before = processes_of(user.uid);
    assert!(before.len() >= 6, "six sleeps, got {before:?}");

    let grace = Duration::from_secs(1);
    let started = Instant::now();
    let report = sessions.end_grant(grant, &[session.session_ref(true)], grace);
    let took = started.elapsed();

    assert!(report.complete(), "{report:?}");
    assert!(
        report.killed,
        "the TERM-ignoring sleep needed SIGKILL: {report:?}"
    );
    assert!(report.terminated >= before.len(), "{report:?}");
    assert!(
        took >= grace,
        "SIGKILL came only after the grace period ({took:?})"
    );
    // Then it ends: an upper bound with room for a loaded machine (this process runs other
    // tests), which still fails an end that waits for anything but the grace period.
    assert!(took < grace + Duration::from_secs(10), "took {took:?}");
    let left = processes_of(user.uid);
    let status: Vec<String> = left
        .iter()
        .map(|p| fs::read_to_string(format!("/proc/{p}/status")).unwrap_or_default())
        .collect();
    assert_eq!(left, Vec::<u32>::new(), "{report:?} {status:?}");
    assert_eq!(sessions.grant_cgroups().unwrap(), Vec::<String>::new());
    assert!(session.child.wait().is_ok());
}

#[test]
fn a_grants_second_session_joins_the_leaf_its_first_made_and_both_end_with_it() {
    let user = TestUser::create(&unique_id("jte"));
    let cgroups = TestCgroups::new();
    let sessions = &cgroups.0;
    let grant = "g3";
    let mut first = Session::start(&user, "", false);
    sessions
        .adopt(grant, first.child.id())
        .expect("adopt the first");
    first.go();
    let mut second = Session::start(&user, "", false);
    sessions
        .adopt(grant, second.child.id())
        .expect("adopt the second");
    second.go();
    let cg = sessions.cgroups().unwrap();
    let id = GrantFileId::parse(grant).unwrap();
    for pid in [first.child.id(), second.child.id()] {
        assert!(cg.contains(&id, pid), "{pid} is in the grant's leaf");
    }
    assert_eq!(sessions.grant_cgroups().unwrap(), vec![grant.to_string()]);

    let refs = [first.session_ref(true), second.session_ref(true)];
    let report = sessions.end_grant(grant, &refs, Duration::from_secs(10));
    assert!(report.complete(), "{report:?}");
    assert_eq!(processes_of(user.uid), Vec::<u32>::new(), "{report:?}");
    assert_eq!(sessions.grant_cgroups().unwrap(), Vec::<String>::new());
    assert!(first.child.wait().is_ok() && second.child.wait().is_ok());
}

#[test]
fn processes_that_honour_sigterm_end_without_waiting_for_the_grace_period() {
    let user = TestUser::create(&unique_id("jte"));
    let cgroups = TestCgroups::new();
    let sessions = &cgroups.0;
    let mut session = Session::start(&user, "", false);
    sessions.adopt("g2", session.child.id()).expect("adopt");
    session.go();
    assert_eq!(sessions.grant_cgroups().unwrap(), vec!["g2".to_string()]);

    let grace = Duration::from_secs(10);
    let started = Instant::now();
    let report = sessions.end_grant("g2", &[session.session_ref(true)], grace);
    assert!(report.complete(), "{report:?}");
    assert!(!report.killed, "{report:?}");
    // Waiting out the grace period would take all of it: the bound is the grace itself, not a
    // guess at how fast a loaded machine is.
    assert!(started.elapsed() < grace, "{:?}", started.elapsed());
    assert_eq!(processes_of(user.uid), Vec::<u32>::new());
}

#[test]
fn without_a_cgroup_the_audit_session_still_finds_double_forked_processes() {
    let user = TestUser::create(&unique_id("jte"));
    let sessions = Sessions::without_cgroups();
    // What pam_loginuid does at an SSH login: a new loginuid starts a new audit session.
    let mut session = Session::start(
        &user,
        &format!("echo {} > /proc/self/loginuid && ", user.uid),
        true,
    );
    session.go();
    let session_ref = session.session_ref(false);
    let sid = session_ref.audit_session.expect("an audit session was set");
    assert_ne!(sid, process_scan::AUDIT_SESSION_UNSET);

    let report = sessions.end_grant("g3", &[session_ref], Duration::from_secs(1));
    assert!(report.complete(), "{report:?}");
    assert!(report.killed, "{report:?}");
    assert_eq!(processes_of(user.uid), Vec::<u32>::new());
}

#[test]
fn ending_a_grant_with_nothing_left_is_quick_and_complete() {
    let cgroups = TestCgroups::new();
    let gone = SessionRef {
        pid: u32::MAX - 1,
        start_ticks: Some(1),
        audit_session: None,
        since_ticks: None,
        tty: None,
        adopted: false,
        elevated_only: false,
    };
    let report = cgroups.0.end_grant("g4", &[gone], Duration::from_secs(5));
    assert_eq!(report, EndReport::default());
    assert!(matches!(
        cgroups.0.adopt("../x", 1),
        Err(SessionError::BadGrantId(_))
    ));
}

use jit_tests::pty::open_pty;

#[test]
fn the_expiry_warning_reaches_the_sessions_terminal_once() {
    // The slave stays open for the whole test, like a logged-in user's shell holds it.
    let (master, _slave, device) = open_pty();
    let short = device.trim_start_matches("/dev/").to_owned();
    let tty_session = |tty: &str| SessionRef {
        pid: 1,
        start_ticks: None,
        audit_session: None,
        since_ticks: None,
        tty: Some(tty.to_owned()),
        adopted: false,
        elevated_only: false,
    };
    let report = warn(
        &[
            tty_session(&short),
            tty_session(&device),
            tty_session("ssh"),
        ],
        0,
        "grant abc ends in 5m\x1b[2J",
    );
    assert_eq!(report.written, 1, "{report:?}");
    assert!(report.failed.is_empty(), "{report:?}");

    let mut buf = [0u8; 256];
    let mut master = fs::File::from(master);
    let n = master.read(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.contains("[jit] grant abc ends in 5m?[2J"), "{text:?}");
}

#[test]
fn only_terminal_devices_are_ever_opened_for_warnings() {
    for bad in [
        "ssh",
        ":0",
        "/etc/passwd",
        "pts/../../etc/passwd",
        "tty/../x",
        "pts/",
        "tty",
    ] {
        assert_eq!(terminal::tty_device(bad), None, "{bad}");
    }
    assert_eq!(
        terminal::tty_device("pts/3"),
        Some(std::path::PathBuf::from("/dev/pts/3"))
    );
    assert_eq!(
        terminal::tty_device("/dev/tty1"),
        Some(std::path::PathBuf::from("/dev/tty1"))
    );
}

#[test]
fn the_fallbacks_never_end_a_process_that_belongs_to_another_grants_cgroup() {
    let user = TestUser::create(&unique_id("jte"));
    let cgroups = TestCgroups::new();
    let sessions = &cgroups.0;
    // Grant a's session could not be adopted; one of its children was since adopted by grant b
    // (as when the user opens grant b's session from inside grant a's).
    let mut a = Command::new("/bin/sh")
        .args([
            "-c",
            &format!(
                "exec runuser -u {} -- /bin/sh -c 'sleep 1000 & echo $!; exec sleep 1000'",
                user.name
            ),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(a.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let b_pid: u32 = line.trim().parse().unwrap();
    sessions.adopt("b1", b_pid).expect("adopt into b");
    let a_ref = SessionRef {
        pid: a.id(),
        start_ticks: start_ticks(a.id()),
        audit_session: None,
        since_ticks: None,
        tty: None,
        adopted: false,
        elevated_only: false,
    };

    let report = sessions.end_grant("a1", &[a_ref], Duration::from_secs(1));
    assert!(report.complete(), "{report:?}");
    let _ = a.wait();
    assert_eq!(
        processes_of(user.uid),
        vec![b_pid],
        "only grant b's process is left"
    );

    let report = sessions.end_grant("b1", &[], Duration::from_secs(1));
    assert!(report.complete(), "{report:?}");
    assert_eq!(processes_of(user.uid), Vec::<u32>::new());
}

/// Whether `pid` is alive and still the process that started at `ticks`.
fn still_running(pid: u32, ticks: u64) -> bool {
    pidfd::proc_stat(pid).is_some_and(|s| s.start_ticks == ticks)
        && !fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
}

#[test]
fn the_audit_session_fallback_spares_members_that_started_before_the_session_registered() {
    let user = TestUser::create(&unique_id("jte"));
    let sessions = Sessions::without_cgroups();
    // A login (a new audit session, as pam_loginuid makes it) in which a root process was
    // started long before any grant; then a session of the grant opens in it and detaches.
    let mut login = Command::new("/bin/sh")
        .args([
            "-c",
            &format!(
                "echo {} > /proc/self/loginuid || exit 1\n\
                 setsid sleep 1000 </dev/null >/dev/null 2>&1 &\n\
                 echo $!\n\
                 read go && exec runuser -u {} -- /bin/sh -c \"$0\"",
                user.uid, user.name
            ),
            &detaching_script(false),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(login.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let older: u32 = line.trim().parse().unwrap();
    let older_ticks = start_ticks(older).unwrap();
    struct Reap(u32);
    impl Drop for Reap {
        fn drop(&mut self) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.0 as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    let _reap = Reap(older);
    let login_pid = login.id();
    let audit_session: u32 = fs::read_to_string(format!("/proc/{login_pid}/sessionid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(
        fs::read_to_string(format!("/proc/{older}/sessionid")).unwrap(),
        audit_session.to_string()
    );
    // The session registers later (start times count in clock ticks: at least one later),
    // then starts its processes.
    while boot::ticks_now() <= older_ticks {
        std::thread::sleep(Duration::from_millis(5));
    }
    let registered = boot::ticks_now();
    writeln!(login.stdin.as_mut().unwrap(), "go").unwrap();
    line.clear();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    assert!(processes_of(user.uid).len() >= 5);

    let session = SessionRef {
        pid: login_pid,
        // As after a restart that lost the pid's start time: only the audit session finds
        // the detached processes.
        start_ticks: None,
        audit_session: Some(audit_session),
        since_ticks: Some(registered),
        tty: None,
        adopted: false,
        elevated_only: false,
    };
    let report = sessions.end_grant("g5", &[session], Duration::from_secs(1));
    assert!(report.complete(), "{report:?}");
    let _ = login.wait();
    assert_eq!(processes_of(user.uid), Vec::<u32>::new());
    assert!(
        still_running(older, older_ticks),
        "a member of the audit session older than the session was ended: {report:?}"
    );
}

#[test]
fn a_recorded_pid_whose_start_time_differs_is_left_alone() {
    let mut other = Command::new("sleep").arg("1000").spawn().unwrap();
    let pid = other.id();
    let ticks = start_ticks(pid).unwrap();
    // The record names this pid with another start time: the session's process is gone and
    // the number was reused.
    let reused = SessionRef {
        pid,
        start_ticks: Some(ticks + 1),
        audit_session: None,
        since_ticks: None,
        tty: None,
        adopted: false,
        elevated_only: false,
    };
    let report = Sessions::without_cgroups().end_grant("g6", &[reused], Duration::from_secs(1));
    let survived = still_running(pid, ticks);
    let _ = other.kill();
    let _ = other.wait();
    assert_eq!(report, EndReport::default());
    assert!(survived, "a process with a reused pid was ended");
}

fn recorded(process: Option<SessionProcess>, opened_at: &str) -> crate::core::model::Session {
    crate::core::model::Session {
        pid: 4242,
        service: "sshd".into(),
        user: "alice".into(),
        ruser: None,
        tty: Some("pts/3".into()),
        rhost: None,
        audit_session: Some(7),
        opened_at: opened_at.parse().unwrap(),
        process,
    }
}

fn this_boot() -> Boot {
    Boot {
        id: Some("this-boot".into()),
        now_ticks: 100 * 3600,
        now: "2026-11-29T10:00:00Z".parse().unwrap(),
        ticks_per_second: 100,
    }
}

#[test]
fn a_session_recorded_in_this_boot_is_found_by_what_was_recorded() {
    let facts = SessionProcess {
        boot_id: "this-boot".into(),
        start_ticks: Some(1234),
        registered_ticks: 1300,
        adopted: true,
    };
    let r = session_ref(
        &recorded(Some(facts), "2026-11-29T09:00:00Z"),
        true,
        &this_boot(),
    );
    assert_eq!(
        r,
        SessionRef {
            pid: 4242,
            start_ticks: Some(1234),
            audit_session: Some(7),
            since_ticks: Some(1300),
            tty: Some("pts/3".into()),
            adopted: true,
            elevated_only: true,
        }
    );
}

#[test]
fn a_session_recorded_before_a_reboot_names_no_process_and_no_audit_session() {
    let facts = SessionProcess {
        boot_id: "previous-boot".into(),
        start_ticks: Some(1234),
        registered_ticks: 1300,
        adopted: false,
    };
    let r = session_ref(
        &recorded(Some(facts), "2026-11-29T09:59:00Z"),
        false,
        &this_boot(),
    );
    assert_eq!(
        (r.start_ticks, r.audit_session, r.since_ticks),
        (None, None, None)
    );
    // The same without facts (a record older than them), opened before this boot.
    let r = session_ref(&recorded(None, "2026-11-29T08:00:00Z"), false, &this_boot());
    assert_eq!(
        (r.start_ticks, r.audit_session, r.since_ticks),
        (None, None, None)
    );
}

#[test]
fn a_record_older_than_process_facts_is_bounded_by_when_it_opened() {
    let r = session_ref(&recorded(None, "2026-11-29T09:30:00Z"), false, &this_boot());
    assert_eq!(r.start_ticks, None, "no start time: no process tree");
    assert_eq!(r.audit_session, Some(7));
    assert_eq!(r.since_ticks, Some(100 * 1800), "half an hour after boot");
    assert!(!r.adopted);
}

/// A waiting login's process is followed by pid, start time and boot: running while it runs,
/// not once it has exited (before and after it is reaped), never under another boot's id.
#[test]
fn a_recorded_process_runs_until_it_exits_and_only_in_its_boot() {
    let mut child = Command::new("sleep").arg("1000").spawn().unwrap();
    let pid = child.id();
    let ticks = start_ticks(pid).unwrap();
    let boot = boot::boot_id().unwrap();
    assert!(super::still_running(pid, ticks, &boot));
    assert!(!super::still_running(pid, ticks + 1, &boot));
    assert!(!super::still_running(pid, ticks, "another-boot"));
    child.kill().unwrap();
    // Killed but not reaped: a zombie is not running.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while super::still_running(pid, ticks, &boot) {
        assert!(std::time::Instant::now() < deadline, "pid {pid} still runs");
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait().unwrap();
    assert!(!super::still_running(pid, ticks, &boot));
}
