//! The foundation's user stories, against a real jitd with real CLIs and real Unix users.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use jit_tests::{ok, stdout, text, Daemon, TestGroup, TestUser};

/// An operator, an approver (in the approver group) and a bystander, on a fresh daemon.
struct Team {
    daemon: Daemon,
    operator: TestUser,
    approver: TestUser,
    bystander: TestUser,
    _approvers: TestGroup,
}

fn team(extra: &str) -> Team {
    let approvers = TestGroup::create("appr");
    let approver = TestUser::create("bob");
    approvers.add(&approver);
    let daemon = Daemon::start_with(&format!(
        "approver_groups = [\"{}\"]\n{extra}",
        approvers.name
    ));
    Team {
        daemon,
        operator: TestUser::create("alice"),
        approver,
        bystander: TestUser::create("eve"),
        _approvers: approvers,
    }
}

impl Team {
    /// The operator asks for `/usr/bin/id -u` without waiting; returns the request id.
    fn ask(&self, duration: &str) -> String {
        let id = ok(self.daemon.elevate_as(
            &self.operator,
            &[
                "--no-wait",
                "--for",
                duration,
                "--reason",
                "deploy",
                "--",
                "/usr/bin/id",
                "-u",
            ],
        ));
        assert_eq!(id.len(), 10, "--no-wait prints the id alone: {id:?}");
        id
    }
}

#[test]
fn a_request_is_approved_becomes_active_and_expires_on_time() {
    let t = team("");
    let id = t.ask("2s");
    let shown = t.daemon.show(&id);
    assert_eq!(shown["state"], "pending");
    assert_eq!(shown["user"], t.operator.name.as_str());
    assert_eq!(shown["command"][0], "/usr/bin/id");
    assert_eq!(shown["reason"], "deploy");
    assert!(
        shown["expires_at"].is_null(),
        "the window starts at approval, not at request"
    );

    ok(t.daemon
        .jitd_as(&t.approver, &["approve", &id, "--comment", "go ahead"]));
    let shown = t.daemon.show(&id);
    assert_eq!(shown["state"], "active");
    assert_eq!(shown["decisions"][0]["by"], t.approver.name.as_str());
    assert_eq!(shown["decisions"][0]["note"], "go ahead");

    let listed: serde_json::Value =
        serde_json::from_str(&ok(t.daemon.jitd(&["list", "--json"]))).unwrap();
    let entry = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id.as_str())
        .unwrap();
    for field in [
        "id",
        "user",
        "state",
        "command",
        "ssh",
        "reason",
        "expires_at",
    ] {
        assert!(entry.get(field).is_some(), "list --json lacks {field}");
    }

    // Expiry runs on the deadline: within a second of it.
    let expires = chrono_free_parse(shown["expires_at"].as_str().unwrap());
    t.daemon
        .wait_for_state(&id, "expired", Duration::from_secs(4));
    let ended = chrono_free_parse(t.daemon.show(&id)["ended_at"].as_str().unwrap());
    assert!(
        ended - expires <= 1,
        "expired {}s after its deadline",
        ended - expires
    );
    // Ended requests leave the default listing but stay in --all.
    assert!(!stdout(&t.daemon.jitd(&["list"])).contains(&id));
    assert!(stdout(&t.daemon.jitd(&["list", "--all"])).contains(&id));
}

/// Seconds since the epoch of an RFC 3339 `YYYY-MM-DDTHH:MM:SSZ` string.
fn chrono_free_parse(s: &str) -> i64 {
    let out = std::process::Command::new("date")
        .args(["-u", "-d", s, "+%s"])
        .output()
        .unwrap();
    stdout(&out).parse().unwrap()
}

#[test]
fn a_denied_request_never_becomes_active() {
    let t = team("");
    let id = t.ask("5m");
    ok(t.daemon
        .jitd_as(&t.approver, &["deny", &id, "--reason", "use the runbook"]));
    let shown = t.daemon.show(&id);
    assert_eq!(shown["state"], "denied");
    assert_eq!(shown["decisions"][0]["note"], "use the runbook");
    let out = t.daemon.jitd_as(&t.approver, &["approve", &id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("denied"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn the_requester_can_cancel_and_finish_early() {
    let t = team("");
    let id = t.ask("5m");
    ok(t.daemon.elevate_as(&t.operator, &["cancel", &id]));
    assert_eq!(t.daemon.state_of(&id), "cancelled");

    let id = t.ask("5m");
    ok(t.daemon.jitd_as(&t.approver, &["approve", &id]));
    ok(t.daemon.elevate_as(&t.operator, &["done", &id]));
    assert_eq!(t.daemon.state_of(&id), "completed");
}

#[test]
fn a_pending_request_times_out() {
    let t = team("pending_ttl = \"1s\"");
    let id = t.ask("5m");
    t.daemon
        .wait_for_state(&id, "timed_out", Duration::from_secs(3));
}

#[test]
fn nobody_decides_on_their_own_request() {
    let t = team("");
    let id = ok(t.daemon.elevate_as(
        &t.approver,
        &["--no-wait", "--reason", "x", "--", "/usr/bin/id"],
    ));
    let out = t.daemon.jitd_as(&t.approver, &["approve", &id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("own request"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(t.daemon.state_of(&id), "pending");
    // Nor grant themselves access.
    let out = t.daemon.jitd_as(
        &t.approver,
        &["grant", &t.approver.name, "--reason", "x", "--ssh"],
    );
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn a_non_approver_cannot_decide() {
    let t = team("");
    let id = t.ask("5m");
    for args in [
        vec!["approve", id.as_str()],
        vec!["deny", &id, "--reason", "no"],
    ] {
        let out = t.daemon.jitd_as(&t.bystander, &args);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            text(&out.stderr).contains("members of"),
            "{}",
            text(&out.stderr)
        );
    }
    let out = t.daemon.jitd_as(
        &t.bystander,
        &["grant", &t.operator.name, "--reason", "x", "--ssh"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(t.daemon.state_of(&id), "pending");
}

#[test]
fn a_user_cannot_act_on_someone_elses_request() {
    let t = team("");
    let id = t.ask("5m");
    for args in [vec!["cancel", id.as_str()], vec!["status", &id]] {
        let out = t.daemon.elevate_as(&t.bystander, &args);
        assert_eq!(
            out.status.code(),
            Some(14),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    ok(t.daemon.jitd_as(&t.approver, &["approve", &id]));
    let out = t.daemon.elevate_as(&t.bystander, &["done", &id]);
    assert_eq!(out.status.code(), Some(14));
    assert!(text(&out.stderr).contains("another user"));
    assert_eq!(t.daemon.state_of(&id), "active");
    // And the list a user sees holds only their own requests.
    let mine = stdout(&t.daemon.elevate_as(&t.bystander, &["list", "--json"]));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&mine).unwrap(),
        serde_json::json!([])
    );
}

#[test]
fn grant_prints_the_new_id_alone_and_ssh_grants_show_as_ssh() {
    let t = team("");
    let id = ok(t.daemon.jitd(&[
        "grant",
        &t.operator.name,
        "--for",
        "2h",
        "--reason",
        "INC-42",
        "--ssh",
    ]));
    assert_eq!(id.len(), 10);
    let shown = t.daemon.show(&id);
    assert_eq!(shown["state"], "active");
    assert_eq!(shown["ssh"], true);
    assert!(shown["command"].is_null());
    assert_eq!(shown["duration_secs"], 7200);
}

#[test]
fn requests_beyond_policy_are_refused_with_a_reason() {
    let t = team("max_duration = \"1h\"");
    let cases: [(&[&str], &str); 5] = [
        (
            &["--no-wait", "--reason", "x", "--", "no-such-tool-anywhere"],
            "not found in PATH",
        ),
        (
            &[
                "--no-wait",
                "--for",
                "2h",
                "--reason",
                "x",
                "--",
                "/usr/bin/id",
            ],
            "maximum",
        ),
        (&["--no-wait", "--", "/usr/bin/id"], "reason is required"),
        (
            &["--no-wait", "--reason", "x", "--", "/nonexistent/tool"],
            "cannot be used",
        ),
        (
            &["--no-wait", "--reason", "x", "--", "../x"],
            "relative path",
        ),
    ];
    for (args, says) in cases {
        let out = t.daemon.elevate_as(&t.operator, args);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(
            text(&out.stderr).contains(says),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn jit_elevate_waits_for_the_decision() {
    let t = team("");
    // Approved: an SSH request finishes with the grant's end time.
    let waiting = {
        let socket = t.daemon.socket();
        let user = t.operator.identity();
        std::thread::spawn(move || {
            user.command(jit_tests::bin("jit-elevate"))
                .arg("--socket")
                .arg(socket)
                .args(["--ssh", "--for", "10m", "--reason", "debug"])
                .output()
                .unwrap()
        })
    };
    let id = t.daemon.wait_for_pending();
    ok(t.daemon.jitd_as(&t.approver, &["approve", &id]));
    let out = waiting.join().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        stdout(&out).contains("SSH login to this host granted until"),
        "{}",
        stdout(&out)
    );
    assert!(
        text(&out.stderr).contains("waiting for approval"),
        "the wait is visible"
    );

    // Nobody decides within --timeout: the request is cancelled, exit 11.
    let out = t.daemon.elevate_as(
        &t.operator,
        &["--timeout", "1s", "--reason", "x", "--", "/usr/bin/id"],
    );
    assert_eq!(out.status.code(), Some(11), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("cancelled"));
}

#[test]
fn a_denied_wait_exits_10_and_ctrl_c_cancels() {
    let t = team("");
    let child = t
        .operator
        .command(jit_tests::bin("jit-elevate"))
        .arg("--socket")
        .arg(t.daemon.socket())
        .args(["--reason", "x", "--", "/usr/bin/id"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let id = t.daemon.wait_for_pending();
    ok(t.daemon
        .jitd_as(&t.approver, &["deny", &id, "--reason", "not today"]));
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(10));
    assert!(
        text(&out.stderr).contains("not today"),
        "{}",
        text(&out.stderr)
    );

    // SIGINT (what Ctrl-C sends) while waiting cancels the request.
    let child = t
        .operator
        .command(jit_tests::bin("jit-elevate"))
        .arg("--socket")
        .arg(t.daemon.socket())
        .args(["--reason", "x", "--", "/usr/bin/id"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let id = t.daemon.wait_for_pending();
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out.stderr));
    assert_eq!(t.daemon.state_of(&id), "cancelled");
}

#[test]
fn pending_and_active_grants_survive_a_restart_and_missed_deadlines_expire_at_start() {
    let mut t = team("");
    let pending = t.ask("5m");
    let active = t.ask("5m");
    let short = t.ask("1s");
    ok(t.daemon.jitd_as(&t.approver, &["approve", &active]));
    ok(t.daemon.jitd_as(&t.approver, &["approve", &short]));
    t.daemon.kill9();
    std::thread::sleep(Duration::from_millis(1500));
    t.daemon.restart();
    assert_eq!(t.daemon.state_of(&pending), "pending");
    assert_eq!(t.daemon.state_of(&active), "active");
    assert_eq!(t.daemon.state_of(&short), "expired");
    assert!(
        t.daemon.log().contains("while jitd was not running"),
        "{}",
        t.daemon.log()
    );
    // And the restarted daemon still decides.
    ok(t.daemon.jitd_as(&t.approver, &["approve", &pending]));
    assert_eq!(t.daemon.state_of(&pending), "active");
}

#[test]
fn kill_9_in_the_middle_of_transitions_leaves_a_consistent_state() {
    let mut t = team("");
    let ids: Vec<String> = (0..12).map(|_| t.ask("5m")).collect();
    // Approve as fast as possible from another thread and kill jitd in the middle of it.
    let approver = std::thread::spawn({
        let socket = t.daemon.socket();
        let ids = ids.clone();
        let approver = t.approver.identity();
        move || {
            for id in ids {
                let _ = approver
                    .command(jit_tests::bin("jitd"))
                    .arg("--socket")
                    .arg(&socket)
                    .args(["approve", &id])
                    .output();
            }
        }
    });
    std::thread::sleep(Duration::from_millis(150));
    t.daemon.kill9();
    approver.join().unwrap();
    t.daemon.restart();
    let states: Vec<String> = ids.iter().map(|id| t.daemon.state_of(id)).collect();
    for s in &states {
        assert!(s == "pending" || s == "active", "unexpected state {s}");
    }
    // Every acknowledged approval is there: the approved ones form a prefix.
    let first_pending = states
        .iter()
        .position(|s| s == "pending")
        .unwrap_or(states.len());
    assert!(
        states[first_pending..].iter().all(|s| s == "pending"),
        "{states:?}"
    );
    let leftovers: Vec<_> = std::fs::read_dir(t.daemon.state_dir().join("requests"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".json"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "torn or corrupt state files: {leftovers:?}"
    );
}

fn raw_exchange(socket: &std::path::Path, bytes: &[u8]) -> serde_json::Value {
    let mut s = UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(bytes);
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).unwrap();
    serde_json::from_slice(&body).unwrap()
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut v = (body.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(body);
    v
}

#[test]
fn malformed_truncated_oversized_and_silent_clients_do_not_hurt_others() {
    let t = team("");
    let socket = t.daemon.socket();
    let garbage = raw_exchange(&socket, &frame(b"this is not json"));
    assert_eq!(garbage["status"], "error");
    assert_eq!(garbage["code"], "bad_request");
    let wrong_version = raw_exchange(&socket, &frame(br#"{"v":99,"op":"list"}"#));
    assert_eq!(wrong_version["code"], "unsupported_version");
    let unknown_op = raw_exchange(&socket, &frame(br#"{"v":1,"op":"become_root"}"#));
    assert_eq!(unknown_op["code"], "bad_request");
    let oversized = raw_exchange(&socket, &(1u32 << 20).to_be_bytes());
    assert_eq!(oversized["code"], "bad_request");
    assert!(oversized["message"].as_str().unwrap().contains("exceeds"));
    // Truncated: announce 100 bytes, send 5, hang up.
    {
        let mut s = UnixStream::connect(&socket).unwrap();
        s.write_all(&100u32.to_be_bytes()).unwrap();
        s.write_all(b"{\"v\":").unwrap();
    }
    // Silent clients hold connections open; others are still served at once.
    let silent: Vec<UnixStream> = (0..10)
        .map(|_| UnixStream::connect(&socket).unwrap())
        .collect();
    let id = t.ask("5m");
    assert_eq!(t.daemon.state_of(&id), "pending");
    // Served while jitd still held every silent connection: it hangs up on one only at its
    // read deadline (5 s), so a request queued behind them would find them closed. An order,
    // not a time: nothing here depends on how loaded the machine is.
    for s in &silent {
        s.set_nonblocking(true).unwrap();
        let read = (&*s).read(&mut [0u8; 1]);
        assert!(
            matches!(&read, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "a silent client's connection was already answered or closed ({read:?}): the request waited behind it"
        );
    }
    drop(silent);
    // The PAM check is for root alone.
    let check = br#"{"v":1,"op":"check","user":"root","kind":"sudo","service":"sudo"}"#;
    let out = std::process::Command::new("runuser")
        .args(["-u", &t.operator.name, "--", "python3", "-c"])
        .arg(format!(
            "import socket,struct,sys\ns=socket.socket(socket.AF_UNIX)\ns.connect({:?})\nb={:?}.encode()\ns.sendall(struct.pack('>I',len(b))+b)\nn=struct.unpack('>I',s.recv(4))[0]\nsys.stdout.write(s.recv(n).decode())",
            socket.display().to_string(),
            String::from_utf8_lossy(check)
        ))
        .output()
        .unwrap();
    let answer: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", text(&out.stderr)));
    assert_eq!(answer["code"], "forbidden");
}

#[test]
fn one_user_cannot_exhaust_the_connections() {
    let t = team("max_connections = 16\nmax_connections_per_uid = 2");
    // The operator opens more silent connections than allowed; the third is refused busy.
    let held: Vec<UnixStream> = (0..2)
        .map(|_| connect_as(&t.daemon.socket(), t.operator.uid))
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    let mut third = connect_as(&t.daemon.socket(), t.operator.uid);
    third
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let mut len = [0u8; 4];
    third.read_exact(&mut len).unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    third.read_exact(&mut body).unwrap();
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(answer["code"], "busy");
    // Another user is unaffected.
    let id = ok(t.daemon.elevate_as(
        &t.bystander,
        &["--no-wait", "--reason", "x", "--", "/usr/bin/id"],
    ));
    assert_eq!(t.daemon.state_of(&id), "pending");
    drop(held);
}

/// A connection whose peer credentials say `uid`: connect from a forked child that drops to
/// `uid` and passes the socket back.
fn connect_as(socket: &std::path::Path, uid: u32) -> UnixStream {
    let (parent, child) = UnixStream::pair().unwrap();
    // SAFETY: the child only calls async-signal-safe functions (setuid, socket, connect,
    // sendmsg via the libc calls below) before _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        let code = (|| -> Option<()> {
            // SAFETY: plain syscalls in the forked child.
            unsafe {
                if libc::setgid(uid) != 0 && libc::setgid(65534) != 0 {
                    return None;
                }
                if libc::setuid(uid) != 0 {
                    return None;
                }
            }
            let s = UnixStream::connect(socket).ok()?;
            send_fd(&child, std::os::fd::AsRawFd::as_raw_fd(&s));
            Some(())
        })();
        // SAFETY: terminate the forked child without running the parent's destructors.
        unsafe { libc::_exit(if code.is_some() { 0 } else { 1 }) };
    }
    let mut status = 0;
    // SAFETY: reap our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    recv_fd(&parent)
}

fn send_fd(via: &UnixStream, fd: i32) {
    use std::os::fd::AsRawFd;
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut cmsg = [0u8; 64];
    // SAFETY: msghdr and the control buffer are valid for the call; CMSG macros stay inside it.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cmsg.as_mut_ptr().cast();
        msg.msg_controllen = libc::CMSG_SPACE(4) as usize;
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN(4) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<i32>(), fd);
        libc::sendmsg(via.as_raw_fd(), &msg, 0);
    }
}

fn recv_fd(via: &UnixStream) -> UnixStream {
    use std::os::fd::{AsRawFd, FromRawFd};
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut cmsg = [0u8; 64];
    // SAFETY: as in send_fd; the received descriptor is owned by the returned stream.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cmsg.as_mut_ptr().cast();
        msg.msg_controllen = cmsg.len();
        assert!(libc::recvmsg(via.as_raw_fd(), &mut msg, 0) >= 0);
        let c = libc::CMSG_FIRSTHDR(&msg);
        assert!(!c.is_null(), "no descriptor received");
        UnixStream::from_raw_fd(std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<i32>()))
    }
}
