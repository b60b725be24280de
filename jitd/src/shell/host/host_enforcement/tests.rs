//! The whole life of a sudo grant on this host through the daemon's port: installed, used
//! (with processes that detach), withdrawn; then nothing of it is left.

use super::*;
use crate::core::model::{GrantId, Phase, Window};
use crate::shell::host::drop_ins_and_cgroups::Enforcer;
use crate::shell::host::sessions::Sessions;
use crate::shell::host::sudoers::SudoersDir;
use crate::shell::host::user_jobs::{Spools, UserManager};
use crate::shell::testing::{run_as, unique_id, TempDir, TestUser};
use chrono::{Duration as ChronoDuration, Utc};
use jit_proto::Target;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn active_request(user: &TestUser, target: Target) -> Request {
    let now = Utc::now();
    Request {
        id: GrantId::random().unwrap(),
        uid: user.uid,
        user: user.name.as_str().into(),
        target,
        duration_secs: 600,
        reason: "test".into(),
        ticket: None,
        role: None,
        approvals_required: 1,
        approver_groups: Box::default(),
        record: crate::core::recording::Record::Off,
        requested_at: now,
        phase: Phase::Active {
            window: Window {
                approved_at: now,
                expires_at: now + ChronoDuration::minutes(10),
            },
            extension: None,
        },
        decisions: vec![],
        sessions: vec![],
        failure: None,
        break_glass: None,
        jobs_at_start: None,
        login: None,
        fleet: None,
        audit_seq: 0,
    }
}

fn session(pid: u32) -> Session {
    Session {
        pid,
        service: "sudo".into(),
        user: "x".into(),
        ruser: None,
        tty: None,
        rhost: None,
        audit_session: None,
        opened_at: Utc::now(),
        process: None,
    }
}

/// Whether `pid` is alive (a zombie has ended).
fn alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z "))
        .unwrap_or(false)
}

struct Host {
    /// Reconciling /etc/sudoers.d removes other tests' drop-ins: one such test at a time.
    _exclusive: fs::File,
    enforcement: HostEnforcement,
    events: Arc<Mutex<Vec<Event>>>,
    cgroup_base: String,
}

impl Host {
    fn new() -> Host {
        Host::with_grace(Duration::from_secs(1))
    }

    fn with_grace(kill_grace: Duration) -> Host {
        let exclusive = jit_tests::lock_real_sudoers();
        let cgroup_base = unique_id("jittest");
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&events);
        let enforcement = HostEnforcement::new(
            Enforcer {
                sudoers: SudoersDir::new("/etc/sudoers.d".into()),
                sessions: Sessions::detect_with_base(&cgroup_base),
                kill_grace,
            },
            Arc::new(move |e| lock(&sink).push(e)),
        );
        Host {
            _exclusive: exclusive,
            enforcement,
            events,
            cgroup_base,
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Some(mount) = crate::shell::host::cgroup::cgroup2_mount() {
            let base = mount.join(&self.cgroup_base);
            if let Ok(entries) = fs::read_dir(&base) {
                for e in entries.flatten() {
                    let _ = fs::write(e.path().join("cgroup.kill"), "1");
                    std::thread::sleep(Duration::from_millis(100));
                    let _ = fs::remove_dir(e.path());
                }
            }
            let _ = fs::remove_dir(base);
        }
    }
}

#[test]
fn after_withdrawal_sudo_fails_the_drop_in_is_gone_and_detached_processes_have_ended() {
    let user = TestUser::create(&unique_id("jte"));
    // A grace period long enough that waiting it out cannot be mistaken for a loaded machine.
    let grace = Duration::from_secs(5);
    let host = Host::with_grace(grace);
    let scratch = TempDir::new("grant");
    fs::set_permissions(scratch.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let pids = scratch.path().join("pids");
    let script = scratch.path().join("work.sh");
    fs::write(
        &script,
        format!(
            "sleep 1000 & echo $! >> {p}\n\
             setsid sleep 1000 & echo $! >> {p}\n\
             nohup sleep 1000 >/dev/null 2>&1 & echo $! >> {p}\n\
             (sleep 1000 & echo $! >> {p})\n\
             echo ready\n\
             exec sleep 1000\n",
            p = pids.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    let script = script.to_string_lossy().into_owned();

    let mut grant = active_request(
        &user,
        Target::Sudo {
            command: vec!["/bin/sh".into(), script.clone()],
        },
    );
    host.enforcement.install(&grant).expect("install");
    let drop_in = format!("/etc/sudoers.d/jit_{}", grant.id.as_str());
    assert!(fs::metadata(&drop_in).is_ok());

    // The user runs the granted command; like pam_jit, the test has it adopted before sudo
    // starts anything.
    let mut sudo = Command::new("/bin/sh")
        .args([
            "-c",
            &format!(
                "read go && exec runuser -u {} -- sudo -n /bin/sh {script}",
                user.name
            ),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut s = session(sudo.id());
    host.enforcement
        .adopt_session(&grant, &mut s)
        .expect("adopt");
    grant.sessions.push(s);
    writeln!(sudo.stdin.as_mut().unwrap(), "go").unwrap();
    let mut line = String::new();
    BufReader::new(sudo.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(
        line.trim_end(),
        "ready",
        "the granted command ran through sudo"
    );
    let started: Vec<u32> = fs::read_to_string(&pids)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(started.len(), 4);
    assert!(started.iter().all(|&p| alive(p)));

    let withdrawn_at = Instant::now();
    host.enforcement.withdraw(&grant, Withdrawal::default());
    assert!(
        withdrawn_at.elapsed() < grace,
        "withdraw must not wait out the grace period"
    );
    assert!(fs::metadata(&drop_in).is_err(), "the drop-in is gone");
    let (ok, _, _) = run_as(&user.name, &["sudo", "-n", "/bin/sh", &script]);
    assert!(!ok, "sudo must refuse after withdrawal");

    // They honour SIGTERM: gone well before the grace period ends (a deadline with room for
    // a loaded machine, not a measure of speed).
    let deadline = withdrawn_at + grace + Duration::from_secs(5);
    while Instant::now() < deadline && (started.iter().any(|&p| alive(p)) || alive(sudo.id())) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        started.iter().all(|&p| !alive(p)),
        "every process the grant started is gone"
    );
    let _ = sudo.wait();
    // The worker reports what it did.
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && lock(&host.events).is_empty() {
        std::thread::sleep(Duration::from_millis(50));
    }
    let events = lock(&host.events);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].kind(), EventKind::SessionEnded, "{events:?}");
}

#[test]
fn a_reconcile_from_an_older_snapshot_neither_removes_a_new_grant_nor_restores_a_withdrawn_one() {
    let user = TestUser::create(&unique_id("jte"));
    let host = Host::new();
    let fresh = active_request(
        &user,
        Target::Sudo {
            command: vec!["/usr/bin/id".into()],
        },
    );
    let revoked = active_request(
        &user,
        Target::Sudo {
            command: vec!["/usr/bin/whoami".into()],
        },
    );
    host.enforcement.install(&revoked).unwrap();
    // Snapshot taken: `revoked` active, `fresh` not yet.
    let snapshot = [&revoked];
    host.enforcement.install(&fresh).unwrap();
    host.enforcement.withdraw(&revoked, Withdrawal::default());

    let lines = host.enforcement.reconcile(&snapshot, &[]);
    let fresh_file = format!("/etc/sudoers.d/jit_{}", fresh.id.as_str());
    let revoked_file = format!("/etc/sudoers.d/jit_{}", revoked.id.as_str());
    let fresh_exists = fs::metadata(&fresh_file).is_ok();
    let revoked_exists = fs::metadata(&revoked_file).is_ok();
    host.enforcement.withdraw(&fresh, Withdrawal::default());
    assert!(fresh_exists, "{lines:?}");
    assert!(!revoked_exists, "{lines:?}");
}

/// A port with no sudoers directory of the machine's and no cgroups.
fn scratch_host() -> (HostEnforcement, Arc<Mutex<Vec<Event>>>, TempDir) {
    let scratch = TempDir::new("warn");
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&events);
    let host = HostEnforcement::new(
        Enforcer {
            sudoers: SudoersDir::new(scratch.path().join("sudoers.d")),
            sessions: Sessions::without_cgroups(),
            kill_grace: Duration::from_secs(1),
        },
        Arc::new(move |e| lock(&sink).push(e)),
    );
    lock(&events).clear();
    (host, events, scratch)
}

/// Everything readable on the pty's master side until `until` appears or 5 s pass.
fn read_until(master: &mut fs::File, until: &str) -> String {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains(until) {
        assert!(
            Instant::now() < deadline,
            "{until:?} did not reach the terminal within 5 s; it got {:?}",
            String::from_utf8_lossy(&seen)
        );
        let mut pfd = libc::pollfd {
            fd: master.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, count 1.
        if unsafe { libc::poll(&mut pfd, 1, 50) } > 0 {
            let mut buf = [0u8; 1024];
            let n = master.read(&mut buf).unwrap();
            seen.extend_from_slice(&buf[..n]);
        }
    }
    String::from_utf8_lossy(&seen).into_owned()
}

#[test]
fn the_expiry_warning_goes_only_to_a_terminal_the_holder_still_owns() {
    let holder = TestUser::create(&unique_id("jtw"));
    let next = TestUser::create(&unique_id("jtw"));
    let (host, events, _scratch) = scratch_host();
    // The slave stays open, as the next user's shell holds it.
    let (master, _slave, device) = jit_tests::pty::open_pty();
    let mut master = fs::File::from(master);
    let mut grant = active_request(&holder, Target::Ssh);
    grant.sessions.push(Session {
        tty: Some(device.trim_start_matches("/dev/").to_owned()),
        ..session(1)
    });

    // The holder logged out; the terminal was handed to the next user's login.
    std::os::unix::fs::chown(&device, Some(next.uid), None).unwrap();
    host.warn(&grant, "first warning: grant ends in 5m");

    // Back with the holder (a login of theirs on it), the warning is written.
    std::os::unix::fs::chown(&device, Some(holder.uid), None).unwrap();
    host.warn(&grant, "second warning: grant ends in 4m");
    let got = read_until(&mut master, "second warning");
    assert!(
        !got.contains("first warning"),
        "another user's terminal got the holder's warning: {got:?}"
    );
    let said = lock(&events);
    let skipped = format!(
        "{device} belongs to uid {} now, not to the grant's holder (uid {})",
        next.uid, holder.uid
    );
    assert_eq!(
        said.iter().filter(|e| e.message.contains(&skipped)).count(),
        1,
        "the skipped terminal is logged once, the written one not at all: {said:?}"
    );
}

/// Scratch directories standing in for the cron, at and linger spools.
fn scratch_spools(dir: &std::path::Path) -> Spools {
    let spools = Spools {
        crontabs: dir.join("crontabs"),
        atjobs: dir.join("atjobs"),
        linger: dir.join("linger"),
        atq: None,
    };
    for d in [&spools.crontabs, &spools.atjobs, &spools.linger] {
        fs::create_dir_all(d).unwrap();
    }
    spools
}

/// Waits until `events` holds one of each of `kinds`.
fn wait_for_events(events: &Mutex<Vec<Event>>, kinds: &[EventKind]) -> Vec<Event> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = lock(events).clone();
        if kinds.iter().all(|k| got.iter().any(|e| e.kind() == *k)) {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "no {kinds:?} within 5 s: {got:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_end_of_an_ssh_grant_names_the_crontab_its_holder_wrote_and_without_systemd_leaves_the_manager(
) {
    let holder = TestUser::create(&unique_id("jtl"));
    let (host, events, scratch) = scratch_host();
    let spools = scratch_spools(&scratch.path().join("spool"));
    let ran = scratch.path().join("systemctl-ran");
    let systemctl = scratch.path().join("systemctl");
    fs::write(&systemctl, format!("#!/bin/sh\ntouch {}\n", ran.display())).unwrap();
    fs::set_permissions(&systemctl, fs::Permissions::from_mode(0o755)).unwrap();
    let crontab = spools.crontabs.join(&holder.name);
    let host = host.with_user_scheduling(UserScheduling {
        spools,
        manager: UserManager {
            systemd_marker: scratch.path().join("not-systemd"),
            systemctl,
        },
    });
    let mut grant = active_request(&holder, Target::Ssh);
    // The first session opens: the daemon records what was scheduled then.
    grant.jobs_at_start = Some(Box::new(host.user_jobs(&grant)));

    // During the grant, the holder installs a crontab that outlives it.
    fs::write(&crontab, "@reboot /tmp/payload\n").unwrap();
    host.withdraw(
        &grant,
        Withdrawal {
            stop_user_manager: true,
        },
    );

    let got = wait_for_events(&events, &[EventKind::SessionEnded, EventKind::LeftBehind]);
    let ended = got
        .iter()
        .find(|e| e.kind() == EventKind::SessionEnded)
        .unwrap();
    assert!(
        ended.message.contains(
            "did not stop the holder's systemd user manager: systemd is not the init system"
        ),
        "{ended:?}"
    );
    assert!(ended
        .extra
        .contains(&("USER_MANAGER", "no-systemd".to_string())));
    assert!(!ran.exists(), "systemctl ran on a host without systemd");
    let left = got
        .iter()
        .find(|e| e.kind() == EventKind::LeftBehind)
        .unwrap();
    let path = crontab.display().to_string();
    assert!(left.message.contains(&path), "{left:?}");
    assert_eq!(left.extra, vec![("CRONTAB", path)]);
    assert_eq!(left.request_id.as_deref(), Some(grant.id.as_str()));
    assert_eq!(left.user.as_deref(), Some(holder.name.as_str()));
}
