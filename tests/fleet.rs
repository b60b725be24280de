//! Fleet mode, as the people who use it meet it: several real jitd "hosts" on this machine
//! (each its own socket, state, sudoers directory, cgroup and host name) share a real 3-member
//! etcd cluster that the test starts and stops. Requests are asked on one host, approved with
//! an approver's own SSH key (real ssh-keygen), and enforced by every host they name, each
//! checking the signature against its own allowed_signers and its own policy.
//!
//! The attacker tests write to etcd directly, as a compromised store (or its administrator)
//! would, and check that no host installs anything and that each says why in its audit log.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use jit_tests::etcd::EtcdCluster;
use jit_tests::{ok, text, unique, Daemon, TempDir, TestGroup, TestUser};

/// Generous: the goal is 1 s; the deadline only keeps a broken build from hanging.
const ENFORCED_WITHIN: Duration = Duration::from_secs(10);

/// An approver's SSH key pair, in a directory only they can read (ssh-keygen refuses a key
/// others can read).
struct Key {
    _dir: TempDir,
    private: PathBuf,
    public: String,
}

impl Key {
    fn new(owner: &TestUser) -> Key {
        let dir = TempDir::new("fleet-key");
        let private = dir.path().join("id_ed25519");
        let out = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", &owner.name, "-f"])
            .arg(&private)
            .output()
            .expect("ssh-keygen");
        assert!(out.status.success(), "ssh-keygen: {}", text(&out.stderr));
        let public = fs::read_to_string(private.with_extension("pub")).expect("public key");
        for p in [dir.path(), private.as_path()] {
            std::os::unix::fs::chown(p, Some(owner.uid), Some(owner.gid)).expect("chown key");
        }
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).expect("chmod");
        Key {
            _dir: dir,
            private,
            public: public.trim().to_string(),
        }
    }

    /// `principal ssh-ed25519 AAAA...`: one allowed_signers line.
    fn signer_line(&self, principal: &str) -> String {
        let mut parts = self.public.split_whitespace();
        format!(
            "{principal} {} {}\n",
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default()
        )
    }

    /// Signs `message` as `ssh-keygen -Y sign` does (for the tests that play the store).
    fn sign(&self, message: &str) -> String {
        use std::io::Write;
        let mut child = Command::new("ssh-keygen")
            .args(["-q", "-Y", "sign", "-n", "jit-grant@v1", "-f"])
            .arg(&self.private)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("ssh-keygen -Y sign");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(message.as_bytes())
            .expect("write message");
        let out = child.wait_with_output().expect("ssh-keygen output");
        assert!(
            out.status.success(),
            "ssh-keygen -Y sign: {}",
            text(&out.stderr)
        );
        text(&out.stdout)
    }
}

/// People and trust anchors shared by the hosts of one test.
struct Fleet {
    etcd: EtcdCluster,
    prefix: String,
    devs: TestGroup,
    dba: TestGroup,
    alice: TestUser,
    bob: TestUser,
    bob_key: Key,
    signers: TempDir,
}

impl Fleet {
    fn new() -> Fleet {
        let etcd = EtcdCluster::start();
        let devs = TestGroup::create("devs");
        let dba = TestGroup::create("dba");
        let alice = TestUser::create("alice");
        let bob = TestUser::create("bob");
        devs.add(&alice);
        dba.add(&bob);
        let bob_key = Key::new(&bob);
        let signers = TempDir::new("fleet-signers");
        let f = Fleet {
            etcd,
            prefix: format!("/{}", unique("jit")),
            devs,
            dba,
            alice,
            bob,
            bob_key,
            signers,
        };
        f.set_signers(&f.bob_key.signer_line(&f.bob.name));
        f
    }

    fn signers_file(&self) -> PathBuf {
        self.signers.path().join("allowed_signers")
    }

    fn set_signers(&self, text: &str) {
        fs::write(self.signers_file(), text).expect("allowed_signers");
        fs::set_permissions(self.signers_file(), fs::Permissions::from_mode(0o644)).expect("chmod");
    }

    /// A jitd for host `name`, with the fleet's shared policy.
    fn host(&self, name: &str) -> Daemon {
        self.host_with(name, "1h")
    }

    /// A host whose policy caps the role at `max` (hosts decide the length themselves).
    fn host_with(&self, name: &str, max: &str) -> Daemon {
        self.host_configured(name, &format!("max_duration = \"{max}\""), "")
    }

    /// A host with `role_extra` in the role's table and `fleet_extra` in `[fleet]`.
    fn host_configured(&self, name: &str, role_extra: &str, fleet_extra: &str) -> Daemon {
        let endpoints: Vec<String> = self
            .etcd
            .endpoints()
            .iter()
            .map(|e| format!("\"{e}\""))
            .collect();
        let config = format!(
            r#"require_reason = false
[[role]]
name = "db"
commands = ["/usr/bin/systemctl restart *"]
ssh = true
requester_groups = ["{devs}"]
approver_groups = ["{dba}"]
{role_extra}

[fleet]
endpoints = [{endpoints}]
host_name = "{name}"
prefix = "{prefix}"
allowed_signers = "{signers}"
{fleet_extra}
"#,
            devs = self.devs.name,
            dba = self.dba.name,
            endpoints = endpoints.join(", "),
            prefix = self.prefix,
            signers = self.signers_file().display(),
        );
        let d = Daemon::start_with(&config);
        wait_until(ENFORCED_WITHIN, "the host to watch the store", || {
            let out = d.jitd(&["fleet", "status", "--json"]);
            out.status.success() && json(&out)["watching"] == true
        });
        d
    }

    /// alice asks on `origin` for `hosts`; returns the request id.
    fn ask(&self, origin: &Daemon, hosts: &str, command: &[&str]) -> String {
        let mut args = vec![
            "--hosts",
            hosts,
            "--reason",
            "deploy",
            "--for",
            "10m",
            "--no-wait",
            "--",
        ];
        args.extend_from_slice(command);
        let out = origin.elevate_as(&self.alice, &args);
        assert!(
            out.status.success(),
            "jit-elevate --hosts: {}",
            text(&out.stderr)
        );
        text(&out.stdout).trim().to_string()
    }

    fn approve(&self, on: &Daemon, id: &str) {
        self.wait_seen(on, id);
        let key = self.bob_key.private.display().to_string();
        ok(on.jitd_as(&self.bob, &["approve", id, "--key", &key]));
    }

    /// Waits until `on` has read request `id` from the store (its watch delivers within
    /// milliseconds, but a host other than the origin learns of a request only then).
    fn wait_seen(&self, on: &Daemon, id: &str) {
        wait_until(ENFORCED_WITHIN, "the host to hear of the request", || {
            on.jitd_as(&self.bob, &["show", id]).status.success()
        });
    }

    fn etcdctl(&self, args: &[&str]) -> String {
        let out = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.etcd.endpoints().join(",")))
            .args(args)
            .output()
            .expect("etcdctl");
        assert!(
            out.status.success(),
            "etcdctl {args:?}: {}",
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    fn put(&self, key: &str, value: &str) {
        self.etcdctl(&["put", key, value]);
    }

    fn get(&self, key: &str) -> String {
        self.etcdctl(&["get", "--print-value-only", key])
            .trim_end()
            .to_string()
    }
}

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

fn wait_until(within: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn drop_in(host: &Daemon, id: &str) -> PathBuf {
    host.dir().join("sudoers.d").join(format!("jit_{id}"))
}

fn audit_log(host: &Daemon) -> String {
    fs::read_to_string(host.state_dir().join("audit.log")).unwrap_or_default()
}

fn sha256_hex(bytes: &[u8]) -> String {
    let out = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().expect("stdin").write_all(bytes)?;
            c.wait_with_output()
        })
        .expect("sha256sum");
    text(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

fn approval_message(sha: &str, id: &str, approver: &str, at: &str) -> String {
    format!(
        "jit-approval v1\nrequest_sha256={sha}\nid={id}\napprover={approver}\napproved_at={at}\n"
    )
}

fn now_rfc3339() -> String {
    let out = Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .expect("date");
    text(&out.stdout).trim().to_string()
}

#[test]
fn a_request_for_db_hosts_approved_on_web_is_enforced_on_the_db_hosts_only_and_revoked_everywhere()
{
    let fleet = Fleet::new();
    let web1 = fleet.host("web-1");
    let db1 = fleet.host("db-1");
    let db2 = fleet.host("db-2");
    let id = fleet.ask(
        &web1,
        "db-*",
        &["/usr/bin/systemctl", "restart", "postgresql"],
    );
    // Nothing anywhere before the approval.
    std::thread::sleep(Duration::from_millis(300));
    for h in [&web1, &db1, &db2] {
        assert!(!drop_in(h, &id).exists(), "installed before approval");
    }
    let shown = json(&web1.jitd_as(&fleet.bob, &["show", &id, "--json"]));
    assert_eq!(shown["state"], "pending", "{shown}");
    assert_eq!(shown["fleet"]["origin"], "web-1");
    assert_eq!(
        shown["uid"], fleet.alice.uid,
        "the requester's uid on this host, by name"
    );
    assert_eq!(shown["fleet"]["for_this_host"], false);
    wait_until(
        ENFORCED_WITHIN,
        "an approver on db-1 to see the request",
        || {
            json(&db1.jitd_as(&fleet.bob, &["list", "--json"]))
                .as_array()
                .is_some_and(|l| l.iter().any(|r| r["id"] == id.as_str()))
        },
    );

    fleet.approve(&web1, &id);
    wait_until(ENFORCED_WITHIN, "the drop-in on db-1 and db-2", || {
        drop_in(&db1, &id).exists() && drop_in(&db2, &id).exists()
    });
    assert!(!drop_in(&web1, &id).exists(), "web-1 is not a db host");
    let rule = fs::read_to_string(drop_in(&db1, &id)).expect("drop-in");
    assert!(
        rule.contains(&format!("#{} ALL=(root) NOTAFTER=", fleet.alice.uid))
            && rule.contains("/usr/bin/systemctl restart postgresql"),
        "{rule}"
    );
    assert!(
        audit_log(&db2).contains(&fleet.bob.name),
        "db-2's audit log names the approver"
    );
    wait_until(ENFORCED_WITHIN, "both hosts' acknowledgements", || {
        let v = json(&web1.jitd(&["show", &id, "--json"]));
        let hosts = v["hosts"].as_array().cloned().unwrap_or_default();
        ["db-1", "db-2"].iter().all(|h| {
            hosts
                .iter()
                .any(|a| a["host"] == *h && a["state"] == "installed")
        })
    });

    // Revoked on db-2: gone on db-1 too.
    ok(db2.jitd_as(&fleet.bob, &["revoke", &id, "--reason", "done with it"]));
    wait_until(ENFORCED_WITHIN, "the drop-ins to go", || {
        !drop_in(&db1, &id).exists() && !drop_in(&db2, &id).exists()
    });
    assert_eq!(db1.state_of(&id), "revoked");
}

#[test]
fn approvals_a_compromised_store_could_write_install_nothing_and_each_host_says_why() {
    let fleet = Fleet::new();
    let carol = TestUser::create("carol");
    fleet.dba.add(&carol);
    let carol_key = Key::new(&carol); // an approver of role db, her key not in allowed_signers
    let dave = TestUser::create("dave");
    let dave_key = Key::new(&dave); // listed in allowed_signers, but no approver of role db
    let alice_key = Key::new(&fleet.alice);
    fleet.dba.add(&fleet.alice); // the requester approves for others, never for herself
    fleet.set_signers(&format!(
        "{}{}{}",
        fleet.bob_key.signer_line(&fleet.bob.name),
        dave_key.signer_line(&dave.name),
        alice_key.signer_line(&fleet.alice.name)
    ));
    let web1 = fleet.host("web-1");
    let db1 = fleet.host("db-1");
    let id = fleet.ask(
        &web1,
        "db-*",
        &["/usr/bin/systemctl", "restart", "postgresql"],
    );
    let req_key = format!("{}/v1/g/req/web-1/{id}", fleet.prefix);
    let bytes = fleet.get(&req_key);
    let sha = sha256_hex(bytes.as_bytes());
    let at = now_rfc3339();
    let forge = |who: &str, key: &Key, for_id: &str| {
        let sig = key.sign(&approval_message(&sha, for_id, who, &at));
        let record = serde_json::json!({"request_sha256": sha, "approved_at": at, "sig": sig});
        fleet.put(
            &format!("{}/v1/g/ok/{who}/{for_id}", fleet.prefix),
            &record.to_string(),
        );
    };
    forge(&carol.name, &carol_key, &id);
    forge(&dave.name, &dave_key, &id);
    forge(&fleet.alice.name, &alice_key, &id);
    let said = |needle: String| {
        wait_until(ENFORCED_WITHIN, &needle, || {
            audit_log(&db1).contains(&needle)
        });
    };
    said(format!(
        "approval of {id} by {} does not count on db-1: signature",
        carol.name
    ));
    said(format!(
        "{} is not an approver of role db on db-1",
        dave.name
    ));
    said(format!(
        "{} cannot approve their own request",
        fleet.alice.name
    ));
    assert!(
        !drop_in(&db1, &id).exists(),
        "no valid approval, nothing installed"
    );
    assert!(
        audit_log(&db1).contains("fleet_refused"),
        "the refusals are fleet_refused records"
    );

    // bob's genuine approval counts...
    forge(&fleet.bob.name, &fleet.bob_key, &id);
    wait_until(ENFORCED_WITHIN, "bob's approval to count", || {
        drop_in(&db1, &id).exists()
    });
    // ...until the store swaps the request bytes bob signed (say, for another command).
    let tampered = bytes.replace("postgresql", "ssh");
    assert_ne!(tampered, bytes);
    fleet.put(&req_key, &tampered);
    wait_until(
        ENFORCED_WITHIN,
        "the grant to end with its signed bytes gone",
        || !drop_in(&db1, &id).exists(),
    );
    said(format!(
        "approval of {id} by {} does not count on db-1: it signs other request bytes",
        fleet.bob.name
    ));
    assert_eq!(db1.state_of(&id), "revoked");

    // A request the store made up, with a command sudoers cannot express (a newline), and a
    // genuine signature over it: refused as a local request would be, nothing installed.
    let forged_id = "zzzzzzzzz1";
    let forged = bytes.replace(&id, forged_id).replace(
        "\"postgresql\"",
        "\"postgresql\\nALL ALL=(ALL) NOPASSWD: ALL\"",
    );
    assert_ne!(
        forged,
        bytes.replace(&id, forged_id),
        "the command was changed"
    );
    fleet.put(
        &format!("{}/v1/g/req/web-1/{forged_id}", fleet.prefix),
        &forged,
    );
    let forged_sha = sha256_hex(forged.as_bytes());
    let sig = fleet.bob_key.sign(&approval_message(
        &forged_sha,
        forged_id,
        &fleet.bob.name,
        &at,
    ));
    let record = serde_json::json!({"request_sha256": forged_sha, "approved_at": at, "sig": sig});
    fleet.put(
        &format!("{}/v1/g/ok/{}/{forged_id}", fleet.prefix, fleet.bob.name),
        &record.to_string(),
    );
    said(format!(
        "refuses fleet request {forged_id}: the command contains a control character"
    ));
    assert!(!drop_in(&db1, forged_id).exists());

    // bob's approval of one request copied under another request's id.
    let other = fleet.ask(&web1, "db-*", &["/usr/bin/systemctl", "restart", "nginx"]);
    let copied = fleet.get(&format!("{}/v1/g/ok/{}/{id}", fleet.prefix, fleet.bob.name));
    fleet.put(
        &format!("{}/v1/g/ok/{}/{other}", fleet.prefix, fleet.bob.name),
        &copied,
    );
    said(format!("approval of {other} by {}", fleet.bob.name));
    assert!(
        !drop_in(&db1, &other).exists(),
        "a copied approval installs nothing"
    );
}

#[test]
fn with_every_member_down_grants_expire_on_time_and_local_requests_still_work() {
    let mut fleet = Fleet::new();
    let web1 = fleet.host("web-1");
    // db-1's own policy caps the role at 4 s, whatever the request asked for.
    let db1 = fleet.host_with("db-1", "4s");
    let id = fleet.ask(
        &web1,
        "db-1",
        &["/usr/bin/systemctl", "restart", "postgresql"],
    );
    // A member killed (-9) before the approval: it lands through another.
    fleet.etcd.kill9(0);
    fleet.approve(&web1, &id);
    wait_until(ENFORCED_WITHIN, "the drop-in on db-1", || {
        drop_in(&db1, &id).exists()
    });
    let expires = db1.show(&id)["expires_at"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    // The whole store goes away; expiry needs none of it.
    for m in 1..3 {
        fleet.etcd.stop(m);
    }
    wait_until(
        Duration::from_secs(20),
        "the grant to expire offline",
        || !drop_in(&db1, &id).exists(),
    );
    assert_eq!(db1.state_of(&id), "expired");
    let ended = db1.show(&id)["ended_at"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(ended >= expires, "ended {ended}, window until {expires}");
    // Requests for this host alone work as ever.
    let local = db1.elevate_as(
        &fleet.alice,
        &[
            "--reason",
            "local",
            "--no-wait",
            "--",
            "/usr/bin/systemctl",
            "restart",
            "cron",
        ],
    );
    assert!(
        local.status.success(),
        "a local request offline: {}",
        text(&local.stderr)
    );
    // A fleet request cannot be made, and says why.
    let fleet_ask = web1.elevate_as(
        &fleet.alice,
        &[
            "--hosts",
            "db-1",
            "--reason",
            "x",
            "--no-wait",
            "--",
            "/usr/bin/systemctl",
            "restart",
            "cron",
        ],
    );
    assert!(!fleet_ask.status.success());
    assert!(
        text(&fleet_ask.stderr).contains("cannot be reached"),
        "{}",
        text(&fleet_ask.stderr)
    );
    // The members come back: the hosts watch again.
    for m in 0..3 {
        fleet.etcd.start_member(m);
    }
    fleet.etcd.wait_healthy();
    wait_until(Duration::from_secs(30), "db-1 to watch again", || {
        json(&db1.jitd(&["fleet", "status", "--json"]))["watching"] == true
    });
}

#[test]
fn a_host_restarted_offline_enforces_its_copy_and_catches_up_on_deletions_it_missed() {
    let mut fleet = Fleet::new();
    let web1 = fleet.host("web-1");
    let mut db1 = fleet.host("db-1");
    let kept = fleet.ask(
        &web1,
        "db-1",
        &["/usr/bin/systemctl", "restart", "postgresql"],
    );
    let gone = fleet.ask(&web1, "db-1", &["/usr/bin/systemctl", "restart", "nginx"]);
    fleet.approve(&web1, &kept);
    fleet.approve(&web1, &gone);
    wait_until(ENFORCED_WITHIN, "both drop-ins", || {
        drop_in(&db1, &kept).exists() && drop_in(&db1, &gone).exists()
    });
    // Restarted with the store down: enforced from its own records.
    for m in 0..3 {
        fleet.etcd.stop(m);
    }
    db1.restart();
    assert_eq!(db1.state_of(&kept), "active");
    assert!(drop_in(&db1, &kept).exists() && drop_in(&db1, &gone).exists());
    // While db-1 is down, one grant's records are deleted and the history compacted away.
    db1.kill9();
    for m in 0..3 {
        fleet.etcd.start_member(m);
    }
    fleet.etcd.wait_healthy();
    fleet.etcdctl(&["del", &format!("{}/v1/g/req/web-1/{gone}", fleet.prefix)]);
    fleet.etcdctl(&[
        "del",
        &format!("{}/v1/g/ok/{}/{gone}", fleet.prefix, fleet.bob.name),
    ]);
    assert!(fleet
        .get(&format!("{}/v1/g/req/web-1/{gone}", fleet.prefix))
        .is_empty());
    fleet.etcd.compact();
    db1.restart();
    wait_until(
        ENFORCED_WITHIN,
        "db-1 to end what vanished from the store",
        || !drop_in(&db1, &gone).exists(),
    );
    assert!(audit_log(&db1).contains("removed from the fleet store"));
    assert_eq!(db1.state_of(&gone), "revoked");
    assert!(drop_in(&db1, &kept).exists(), "what still holds stays");
    assert_eq!(db1.state_of(&kept), "active");
}

#[test]
fn the_leader_killed_during_approvals_loses_none_and_a_waiting_requester_hears_the_decision() {
    let mut fleet = Fleet::new();
    let web1 = fleet.host("web-1");
    let db1 = fleet.host("db-1");
    let units = ["nginx", "postgresql", "redis", "cron"];
    let ids: Vec<String> = units
        .iter()
        .map(|u| fleet.ask(&web1, "db-1", &["/usr/bin/systemctl", "restart", u]))
        .collect();
    for id in &ids {
        fleet.wait_seen(&db1, id);
    }
    fleet.approve(&web1, &ids[0]);
    fleet.approve(&db1, &ids[1]);
    let leader = fleet.etcd.leader();
    fleet.etcd.kill9(leader);
    // The CLI's first try may meet the election (2-3 s): the approver retries, as people do.
    for (id, on) in [(&ids[2], &web1), (&ids[3], &db1)] {
        let key = fleet.bob_key.private.display().to_string();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = on.jitd_as(&fleet.bob, &["approve", id, "--key", &key]);
            if out.status.success() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "approve during the election: {}",
                text(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    wait_until(ENFORCED_WITHIN, "all four grants on db-1", || {
        ids.iter().all(|id| drop_in(&db1, id).exists())
    });
    fleet.etcd.start_member(leader);
    fleet.etcd.wait_healthy();
    wait_until(
        Duration::from_secs(20),
        "every member reachable again",
        || {
            let s = json(&db1.jitd(&["fleet", "status", "--json"]));
            s["watching"] == true
                && s["members"]
                    .as_array()
                    .is_some_and(|m| m.len() == 3 && m.iter().all(|m| m["reachable"] == true))
        },
    );

    // A requester who waits hears the decision made on another host.
    let socket = web1.socket();
    let alice = fleet.alice.identity();
    let waiting = std::thread::spawn(move || {
        alice
            .command(jit_tests::bin("jit-elevate"))
            .arg("--socket")
            .arg(&socket)
            .args([
                "--hosts", "db-1", "--reason", "deploy", "--for", "10m", "--",
            ])
            .args(["/usr/bin/systemctl", "restart", "ssh"])
            .stdin(std::process::Stdio::null())
            .output()
            .expect("jit-elevate")
    });
    let pending = wait_for_fleet_pending(&web1, &fleet.bob, &ids);
    fleet.approve(&db1, &pending);
    let out = waiting.join().expect("the waiting jit-elevate");
    assert!(out.status.success(), "jit-elevate: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), pending);
    assert!(
        text(&out.stderr).contains("approved: fleet grant"),
        "{}",
        text(&out.stderr)
    );
    wait_until(ENFORCED_WITHIN, "the waited-for grant on db-1", || {
        drop_in(&db1, &pending).exists()
    });
}

/// The id of a pending fleet request `approver` sees on `host`, other than `known`.
fn wait_for_fleet_pending(host: &Daemon, approver: &TestUser, known: &[String]) -> String {
    let deadline = Instant::now() + ENFORCED_WITHIN;
    loop {
        let listed = json(&host.jitd_as(approver, &["list", "--json"]));
        let found = listed.as_array().and_then(|l| {
            l.iter()
                .filter(|r| r["state"] == "pending" && !r["fleet"].is_null())
                .filter_map(|r| r["id"].as_str())
                .find(|id| !known.iter().any(|k| k == id))
                .map(str::to_string)
        });
        if let Some(id) = found {
            return id;
        }
        assert!(Instant::now() < deadline, "no new fleet request: {listed}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_requester_cannot_flood_the_store_past_twenty_pending_fleet_requests() {
    let fleet = Fleet::new();
    let web1 = fleet.host("web-1");
    let ask = |n: usize| {
        web1.elevate_as(
            &fleet.alice,
            &[
                "--hosts",
                "db-*",
                "--reason",
                "flood",
                "--no-wait",
                "--",
                "/usr/bin/systemctl",
                "restart",
                &format!("unit{n}"),
            ],
        )
    };
    let mut asked = 0;
    let mut n = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "neither capped nor done");
        n += 1;
        let out = ask(n);
        let err = text(&out.stderr);
        if out.status.success() {
            asked += 1;
            assert!(asked <= 20, "a 21st pending fleet request was written");
            continue;
        }
        if err.contains("too many requests") {
            // The daemon's own rate limit came first: wait, and ask again.
            std::thread::sleep(Duration::from_millis(1100));
            continue;
        }
        assert!(
            err.contains("already has 20 pending fleet requests"),
            "{err}"
        );
        assert_eq!(asked, 20);
        break;
    }
    // Only the twenty are in the store.
    let keys = fleet.etcdctl(&[
        "get",
        "--prefix",
        "--keys-only",
        &format!("{}/v1/g/req/web-1/", fleet.prefix),
    ]);
    assert_eq!(keys.lines().filter(|l| !l.is_empty()).count(), 20, "{keys}");
}

/// An RFC 3339 time `ago` before now (`date -d`'s words: "40 days ago").
fn rfc3339_ago(ago: &str) -> String {
    let out = Command::new("date")
        .args(["-u", "-d", ago, "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .expect("date");
    text(&out.stdout).trim().to_string()
}

/// `jitd fleet gc`: a request over for longer than `--older-than` (default 30 days) leaves
/// the store with its approvals, ends and acknowledgements, as do approvals whose request is
/// gone; a live request and its approval stay, and its grant stays enforced. A dry run removes
/// nothing; only root may run it; the audit log says what went; a second run finds nothing.
#[test]
fn fleet_gc_removes_what_no_host_can_act_on_and_leaves_live_grants_alone() {
    let fleet = Fleet::new();
    let db1 = fleet.host("db-1");
    let live = fleet.ask(&db1, "db-*", &["/usr/bin/systemctl", "restart", "nginx"]);
    fleet.approve(&db1, &live);
    wait_until(ENFORCED_WITHIN, "the live grant enforced", || {
        drop_in(&db1, &live).exists()
    });
    // A request of 40 days ago as the store would still hold it: the live one's record with
    // another id and old times, an approval, an end and an acknowledgement beside it.
    let v1 = format!("{}/v1", fleet.prefix);
    let mut old: serde_json::Value =
        serde_json::from_str(&fleet.get(&format!("{v1}/g/req/db-1/{live}"))).unwrap();
    let old_id = "gcold00001";
    old["id"] = old_id.into();
    old["requested_at"] = rfc3339_ago("40 days ago").into();
    old["pending_until"] = rfc3339_ago("40 days ago + 1 hour").into();
    fleet.put(&format!("{v1}/g/req/db-1/{old_id}"), &old.to_string());
    fleet.put(&format!("{v1}/g/ok/{}/{old_id}", fleet.bob.name), "{}");
    fleet.put(&format!("{v1}/g/end/db-1/{old_id}"), "{}");
    fleet.put(&format!("{v1}/a/{old_id}/db-1"), "{}");
    // An approval and an acknowledgement whose request is gone.
    let orphan = "gcorphan01";
    fleet.put(&format!("{v1}/g/ok/{}/{orphan}", fleet.bob.name), "{}");
    fleet.put(&format!("{v1}/a/{orphan}/db-1"), "{}");
    // And 150 more old requests: the answer names the oldest 100 and counts them all (a
    // frame holds 64 KiB; a run of thousands once overflowed it).
    let many: Vec<String> = (0..150).map(|n| format!("gcmany{n:04}")).collect();
    for id in &many {
        let mut r = old.clone();
        r["id"] = id.as_str().into();
        fleet.put(&format!("{v1}/g/req/db-1/{id}"), &r.to_string());
    }
    let keys = || fleet.etcdctl(&["get", "--prefix", "--keys-only", &format!("{v1}/")]);

    let refused = db1.jitd_as(&fleet.alice, &["fleet", "gc"]);
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("only root"),
        "{}",
        text(&refused.stderr)
    );

    let dry = db1.jitd(&["fleet", "gc", "--dry-run", "--json"]);
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    let dry = json(&dry);
    assert_eq!(dry["removed_count"], 151, "{dry}");
    assert_eq!(dry["removed"].as_array().unwrap().len(), 100, "{dry}");
    assert_eq!(dry["orphans"], 1, "{dry}");
    assert_eq!(dry["deleted_keys"], 0, "{dry}");
    assert!(
        keys().contains(old_id) && keys().contains(orphan),
        "a dry run removes nothing"
    );

    let run = db1.jitd(&["fleet", "gc", "--json"]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let run = json(&run);
    assert_eq!(run["removed_count"], 151, "{run}");
    assert_eq!(
        run["deleted_keys"], 154,
        "151 requests, an approval, an end, the orphan: {run}"
    );
    assert_eq!(
        run["deleted_acks"], 2,
        "the old request's and the orphan's: {run}"
    );
    assert_eq!(run["kept"], 1, "the live request: {run}");
    let left = keys();
    assert!(
        !left.contains(old_id) && !left.contains(orphan) && !left.contains("gcmany"),
        "{left}"
    );
    assert!(
        left.contains(&format!("{v1}/g/req/db-1/{live}"))
            && left.contains(&format!("{v1}/g/ok/{}/{live}", fleet.bob.name)),
        "the live request and its approval stay: {left}"
    );
    // Once the host has applied everything up to a write made after the deletes, it has
    // seen them: the live grant stays.
    let marker: serde_json::Value = serde_json::from_str(&fleet.etcdctl(&[
        "put",
        &format!("{v1}/g/test-marker/x/y"),
        "{}",
        "-w",
        "json",
    ]))
    .unwrap();
    let revision = marker["header"]["revision"].as_i64().unwrap();
    wait_until(ENFORCED_WITHIN, "the host to apply the deletes", || {
        json(&db1.jitd(&["fleet", "status", "--json"]))["applied_revision"]
            .as_i64()
            .is_some_and(|r| r >= revision)
    });
    assert_eq!(db1.state_of(&live), "active");
    assert!(
        drop_in(&db1, &live).exists(),
        "the live grant is still enforced"
    );
    assert!(
        audit_log(&db1).contains("fleet gc by root: 151 request(s) over before"),
        "{}",
        audit_log(&db1)
    );

    let again = json(&db1.jitd(&["fleet", "gc", "--json"]));
    assert_eq!(
        again["removed"].as_array().map(Vec::len),
        Some(0),
        "{again}"
    );
    assert_eq!(again["deleted_keys"], 0, "{again}");
}

/// A fleet request asked on a host for others, and an end written to the store, are logged
/// with no local record to store: a restart must not take them for changes a crash kept from
/// being stored (it says so only of records marked STORED_AFTER).
#[test]
fn a_restart_after_fleet_requests_and_ends_says_nothing_was_left_unstored() {
    let fleet = Fleet::new();
    let web1 = fleet.host("web-1");
    let asked = fleet.ask(&web1, "db-*", &["/usr/bin/systemctl", "restart", "nginx"]);
    let denied = fleet.ask(&web1, "db-*", &["/usr/bin/systemctl", "restart", "nginx"]);
    fleet.wait_seen(&web1, &denied);
    ok(web1.jitd_as(&fleet.bob, &["deny", &denied, "--reason", "not now"]));
    let mut web1 = web1;
    web1.restart();
    let log = audit_log(&web1);
    assert!(
        log.contains(&asked) && log.contains(&denied),
        "both were logged on web-1: {log}"
    );
    assert!(!log.contains("NOT_STORED"), "{log}");
    assert!(!log.contains("was never stored"), "{log}");
}

/// `fleet_offline = "end"`: with every member of the store down, a host that cannot hear a
/// revocation ends the role's fleet grants itself once `offline_grace` has passed, and says
/// why; a host whose role keeps them (the default) goes on enforcing its grant.
#[test]
fn with_the_store_away_a_role_that_ends_its_fleet_grants_ends_them_and_others_keep_theirs() {
    let mut fleet = Fleet::new();
    let strict = fleet.host_configured(
        "db-1",
        "max_duration = \"1h\"\nfleet_offline = \"end\"",
        "offline_grace = \"2s\"",
    );
    let lenient = fleet.host_configured("db-2", "max_duration = \"1h\"", "offline_grace = \"2s\"");
    let id = fleet.ask(&strict, "db-*", &["/usr/bin/systemctl", "restart", "nginx"]);
    fleet.approve(&strict, &id);
    wait_until(ENFORCED_WITHIN, "both hosts to enforce the grant", || {
        drop_in(&strict, &id).exists() && drop_in(&lenient, &id).exists()
    });
    // Heard from recently: nothing ends while the store is there (grace is 2 s; the harness's
    // members send progress every second).
    assert_eq!(strict.state_of(&id), "active");
    for m in 0..3 {
        fleet.etcd.stop(m);
    }
    wait_until(Duration::from_secs(30), "db-1 to end its grant", || {
        !drop_in(&strict, &id).exists()
    });
    // `jitd fleet status` says how long the store has been away and what that ends.
    let status = json(&strict.jitd(&["fleet", "status", "--json"]));
    assert!(
        status["offline_secs"].as_u64().is_some_and(|s| s >= 2),
        "{status}"
    );
    assert_eq!(status["offline_grace_secs"], 2, "{status}");
    assert_eq!(
        status["offline_ending_roles"],
        serde_json::json!(["db"]),
        "{status}"
    );
    assert_eq!(strict.state_of(&id), "revoked");
    let shown = strict.show(&id);
    let log = audit_log(&strict);
    assert!(
        log.contains("the fleet store has not been heard from for")
            && log.contains("fleet_offline"),
        "{shown}\n{log}"
    );
    assert!(
        drop_in(&lenient, &id).exists(),
        "db-2's role keeps its grant while the store is away"
    );
    assert_eq!(lenient.state_of(&id), "active");
    for m in 0..3 {
        fleet.etcd.start_member(m);
    }
    fleet.etcd.wait_healthy();
    // The store is back and still says the grant is approved: an ended grant stays ended.
    wait_until(Duration::from_secs(30), "db-1 to watch again", || {
        json(&strict.jitd(&["fleet", "status", "--json"]))["watching"] == true
    });
    assert_eq!(strict.state_of(&id), "revoked");
    assert!(!drop_in(&strict, &id).exists());
}
