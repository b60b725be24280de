//! What an SRE's Prometheus reads: `jitd metrics` and the `metrics_textfile` node_exporter
//! collects, checked with Prometheus' own Python parser (Debian's python3-prometheus-client).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use jit_proto::{Client, GrantKind, PamContext, Request, Response};
use jit_tests::{ok, Daemon, TestUser};

/// Parses exposition text with prometheus_client's parser; fails the test on text it rejects.
/// Returns each sample as `name{label="value",...}` (labels sorted) → value.
fn parse(text: &str) -> HashMap<String, f64> {
    let script = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
        print(f"{s.name}{{{labels}}}\t{s.value}")
"#;
    let mut child = Command::new("/usr/bin/python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 with prometheus_client (apt install python3-prometheus-client)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "Prometheus' parser rejected the metrics: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(k, v)| (k.to_string(), v.parse().unwrap()))
        .collect()
}

fn check(d: &Daemon, user: &str) -> Response {
    Client::new(d.socket(), Duration::from_secs(5))
        .call(Request::Check(PamContext {
            user: user.into(),
            kind: GrantKind::Ssh,
            service: "sshd".into(),
            tty: None,
            rhost: None,
            ruser: None,
        }))
        .unwrap()
}

#[test]
fn an_sre_reads_grants_requests_checks_and_decisions_in_prometheus_format() {
    let d = Daemon::start_custom("", &[], |dir| {
        let config = dir.join("jitd.toml");
        let mut text = std::fs::read_to_string(&config).unwrap();
        text.push_str(&format!(
            "metrics_textfile = \"{}/jit.prom\"\n",
            dir.display()
        ));
        std::fs::write(&config, text).unwrap();
    });
    let alice = TestUser::create("alice");
    let bob = TestUser::create("bob");
    let carol = TestUser::create("carol");
    ok(d.jitd(&[
        "grant",
        &alice.name,
        "--for",
        "10m",
        "--reason",
        "x",
        "--ssh",
    ]));
    let denied = ok(d.elevate_as(&bob, &["--no-wait", "--reason", "x", "--ssh"]));
    ok(d.jitd(&["deny", &denied, "--reason", "no"]));
    ok(d.elevate_as(&carol, &["--no-wait", "--reason", "x", "--ssh"]));
    assert!(matches!(check(&d, &alice.name), Response::Allowed { .. }));
    assert!(matches!(check(&d, &bob.name), Response::Denied { .. }));
    assert!(matches!(check(&d, &bob.name), Response::Denied { .. }));

    let m = parse(&ok(d.jitd(&["metrics"])));
    let value = |k: &str| {
        m.get(k)
            .copied()
            .unwrap_or_else(|| panic!("no {k} in {m:?}"))
    };
    assert_eq!(value(r#"jit_grants_active{kind="ssh",role=""}"#), 1.0);
    assert_eq!(value("jit_requests_pending{}"), 1.0);
    assert_eq!(value(r#"jit_requests_total{outcome="requested"}"#), 3.0);
    assert_eq!(value(r#"jit_requests_total{outcome="approved"}"#), 1.0);
    assert_eq!(value(r#"jit_requests_total{outcome="denied"}"#), 1.0);
    assert_eq!(
        value(r#"jit_pam_checks_total{kind="ssh",result="allowed"}"#),
        1.0
    );
    assert_eq!(
        value(r#"jit_pam_checks_total{kind="ssh",result="denied"}"#),
        2.0
    );
    assert_eq!(value("jit_decision_seconds_count{}"), 2.0);
    assert_eq!(value(r#"jit_decision_seconds_bucket{le="+Inf"}"#), 2.0);
    assert!(value("jit_audit_records_total{}") >= 4.0, "{m:?}");
    assert_eq!(value("jit_notifier_failures_total{}"), 0.0);

    // An operator who is not an approver learns nothing of others.
    let out = d.jitd_as(&carol, &["metrics"]);
    assert!(!out.status.success(), "{out:?}");

    // node_exporter's textfile: written at start, then every 15 s, readable by the collector.
    let file = d.dir().join("jit.prom");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !file.exists() {
        assert!(Instant::now() < deadline, "no {}", file.display());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o644
    );
    let from_file = parse(&std::fs::read_to_string(&file).unwrap());
    assert!(
        from_file.contains_key("jit_requests_pending{}"),
        "{from_file:?}"
    );
}
