//! A login is the request (pam_jit `wait=`): real OpenSSH, a user without a grant logs in,
//! jitd puts a request up for approval on their behalf, and the login waits for the decision.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use jit_proto::{
    Client, ErrorCode, GrantKind, LoginEnd, LoginWait, PamContext, Request, RequestView, Response,
    State,
};
use jit_tests::pam::*;
use jit_tests::pty::{read_until, type_text};
use jit_tests::sshd::*;
use jit_tests::{ok, Daemon, TestUser};

fn waiting(wait: &str) -> SshdSetup {
    SshdSetup {
        pam_args: format!("wait={wait}"),
        ..SshdSetup::default()
    }
}

/// Clients killed when the test ends, however it ends.
struct Clients(Vec<Child>);

impl Drop for Clients {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A login running `echo logged-in; sleep 60`, and the lines it prints as they come.
fn log_in(sshd: &Sshd, user: &TestUser) -> (Child, mpsc::Receiver<String>) {
    let mut child = sshd
        .ssh(user, None, &["echo", "logged-in;", "exec", "sleep", "60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (child, rx)
}

/// Waits for `child` to exit, at most `within`; returns whether it succeeded and when it ended.
fn exit_of(child: &mut Child, within: Duration) -> (bool, Instant) {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status.success(), Instant::now());
        }
        assert!(
            Instant::now() < deadline,
            "the ssh client did not end within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Polls sshd's log until it contains `needle`; returns when it did.
fn logged(sshd: &Sshd, needle: &str, within: Duration) -> Instant {
    let deadline = Instant::now() + within;
    while !sshd.log().contains(needle) {
        assert!(
            Instant::now() < deadline,
            "sshd did not log {needle:?} within {within:?}:\n{}",
            sshd.log()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    Instant::now()
}

fn last_decision(jitd: &Daemon, id: &str) -> serde_json::Value {
    let view = jitd.show(id);
    view["decisions"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone()
}

#[test]
fn an_approved_login_gets_in_at_once_under_the_new_grant_and_ends_with_it() {
    let jitd = Daemon::start_with("kill_grace = \"1s\"");
    let ann = TestUser::create("jitlw");
    let sshd = Sshd::start_with(&[&ann], &jitd.socket(), None, &waiting("30s"));
    let (client, lines) = log_in(&sshd, &ann);
    let mut clients = Clients(vec![client]);

    let id = jitd.wait_for_pending();
    let view = jitd.show(&id);
    assert_eq!(view["user"], ann.name.as_str(), "{view}");
    assert_eq!(view["ssh"], true, "{view}");
    // jitd's default policy wants a reason; a public-key login cannot be asked for one.
    assert_eq!(view["reason"], "login from 127.0.0.1", "{view}");
    let requested = chrono_secs(&view["requested_at"]);
    let until = chrono_secs(&view["pending_until"]);
    assert!(
        (29..=31).contains(&(until - requested)),
        "the request waits as long as the login: {view}"
    );
    let told = format!(
        "waiting at an SSH login from 127.0.0.1 until {}",
        view["pending_until"].as_str().unwrap()
    );
    assert!(
        jitd.log().contains(&told),
        "approvers are told where the login comes from and until when:\n{}",
        jitd.log()
    );

    let approved = Instant::now();
    ok(jitd.jitd(&["approve", &id]));
    let accepted = logged(
        &sshd,
        &format!("Accepted publickey for {}", ann.name),
        Duration::from_secs(10),
    );
    let line = lines.recv_timeout(Duration::from_secs(20)).unwrap();
    let shell = Instant::now();
    assert_eq!(line, "logged-in");
    eprintln!(
        "approve -> login accepted: {:?}, approve -> shell output: {:?}",
        accepted - approved,
        shell - approved
    );
    assert!(
        accepted - approved < Duration::from_secs(2),
        "the login went on {:?} after the approval",
        accepted - approved
    );

    // The session is registered under the new grant, and ends with it.
    wait_for_view(&jitd, &id, Duration::from_secs(10), |v| {
        !v.sessions.is_empty()
    });
    revoke(&jitd, &id);
    let (success, _) = exit_of(&mut clients.0[0], Duration::from_secs(30));
    assert!(!success, "the session outlived its grant");
}

fn chrono_secs(v: &serde_json::Value) -> i64 {
    // RFC 3339 UTC from jitd: compare whole seconds through `date`, which every host has.
    let out = std::process::Command::new("date")
        .args(["-u", "+%s", "-d"])
        .arg(v.as_str().unwrap())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[test]
fn a_denied_login_fails_at_once_and_the_request_is_denied() {
    let jitd = Daemon::start();
    let bea = TestUser::create("jitlw");
    let sshd = Sshd::start_with(&[&bea], &jitd.socket(), None, &waiting("30s"));
    let (client, _) = log_in(&sshd, &bea);
    let mut clients = Clients(vec![client]);
    let id = jitd.wait_for_pending();

    let denied = Instant::now();
    ok(jitd.jitd(&["deny", &id, "--reason", "not now"]));
    let (success, ended) = exit_of(&mut clients.0[0], Duration::from_secs(30));
    assert!(!success);
    eprintln!("deny -> login refused: {:?}", ended - denied);
    assert!(
        ended - denied < Duration::from_secs(2),
        "the login failed {:?} after the deny",
        ended - denied
    );
    assert_eq!(jitd.state_of(&id), "denied");
    logged(
        &sshd,
        &format!(
            "Access denied for user {} by PAM account configuration",
            bea.name
        ),
        Duration::from_secs(5),
    );
}

#[test]
fn a_login_nobody_decides_on_fails_after_its_wait_and_the_request_times_out() {
    let jitd = Daemon::start();
    let cid = TestUser::create("jitlw");
    let sshd = Sshd::start_with(&[&cid], &jitd.socket(), None, &waiting("3s"));
    let started = Instant::now();
    let (client, _) = log_in(&sshd, &cid);
    let mut clients = Clients(vec![client]);
    let id = jitd.wait_for_pending();
    let (success, ended) = exit_of(&mut clients.0[0], Duration::from_secs(30));
    assert!(!success);
    assert!(
        ended - started >= Duration::from_secs(3),
        "the login gave up after {:?}, before its wait",
        ended - started
    );
    jitd.wait_for_state(&id, "timed_out", Duration::from_secs(5));
    assert_eq!(last_decision(&jitd, &id)["action"], "time_out");
}

#[test]
fn a_client_that_disconnects_while_waiting_cancels_its_request() {
    let jitd = Daemon::start();
    let dan = TestUser::create("jitlw");
    let sshd = Sshd::start_with(&[&dan], &jitd.socket(), None, &waiting("30s"));
    let (client, _) = log_in(&sshd, &dan);
    let mut clients = Clients(vec![client]);
    let id = jitd.wait_for_pending();

    clients.0[0].kill().unwrap();
    let gone = Instant::now();
    jitd.wait_for_state(&id, "cancelled", Duration::from_secs(5));
    eprintln!("client gone -> request cancelled: {:?}", gone.elapsed());
    let last = last_decision(&jitd, &id);
    assert_eq!(last["action"], "cancel", "{last}");
    assert!(
        last["note"].as_str().unwrap().contains("client went away"),
        "{last}"
    );
    // An approval that comes too late finds nothing to approve.
    assert!(!jitd.jitd(&["approve", &id]).status.success());
}

/// sshd ends a login at LoginGraceTime, the module with it, without a word to jitd: jitd sees
/// the process end and cancels the request rather than keep it for an approver.
#[test]
fn a_login_sshd_ends_at_its_grace_time_cancels_its_request() {
    let jitd = Daemon::start();
    let eve = TestUser::create("jitlw");
    let setup = SshdSetup {
        login_grace_secs: Some(3),
        ..waiting("30s")
    };
    let sshd = Sshd::start_with(&[&eve], &jitd.socket(), None, &setup);
    let (client, _) = log_in(&sshd, &eve);
    let mut clients = Clients(vec![client]);
    let id = jitd.wait_for_pending();
    let (success, _) = exit_of(&mut clients.0[0], Duration::from_secs(30));
    assert!(!success);
    jitd.wait_for_state(&id, "cancelled", Duration::from_secs(10));
    let last = last_decision(&jitd, &id);
    assert!(
        last["note"]
            .as_str()
            .unwrap()
            .contains("sshd process ended"),
        "{last}"
    );
}

/// One waiting login per user: a second one is refused at once while the first waits, and
/// the first is unaffected.
#[test]
fn a_second_login_of_a_waiting_user_is_refused_and_the_first_still_waits() {
    let jitd = Daemon::start();
    let fay = TestUser::create("jitlw");
    let sshd = Sshd::start_with(&[&fay], &jitd.socket(), None, &waiting("30s"));
    let (first, lines) = log_in(&sshd, &fay);
    let mut clients = Clients(vec![first]);
    let id = jitd.wait_for_pending();

    let (second, _) = log_in(&sshd, &fay);
    clients.0.push(second);
    let (success, _) = exit_of(&mut clients.0[1], Duration::from_secs(10));
    assert!(!success, "a second waiting login was let through");
    let list = jitd.jitd(&["list", "--json"]);
    let pending: Vec<serde_json::Value> = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(jitd.state_of(&id), "pending");

    ok(jitd.jitd(&["approve", &id]));
    assert_eq!(
        lines.recv_timeout(Duration::from_secs(20)).unwrap(),
        "logged-in"
    );
}

/// What a local user sends to jitd's socket as themselves, and jitd's answer.
fn send_as(user: &TestUser, jitd: &Daemon, request: &str) -> serde_json::Value {
    let out = user
        .command("python3")
        .arg("-c")
        .arg(format!(
            "import socket,struct,sys\ns=socket.socket(socket.AF_UNIX)\ns.connect({:?})\nb={:?}.encode()\ns.sendall(struct.pack('>I',len(b))+b)\nn=struct.unpack('>I',s.recv(4))[0]\nsys.stdout.write(s.recv(n).decode())",
            jitd.socket().display().to_string(),
            request
        ))
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)))
}

/// Only sshd (root) speaks for a login: a user cannot put a request up in someone else's name
/// (to have it approved as theirs), follow one, or end one.
#[test]
fn a_user_cannot_forge_a_waiting_login_or_end_one() {
    let jitd = Daemon::start();
    let mallory = TestUser::create("jitlw");
    let gus = TestUser::create("jitlw");
    let forged = format!(
        r#"{{"v":1,"op":"login_wait","user":"{}","kind":"ssh","service":"sshd","rhost":"10.9.9.9","reason":"urgent","wait_secs":60}}"#,
        gus.name
    );
    let answer = send_as(&mallory, &jitd, &forged);
    assert_eq!(answer["code"], "forbidden", "{answer}");
    let list = jitd.jitd(&["list", "--all", "--json"]);
    assert_eq!(String::from_utf8_lossy(&list.stdout).trim(), "[]");

    // gus's real waiting login, which mallory then tries to end or watch.
    let sshd = Sshd::start_with(&[&gus], &jitd.socket(), None, &waiting("30s"));
    let (client, _) = log_in(&sshd, &gus);
    let _clients = Clients(vec![client]);
    let id = jitd.wait_for_pending();
    for op in [
        format!(r#"{{"v":1,"op":"login_abandon","id":"{id}","why":"client_gone"}}"#),
        format!(r#"{{"v":1,"op":"login_status","id":"{id}"}}"#),
    ] {
        let answer = send_as(&mallory, &jitd, &op);
        assert_eq!(answer["code"], "forbidden", "{op}: {answer}");
    }
    assert_eq!(jitd.state_of(&id), "pending");
}

/// keyboard-interactive after the key: sshd lets PAM ask, so the user types the reason and
/// sees the request they wait on.
#[test]
fn with_keyboard_interactive_the_reason_typed_is_the_requests_and_the_request_is_shown() {
    let jitd = Daemon::start();
    let hal = TestUser::create("jitlw");
    let setup = SshdSetup {
        keyboard_interactive: true,
        ..waiting("1m")
    };
    let sshd = Sshd::start_with(&[&hal], &jitd.socket(), None, &setup);
    let (client, terminal) = sshd.ssh_on_pty(&hal, &[], &["echo", "logged-in"]);
    let mut clients = Clients(vec![client]);
    let mut seen = String::new();
    let within = Duration::from_secs(20);
    assert!(
        read_until(&terminal, &mut seen, "Reason: ", within),
        "no reason prompt; the terminal shows:\n{seen}\nsshd:\n{}",
        sshd.log()
    );
    type_text(&terminal, "INC-42 disk full\n");
    assert!(
        read_until(&terminal, &mut seen, "Press Enter to keep waiting", within),
        "the request was not shown; the terminal shows:\n{seen}"
    );
    let id = jitd.wait_for_pending();
    assert!(
        seen.contains(&format!("waiting for approval of {id} by root")),
        "{seen}"
    );
    assert_eq!(jitd.show(&id)["reason"], "INC-42 disk full");
    type_text(&terminal, "\n");
    ok(jitd.jitd(&["approve", &id]));
    assert!(
        read_until(&terminal, &mut seen, "logged-in", within),
        "no shell after the approval; the terminal shows:\n{seen}\nsshd:\n{}",
        sshd.log()
    );
    let (success, _) = exit_of(&mut clients.0[0], within);
    assert!(success, "{seen}");
}

/// keyboard-interactive alone (no key first) is not a way in, even for a user who holds a
/// grant, on an sshd that would accept it alone: pam_jit's auth line authenticates nobody.
#[test]
fn keyboard_interactive_without_the_key_gets_nobody_in() {
    let jitd = Daemon::start();
    let ida = TestUser::create("jitlw");
    let setup = SshdSetup {
        keyboard_interactive: true,
        authentication_methods: Some("any"),
        ..waiting("1m")
    };
    let sshd = Sshd::start_with(&[&ida], &jitd.socket(), None, &setup);
    let _grant = grant(&jitd, &ida.name, "5m", &["--ssh"]);
    // With the key, in at once.
    let out = sshd.login(&ida, None);
    assert!(out.status.success(), "{out:?}\n{}", sshd.log());
    let (client, terminal) = sshd.ssh_on_pty(
        &ida,
        &["-o", "PubkeyAuthentication=no"],
        &["echo", "logged-in"],
    );
    let mut clients = Clients(vec![client]);
    let (success, _) = exit_of(&mut clients.0[0], Duration::from_secs(20));
    let mut seen = String::new();
    read_until(
        &terminal,
        &mut seen,
        "logged-in",
        Duration::from_millis(200),
    );
    assert!(!success && !seen.contains("logged-in"), "{seen}");
    logged(
        &sshd,
        &format!("Failed keyboard-interactive/pam for {}", ida.name),
        Duration::from_secs(5),
    );
}

/// Tens of logins waiting at once hold no connection of jitd's: a PAM check of another user
/// still answers in milliseconds.
#[test]
fn twenty_waiting_logins_do_not_slow_another_users_pam_check() {
    const WAITING: usize = 20;
    let jitd = Daemon::start();
    let users: Vec<TestUser> = (0..WAITING).map(|_| TestUser::create("jitlw")).collect();
    let refs: Vec<&TestUser> = users.iter().collect();
    let sshd = Sshd::start_with(&refs, &jitd.socket(), None, &waiting("2m"));
    let mut clients = Clients(Vec::new());
    for user in &users {
        clients.0.push(log_in(&sshd, user).0);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let pending = pending_count(&jitd);
        if pending == WAITING {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{pending} of {WAITING} logins waiting after 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let other = TestUser::create("jitlw");
    let _grant = grant(&jitd, &other.name, "5m", &["--ssh"]);
    let service = "jit-test-lw";
    let conf = ServiceDir::new(
        service,
        &format!("socket={} kind=ssh", jitd.socket().display()),
    );
    let mut times: Vec<Duration> = (0..20)
        .map(|_| {
            let mut pam = Pam::start(conf.path(), service, &other.name).rhost("10.1.2.3");
            let (rc, took) = timed(|| pam.acct_mgmt());
            assert_eq!(rc, 0, "another user's check failed: {:?}", pam.messages());
            took
        })
        .collect();
    times.sort();
    eprintln!(
        "PAM check with {WAITING} logins waiting: median {:?}, max {:?}",
        times[times.len() / 2],
        times[times.len() - 1]
    );
    // The module's own deadline is 1.5 s: a check that waited on the logins would hit it.
    assert!(times[times.len() - 1] < Duration::from_secs(1), "{times:?}");
    // And every login still waits: none was dropped to make room.
    assert_eq!(pending_count(&jitd), WAITING);
}

fn pending_count(jitd: &Daemon) -> usize {
    let list = jitd.jitd(&["list", "--json"]);
    let listed: Vec<serde_json::Value> = serde_json::from_slice(&list.stdout).unwrap();
    listed.iter().filter(|r| r["state"] == "pending").count()
}

/// Ctrl-C at the prompt: sshd ends its PAM process without the module getting a word in;
/// jitd sees it end and cancels the request.
#[test]
fn giving_up_at_the_keyboard_interactive_prompt_cancels_the_request() {
    let jitd = Daemon::start();
    let cal = TestUser::create("jitlw");
    let setup = SshdSetup {
        keyboard_interactive: true,
        ..waiting("30s")
    };
    let sshd = Sshd::start_with(&[&cal], &jitd.socket(), None, &setup);
    let (client, terminal) = sshd.ssh_on_pty(&cal, &[], &["echo", "logged-in"]);
    let mut clients = Clients(vec![client]);
    let mut seen = String::new();
    let within = Duration::from_secs(20);
    assert!(
        read_until(&terminal, &mut seen, "Reason: ", within),
        "{seen}"
    );
    type_text(&terminal, "\n");
    assert!(
        read_until(&terminal, &mut seen, "give up: ", within),
        "{seen}"
    );
    let id = jitd.wait_for_pending();
    // The default reason, as Enter asked for.
    assert_eq!(jitd.show(&id)["reason"], "login from 127.0.0.1");
    type_text(&terminal, "\x03");
    let (success, gone) = exit_of(&mut clients.0[0], within);
    assert!(!success);
    jitd.wait_for_state(&id, "cancelled", Duration::from_secs(5));
    eprintln!("Ctrl-C -> request cancelled: {:?}", gone.elapsed());
    let last = last_decision(&jitd, &id);
    assert!(
        last["note"]
            .as_str()
            .unwrap()
            .contains("sshd process ended"),
        "{last}"
    );
}

/// jitd restarts while a login waits: the login keeps asking, and the approval given to the
/// restarted jitd lets it in.
#[test]
fn a_waiting_login_outlives_a_jitd_restart() {
    let mut jitd = Daemon::start();
    let kim = TestUser::create("jitlw");
    let sshd = Sshd::start_with(&[&kim], &jitd.socket(), None, &waiting("1m"));
    let (client, lines) = log_in(&sshd, &kim);
    let _clients = Clients(vec![client]);
    let id = jitd.wait_for_pending();
    jitd.restart();
    assert_eq!(jitd.state_of(&id), "pending");
    ok(jitd.jitd(&["approve", &id]));
    assert_eq!(
        lines.recv_timeout(Duration::from_secs(20)).unwrap(),
        "logged-in"
    );
}

/// Roles apply as to any request: an automatic rule approves the login at once (it does not
/// wait), a user no role covers for SSH is refused at once with nothing recorded.
#[test]
fn an_automatically_approved_login_does_not_wait_and_an_uncovered_one_is_refused() {
    let lia = TestUser::create("jitlw");
    let max = TestUser::create("jitlw");
    let jitd = Daemon::start_with(&format!(
        "[[role]]\nname = \"lia-ssh\"\nssh = true\nrequester_users = [\"{}\"]\nrequire_reason = false\n\
         [[role.auto_approve]]\nname = \"always\"\n",
        lia.name
    ));
    let sshd = Sshd::start_with(&[&lia, &max], &jitd.socket(), None, &waiting("30s"));
    let started = Instant::now();
    let out = sshd.login(&lia, None);
    assert!(out.status.success(), "{out:?}\n{}", sshd.log());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "logged-in");
    eprintln!("automatically approved login: {:?}", started.elapsed());
    let list: Vec<serde_json::Value> =
        serde_json::from_slice(&jitd.jitd(&["list", "--json"]).stdout).unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["state"], "active");
    assert_eq!(list[0]["reason"], "login from 127.0.0.1");
    assert_eq!(list[0]["decisions"][0]["by"], "rule:always");

    let started = Instant::now();
    let out = sshd.login(&max, None);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "refused only after {:?}",
        started.elapsed()
    );
    let all = jitd.jitd(&["list", "--all", "--json"]);
    assert!(
        !String::from_utf8_lossy(&all.stdout).contains(&max.name),
        "a request was recorded for a login no role covers"
    );
}

/// sshd's side of the exchange, spoken directly as root (the test runs as root, as sshd does).
fn as_sshd(jitd: &Daemon, request: Request) -> Response {
    Client::new(jitd.socket(), Duration::from_secs(10))
        .call(request)
        .unwrap()
}

fn login_wait(user: &TestUser, reason: Option<&str>) -> Request {
    Request::LoginWait(LoginWait {
        pam: PamContext {
            user: user.name.clone(),
            kind: GrantKind::Ssh,
            service: "sshd".into(),
            tty: Some("ssh".into()),
            rhost: Some("10.9.9.9".into()),
            ruser: None,
        },
        reason: reason.map(String::from),
        wait_secs: 60,
    })
}

fn pending_view(answer: Response) -> RequestView {
    match answer {
        Response::Request { request } if request.state == State::Pending => *request,
        other => panic!("expected a pending request, got {other:?}"),
    }
}

fn refusal(answer: Response) -> (ErrorCode, String) {
    match answer {
        Response::Error { code, message } => (code, message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// jitd asks for a reason only when the policy wants one (recording nothing meanwhile), takes
/// the default when the user gives none, and ends only a login's request for a login.
#[test]
fn jitd_asks_for_the_reason_the_policy_wants_and_ends_only_a_logins_request() {
    let jitd = Daemon::start();
    let ola = TestUser::create("jitlw");
    let answer = as_sshd(&jitd, login_wait(&ola, None));
    assert!(
        matches!(&answer, Response::ReasonWanted { message } if message.contains("login from 10.9.9.9")),
        "{answer:?}"
    );
    let all = jitd.jitd(&["list", "--all", "--json"]);
    assert_eq!(String::from_utf8_lossy(&all.stdout).trim(), "[]");

    let view = pending_view(as_sshd(&jitd, login_wait(&ola, Some(""))));
    assert_eq!(view.reason, "login from 10.9.9.9");
    let ended = as_sshd(
        &jitd,
        Request::LoginAbandon {
            id: view.id.clone(),
            why: LoginEnd::TimedOut,
        },
    );
    assert!(
        matches!(&ended, Response::Request { request } if request.state == State::TimedOut),
        "{ended:?}"
    );

    // A request ola made herself is not a login's to end.
    let own = ok(jitd.elevate_as(&ola, &["--no-wait", "--ssh", "--reason", "by hand"]));
    let (code, message) = refusal(as_sshd(
        &jitd,
        Request::LoginAbandon {
            id: own.clone(),
            why: LoginEnd::ClientGone,
        },
    ));
    assert_eq!(code, ErrorCode::InvalidState, "{message}");
    assert_eq!(jitd.state_of(&own), "pending");
    // And sudo never waits at a login.
    let mut sudo = login_wait(&ola, Some("x"));
    if let Request::LoginWait(w) = &mut sudo {
        w.pam.kind = GrantKind::Sudo;
    }
    assert_eq!(refusal(as_sshd(&jitd, sudo)).0, ErrorCode::BadRequest);
}

/// A user looping login-and-disconnect (each a new request, each notifying the approvers)
/// gets a burst of requests, then one a second, as with their own submissions; and while one
/// of their logins waits, another is refused.
#[test]
fn a_user_who_keeps_logging_in_and_giving_up_is_limited() {
    let jitd = Daemon::start_with("require_reason = false");
    let pia = TestUser::create("jitlw");
    for round in 0..20 {
        let view = pending_view(as_sshd(&jitd, login_wait(&pia, None)));
        if round == 0 {
            let (code, message) = refusal(as_sshd(&jitd, login_wait(&pia, None)));
            assert_eq!(code, ErrorCode::PolicyDenied);
            assert!(
                message.contains(&format!("already waiting for approval of {}", view.id)),
                "{message}"
            );
        }
        let gone = as_sshd(
            &jitd,
            Request::LoginAbandon {
                id: view.id,
                why: LoginEnd::ClientGone,
            },
        );
        assert!(
            matches!(&gone, Response::Request { request } if request.state == State::Cancelled),
            "{gone:?}"
        );
    }
    let (code, message) = refusal(as_sshd(&jitd, login_wait(&pia, None)));
    assert_eq!(code, ErrorCode::PolicyDenied);
    assert!(message.contains("too many"), "{message}");
}
