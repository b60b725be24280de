//! Notification stories through the real daemon: webhooks on a real HTTP server on 127.0.0.1
//! hear of requests and decisions in both formats, failures are retried, a hung endpoint holds
//! up nothing, the bearer token stays secret, and approvers logged in on the host see a notice
//! on their own terminals.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use jit_tests::http::{HttpServer, Reply};
use jit_tests::journal::PrivateJournald;
use jit_tests::pty::Terminal;
use jit_tests::{ok, text, Daemon, TempDir, TestGroup, TestUser};

const TOKEN: &str = "tok-9f2c41d7e0a8-notify-secret";

/// A notifier as an administrator writes it: the URL (whose path stands for a secret) in a
/// root-only `url_file`, since the test config, like /etc/jit/jitd.toml, is world-readable.
fn notifier(server: &HttpServer, format: &str, more: &str) -> String {
    format!(
        "[[notifier]]\nurl_file = \"{}\"\nformat = \"{format}\"\n{more}\n",
        server.url_file().display()
    )
}

/// A token file as an administrator would write it: root's, mode 600.
fn token_file(dir: &Path, mode: u32) -> PathBuf {
    let path = dir.join("webhook.token");
    std::fs::write(&path, format!("{TOKEN}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

fn event_is(name: &'static str) -> impl Fn(&serde_json::Value) -> bool {
    move |v| v["event"] == name
}

#[test]
fn approvers_hear_of_a_request_and_the_requester_of_each_decision_with_a_secret_token() {
    let server = HttpServer::start();
    let secrets = TempDir::new("token");
    let token = token_file(secrets.path(), 0o600);
    let journald = PrivateJournald::start();
    let wrapper = journald.enter();
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    let d = Daemon::start_custom(
        &notifier(
            &server,
            "json",
            &format!("token_file = \"{}\"", token.display()),
        ),
        &wrapper,
        |_| {},
    );
    let op = TestUser::create("op");
    let id = ok(d.elevate_as(
        &op,
        &[
            "--no-wait",
            "--for",
            "30m",
            "--reason",
            "deploy <web> & db",
            "--ticket",
            "INC-42",
            "--",
            "/usr/bin/id",
            "-u",
        ],
    ));

    let asked = &server.wait_for(1, Duration::from_secs(5), event_is("requested"))[0];
    assert_eq!(asked.method, "POST");
    assert_eq!(asked.path, "/hooks/T0/B0/path-secret");
    assert_eq!(asked.header("content-type"), Some("application/json"));
    assert_eq!(
        asked.header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    let body = asked.json();
    assert_eq!(body["request_id"], id.as_str());
    assert_eq!(body["user"], op.name.as_str());
    assert_eq!(body["command"], "/usr/bin/id -u");
    assert_eq!(body["reason"], "deploy <web> & db");
    assert_eq!(body["ticket"], "INC-42");
    assert_eq!(body["duration"], "30m");
    assert_eq!(body["duration_secs"], 1800);
    assert_eq!(body["audience"], "approvers");
    assert_eq!(body["message_id"], "6a1b0f2e8c7d4e31a9f05b3c2d1e0f01");
    assert_eq!(body["approve_command"], format!("jitd approve {id}"));
    assert_eq!(
        body["deny_command"],
        format!("jitd deny {id} --reason \"…\"")
    );
    assert!(body["time"].as_str().unwrap().ends_with('Z'));

    // The command the approver was handed works as printed.
    ok(d.jitd(&["approve", &id]));
    let approved = server.wait_for(1, Duration::from_secs(5), event_is("approved"))[0].json();
    assert_eq!(approved["approver"], "root");
    assert_eq!(approved["user"], op.name.as_str());
    assert_eq!(approved["audience"], "requester");
    assert!(approved["expires"].as_str().unwrap().ends_with('Z'));
    assert!(approved["approve_command"].is_null());
    ok(d.jitd(&["revoke", &id, "--reason", "enough"]));
    let revoked = server.wait_for(1, Duration::from_secs(5), event_is("revoked"))[0].json();
    assert_eq!(revoked["approver"], "root");

    // The token and the URL's secret path are nowhere in jitd's logs or the audit trail.
    let audit_log = std::fs::read_to_string(d.state_dir().join("audit.log")).unwrap();
    // journald's own start-up lines are there from the start: wait for the story's last event.
    let revoked_in_journal = journald.query(
        &[
            format!("JIT_REQUEST_ID={id}"),
            "JIT_EVENT=revoked".to_string(),
        ],
        1,
    );
    assert_eq!(
        revoked_in_journal.len(),
        1,
        "the revocation reached the journal"
    );
    let journal: Vec<String> = journald
        .query(&[], 1)
        .iter()
        .map(|e| e.to_string())
        .collect();
    assert!(
        journal.iter().any(|e| e.contains(&id)),
        "journal has the story"
    );
    for (name, log) in [
        ("stderr", d.log()),
        ("audit.log", audit_log),
        ("journal", journal.join("\n")),
    ] {
        assert!(!log.contains(TOKEN), "the token leaked into {name}");
        assert!(!log.contains("path-secret"), "the URL leaked into {name}");
    }
}

#[test]
fn a_slack_webhook_gets_escaped_text_and_only_the_events_it_asked_for() {
    let slack = HttpServer::start();
    let witness = HttpServer::start();
    let d = Daemon::start_with(&format!(
        "{}{}",
        notifier(&slack, "slack", "events = [\"requested\"]"),
        notifier(&witness, "json", "")
    ));
    let op = TestUser::create("op");
    let reason = "urgent <!channel>\n*fake line* & more";
    let id = ok(d.elevate_as(
        &op,
        &["--no-wait", "--reason", reason, "--", "/usr/bin/true"],
    ));
    let body = slack.wait_for(1, Duration::from_secs(5), |_| true)[0].json();
    let fields: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(fields, ["text"], "an incoming-webhook body");
    let said = body["text"].as_str().unwrap();
    assert!(
        said.starts_with(&format!("*{}* asks for `/usr/bin/true` for 15m", op.name)),
        "{said}"
    );
    assert!(
        said.contains("Reason: `urgent &lt;!channel&gt;\\n*fake line* &amp; more`"),
        "{said}"
    );
    assert!(!said.contains("<!channel>"), "no mention can be forged");
    assert!(
        said.contains(&format!("Approve: `jitd approve {id}`")),
        "{said}"
    );
    assert!(
        said.contains(&format!("Deny: `jitd deny {id} --reason \"…\"`")),
        "{said}"
    );

    ok(d.jitd(&["deny", &id, "--reason", "not now"]));
    witness.wait_for(1, Duration::from_secs(5), event_is("denied"));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(slack.requests().len(), 1, "`events` keeps the denial away");
}

#[test]
fn a_failing_endpoint_gets_the_same_notification_again_until_it_answers() {
    let server = HttpServer::start();
    server.answer_next(&[Reply::Status(500), Reply::Status(503)]);
    let d = Daemon::start_with(&notifier(&server, "json", "events = [\"requested\"]"));
    let op = TestUser::create("op");
    let started = Instant::now();
    let id = ok(d.elevate_as(&op, &["--no-wait", "--reason", "x", "--", "/usr/bin/id"]));
    let tries = server.wait_for(3, Duration::from_secs(15), event_is("requested"));
    let waited = started.elapsed();
    assert_eq!(tries.len(), 3);
    assert!(tries.iter().all(|t| t.body == tries[0].body), "same body");
    assert_eq!(tries[0].json()["request_id"], id.as_str());
    // Backoff: 1 s, then 2 s.
    assert!(waited >= Duration::from_secs(3), "{waited:?}");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(server.requests().len(), 3, "delivered once, not again");
    assert!(!d.log().contains("failed after"), "{}", d.log());
}

#[test]
fn a_refusing_endpoint_is_logged_with_its_status_without_the_secret_url() {
    let server = HttpServer::start();
    server.answer_always(Reply::Status(404));
    let d = Daemon::start_with(&notifier(&server, "slack", "events = [\"requested\"]"));
    let op = TestUser::create("op");
    ok(d.elevate_as(&op, &["--no-wait", "--reason", "x", "--", "/usr/bin/id"]));
    let deadline = Instant::now() + Duration::from_secs(5);
    while !d.log().contains("HTTP 404") {
        assert!(Instant::now() < deadline, "no failure logged:\n{}", d.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = d.log();
    assert!(
        log.contains("failed after 1 attempt(s): HTTP 404"),
        "a 404 is not retried: {log}"
    );
    assert!(log.contains(&format!("http://127.0.0.1:{}", server_port(&server))));
    assert!(!log.contains("path-secret"), "{log}");
    assert_eq!(server.requests().len(), 1);
}

fn server_port(server: &HttpServer) -> String {
    server
        .url()
        .trim_start_matches("http://127.0.0.1:")
        .split('/')
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn a_hung_endpoint_delays_neither_decisions_nor_expiry() {
    let server = HttpServer::start();
    server.answer_always(Reply::Hang);
    let d = Daemon::start_with(&notifier(&server, "json", ""));
    let op = TestUser::create("op");
    let id = ok(d.elevate_as(
        &op,
        &[
            "--no-wait",
            "--for",
            "2s",
            "--reason",
            "x",
            "--",
            "/usr/bin/id",
        ],
    ));
    server.wait_for(1, Duration::from_secs(5), event_is("requested"));
    // What waiting on the hung endpoint would cost: its request's timeout (5 s in the
    // webhook). Under it, with room for a loaded machine: bounds that tell waiting from not
    // waiting, not a measure of speed.
    let hung = Duration::from_millis(4900);
    let started = Instant::now();
    ok(d.jitd(&["approve", &id]));
    let approving = started.elapsed();
    assert!(approving < hung, "approve took {approving:?}");
    d.wait_for_state(&id, "expired", Duration::from_secs(10));
    let expiring = started.elapsed();
    assert!(expiring < hung, "a 2 s grant ended after {expiring:?}");
    eprintln!("approve: {approving:?}; approve to expired: {expiring:?}");
}

#[test]
fn an_unprotected_token_file_stops_jitd_from_starting() {
    let dir = TempDir::new("badtoken");
    let token = token_file(dir.path(), 0o644);
    let config = dir.path().join("jitd.toml");
    std::fs::create_dir_all(dir.path().join("state")).unwrap();
    std::fs::create_dir_all(dir.path().join("sudoers.d")).unwrap();
    std::fs::write(
        &config,
        format!(
            "socket = \"{0}/jitd.sock\"\nstate_dir = \"{0}/state\"\nsudoers_dir = \"{0}/sudoers.d\"\n\
             [[notifier]]\nurl = \"http://127.0.0.1:9\"\nformat = \"json\"\ntoken_file = \"{1}\"\n",
            dir.path().display(),
            token.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(jit_tests::bin("jitd"))
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("jitd started with a world-readable token file");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let said = text(&out.stderr);
    assert!(
        said.contains("chmod 600") && said.contains("token_file"),
        "{said}"
    );
    assert!(!said.contains(TOKEN), "{said}");
}

/// The attack: jitd.toml is world-readable (approvers run `jitd explain` from it), so a Slack
/// webhook URL written in it lets any local user post fake approvals into the approvers'
/// channel. jitd and check-config refuse it and say to use `url_file`; a `url_file` others
/// can read is refused too.
#[test]
fn a_secret_webhook_url_any_user_can_read_keeps_jitd_from_starting() {
    let slack = "https://hooks.slack.com/services/T0/B0/path-secret";
    let inline = format!("[[notifier]]\nurl = \"{slack}\"\nformat = \"slack\"\n");
    let (out, dir) = Daemon::start_refused(&inline, |_| {});
    let config = dir.path().join("jitd.toml");
    // What the attacker sees: any user reads the URL.
    let mallory = TestUser::create("mal");
    let seen = mallory.command("cat").arg(&config).output().unwrap();
    assert!(text(&seen.stdout).contains("path-secret"), "{seen:?}");
    // What jitd says.
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    let said = text(&out.stderr);
    assert!(
        said.contains("inline secret URL") && said.contains("url_file"),
        "{said}"
    );
    assert!(
        !said.contains("path-secret"),
        "the refusal repeats no secret: {said}"
    );
    let check = Command::new(jit_tests::bin("jitd"))
        .arg("check-config")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(4), "{check:?}");
    assert!(
        text(&check.stderr).contains("inline secret URL"),
        "{check:?}"
    );

    // The same URL in a url_file only root can read: check-config passes.
    let url_file = dir.path().join("slack.url");
    std::fs::write(&url_file, format!("{slack}\n")).unwrap();
    std::fs::set_permissions(&url_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let moved = std::fs::read_to_string(&config).unwrap().replace(
        &format!("url = \"{slack}\""),
        &format!("url_file = \"{}\"", url_file.display()),
    );
    std::fs::write(&config, moved).unwrap();
    let check = Command::new(jit_tests::bin("jitd"))
        .arg("check-config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(check.status.success(), "{check:?}");
    // A url_file others can read is the same leak: refused, by check-config and by jitd.
    std::fs::set_permissions(&url_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let check = Command::new(jit_tests::bin("jitd"))
        .arg("check-config")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(4), "{check:?}");
    let said = text(&check.stderr);
    assert!(
        said.contains("url_file") && said.contains("chmod 600"),
        "{said}"
    );
    assert!(!said.contains("path-secret"), "{said}");
    let extra = format!(
        "[[notifier]]\nurl_file = \"{}\"\nformat = \"slack\"\n",
        url_file.display()
    );
    let (out, _dir) = Daemon::start_refused(&extra, |_| {});
    let said = text(&out.stderr);
    assert!(
        said.contains("url_file") && said.contains("chmod 600"),
        "{said}"
    );
}

/// A logged-in user's terminal.
fn tty_of(user: &TestUser) -> Terminal {
    Terminal::open(80, 24).owned_by(user.uid)
}

/// A utmp login record, as login(1) or sshd writes it.
fn utmp_login(user: &TestUser, line: &str) -> Vec<u8> {
    // SAFETY: utmpx is plain old data; all zeroes is an empty record.
    let mut u: libc::utmpx = unsafe { std::mem::zeroed() };
    u.ut_type = libc::USER_PROCESS;
    u.ut_pid = std::process::id() as i32;
    let copy = |dst: &mut [libc::c_char], src: &str| {
        for (d, s) in dst.iter_mut().zip(src.bytes()) {
            *d = s as libc::c_char;
        }
    };
    copy(&mut u.ut_user, &user.name);
    copy(&mut u.ut_line, line);
    copy(&mut u.ut_id, line.trim_start_matches("pts/"));
    // SAFETY: the bytes of a fully initialised repr(C) value we own.
    unsafe {
        std::slice::from_raw_parts(
            (&u as *const libc::utmpx).cast::<u8>(),
            std::mem::size_of::<libc::utmpx>(),
        )
    }
    .to_vec()
}

#[test]
fn approvers_logged_in_on_the_host_see_the_request_on_their_terminal() {
    let approvers = TestGroup::create("appr");
    let approver = TestUser::create("ap");
    approvers.add(&approver);
    let bystander = TestUser::create("by");
    let op = TestUser::create("op");
    let approver_tty = tty_of(&approver);
    let bystander_tty = tty_of(&bystander);
    let requester_tty = tty_of(&op);
    let records = TempDir::new("utmp");
    let utmp = records.path().join("utmp");
    let mut logins = utmp_login(&approver, &approver_tty.line);
    logins.extend(utmp_login(&bystander, &bystander_tty.line));
    logins.extend(utmp_login(&op, &requester_tty.line));
    std::fs::write(&utmp, logins).unwrap();
    let d = Daemon::start_with(&format!(
        "approver_groups = [\"{}\"]\nutmp_file = \"{}\"\n",
        approvers.name,
        utmp.display()
    ));

    let id = ok(d.elevate_as(
        &op,
        &[
            "--no-wait",
            "--reason",
            "fix\x1b[2Jdisk",
            "--",
            "/usr/bin/df",
        ],
    ));
    let approve = format!("jitd approve {id}");
    let seen = approver_tty.read(Duration::from_secs(5), &approve);
    assert!(
        seen.contains(&format!(
            "[jit] jit: {} asks for /usr/bin/df for 15m",
            op.name
        )),
        "{seen:?}"
    );
    assert!(
        seen.contains(&approve) && seen.contains(&format!("jitd deny {id}")),
        "{seen:?}"
    );
    assert!(
        !seen.contains('\x1b'),
        "control characters are escaped: {seen:?}"
    );
    assert_eq!(seen.trim().lines().count(), 1, "{seen:?}");
    assert_eq!(
        bystander_tty.read(Duration::from_millis(300), ""),
        "",
        "not an approver"
    );
    assert_eq!(
        requester_tty.read(Duration::from_millis(100), ""),
        "",
        "not their own"
    );
}

#[test]
fn terminal_notices_can_be_turned_off() {
    let approvers = TestGroup::create("appr");
    let approver = TestUser::create("ap");
    approvers.add(&approver);
    let op = TestUser::create("op");
    let tty = tty_of(&approver);
    let records = TempDir::new("utmp");
    let utmp = records.path().join("utmp");
    std::fs::write(&utmp, utmp_login(&approver, &tty.line)).unwrap();
    let d = Daemon::start_with(&format!(
        "approver_groups = [\"{}\"]\nutmp_file = \"{}\"\nnotify_terminals = false\n",
        approvers.name,
        utmp.display()
    ));
    ok(d.elevate_as(&op, &["--no-wait", "--reason", "x", "--", "/usr/bin/df"]));
    assert_eq!(tty.read(Duration::from_millis(700), ""), "");
}

#[test]
fn notifiers_route_by_role_and_every_one_hears_of_break_glass() {
    let oncall = TestGroup::create("onc");
    let op = TestUser::create("op");
    oncall.add(&op);
    let db_hook = HttpServer::start();
    let web_hook = HttpServer::start();
    let d = Daemon::start_with(&format!(
        "{}{}\n[[role]]\nname = \"web\"\ncommands = [\"/usr/bin/id\"]\nrequester_groups = [\"{g}\"]\n\n\
         [[role]]\nname = \"glass\"\ncommands = [\"/usr/bin/df\"]\nrequester_groups = [\"{g}\"]\nbreak_glass = true\nmax_duration = \"30m\"\n",
        notifier(&db_hook, "json", "events = [\"requested\"]\nroles = [\"db\"]"),
        notifier(&web_hook, "json", "events = [\"requested\"]\nroles = [\"web\"]"),
        g = oncall.name
    ));
    let asked = ok(d.elevate_as(
        &op,
        &[
            "--no-wait",
            "--role",
            "web",
            "--reason",
            "x",
            "--",
            "/usr/bin/id",
        ],
    ));
    let heard = web_hook.wait_for(1, Duration::from_secs(5), event_is("requested"));
    assert_eq!(heard[0].json()["request_id"], asked.as_str());
    assert_eq!(heard[0].json()["role"], "web");

    let glass = ok(d.elevate_as(
        &op,
        &[
            "--no-wait",
            "--role",
            "glass",
            "--reason",
            "fire",
            "--",
            "/usr/bin/df",
        ],
    ));
    for hook in [&db_hook, &web_hook] {
        let alarm = hook.wait_for(1, Duration::from_secs(5), event_is("break_glass"))[0].json();
        assert_eq!(alarm["request_id"], glass.as_str());
        assert_eq!(alarm["priority"], "critical");
        assert_eq!(alarm["audience"], "everyone");
        assert_eq!(alarm["user"], op.name.as_str());
    }
    // Delivery is in order, so the db hook would have had the web request by now.
    assert_eq!(
        db_hook.requests().len(),
        1,
        "roles keep the web request away"
    );
    assert_eq!(web_hook.requests().len(), 2);
}

#[test]
fn the_requester_hears_that_their_grant_is_about_to_end() {
    let server = HttpServer::start();
    let d = Daemon::start_with(&format!(
        "warn_before = \"5m\"\n{}",
        notifier(&server, "json", "events = [\"expiring\"]")
    ));
    let op = TestUser::create("op");
    let id = ok(d.jitd(&["grant", &op.name, "--for", "2m", "--reason", "x", "--ssh"]));
    let warning = server.wait_for(1, Duration::from_secs(5), event_is("expiring"))[0].json();
    assert_eq!(warning["request_id"], id.as_str());
    assert_eq!(
        warning["user"],
        op.name.as_str(),
        "addressed to the requester"
    );
    assert_eq!(warning["audience"], "requester");
    assert_eq!(warning["command"], "ssh");
    assert!(warning["expires"].as_str().unwrap().ends_with('Z'));
    assert!(
        warning["message"].as_str().unwrap().contains("ends in"),
        "{warning}"
    );
}
