//! Fleet mode (docs/fleet.md) on a real 3-member etcd cluster on loopback, started here and
//! stopped when the section ends (also when it fails):
//!
//! 1. approval → enforced on N simulated hosts in this process (`jitd::fleet_sim`: each host
//!    has its own etcd client, the real sync loop, book and verdict, and checks the approver's
//!    SSHSIG against a real allowed_signers with a key made by ssh-keygen; it timestamps
//!    "installed" where jitd would run visudo), beside etcd's own put → watch latency to N
//!    plain watchers of the same puts, measured at the same time;
//! 2. a cold re-list of 10k request + approval pairs with every signature checked, beside the
//!    listing alone;
//! 3. the idle cost of a real `jitd serve` with `[fleet]` (one watch, presence), beside the
//!    same jitd without `[fleet]`, idle at the same time.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use chrono::{SubsecRound, Utc};
use jit_tests::etcd::EtcdCluster;
use jit_tests::{unique, TempDir};
use jitd::fleet_sim::{
    relist, request_record, Approver, Fleet, Installed, PlainWatcher, Relisted, Seen, SimHost,
    Store,
};

use crate::daemon::BenchDaemon;
use crate::report::{Goal, Report};
use crate::stats::summarise;

pub struct Plan {
    /// Simulated hosts (and plain watchers of the baseline).
    pub hosts: usize,
    /// Approvals put one per second.
    pub paced: usize,
    /// Approvals put back to back after them.
    pub burst: usize,
    /// Request + approval pairs in the store for the re-list.
    pub relist: usize,
    pub idle_for: Duration,
}

const APPROVER: &str = "bob";
/// How long after the last approval the section waits for every host before counting the
/// missing ones.
const SETTLE: Duration = Duration::from_secs(30);
/// Pairs per transaction (etcd's default `--max-txn-ops` is 128).
const PAIRS_PER_TXN: usize = 64;

pub fn measure(report: &mut Report, plan: &Plan) {
    report.note(format!("fleet: load average at the start {}", loadavg()));
    let etcd = EtcdCluster::start();
    let keys = TempDir::new("fleet-bench");
    let approver = approver_key(keys.path());
    let fleet = |prefix: &str| Fleet {
        endpoints: etcd.endpoints(),
        prefix: prefix.into(),
        allowed_signers: keys.path().join("allowed_signers"),
        approver: APPROVER.into(),
    };

    eprintln!("        fleet: idle cost");
    idle(
        report,
        &fleet(&format!("/{}", unique("idle"))),
        plan.idle_for,
    );
    eprintln!("        fleet: re-list of {} pairs", plan.relist);
    relisting(
        report,
        &fleet(&format!("/{}", unique("relist"))),
        &approver,
        plan.relist,
    );
    eprintln!(
        "        fleet: {} approvals at 1/s + a burst of {} to {} simulated hosts",
        plan.paced, plan.burst, plan.hosts
    );
    approvals(
        report,
        &fleet(&format!("/{}", unique("sim"))),
        &approver,
        plan,
    );
    report.note(format!("fleet: load average at the end {}", loadavg()));
}

/// An Ed25519 key made by ssh-keygen, and an allowed_signers naming it for [`APPROVER`].
fn approver_key(dir: &Path) -> Approver {
    let private = dir.join("approver");
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", APPROVER, "-f"])
        .arg(&private)
        .output()
        .expect("run ssh-keygen (apt-get install openssh-client)");
    assert!(
        out.status.success(),
        "ssh-keygen: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let public = fs::read_to_string(private.with_extension("pub")).expect("public key");
    let mut parts = public.split_whitespace();
    let line = format!(
        "{APPROVER} {} {}\n",
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default()
    );
    let signers = dir.join("allowed_signers");
    fs::write(&signers, line).expect("allowed_signers");
    fs::set_permissions(&signers, fs::Permissions::from_mode(0o644)).expect("chmod");
    Approver::load(APPROVER, &private).expect("the approver's key")
}

fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// Waits for `done`, panicking with `what` after `within`.
fn wait_for(within: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "fleet: {what} within {within:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn ms(d: Duration) -> f64 {
    d.as_nanos() as f64 / 1e6
}

// ---------------------------------------------------------------------------------------------
// 1. Approval → enforced on N simulated hosts

fn approvals(report: &mut Report, fleet: &Fleet, approver: &Approver, plan: &Plan) {
    let n = plan.hosts;
    let (itx, irx) = mpsc::channel::<Installed>();
    let (stx, srx) = mpsc::channel::<Seen>();
    let hosts: Vec<SimHost> = (0..n)
        .map(|i| SimHost::start(fleet, i, &format!("sim-{i:03}"), itx.clone()).expect("sim host"))
        .collect();
    let plain: Vec<PlainWatcher> = (0..n)
        .map(|i| {
            PlainWatcher::start(
                &fleet.endpoints,
                &fleet.approvals_prefix(),
                i,
                &format!("sim-{i:03}"),
                stx.clone(),
            )
            .expect("plain watcher")
        })
        .collect();
    wait_for(Duration::from_secs(120), "every host watching", || {
        hosts.iter().all(SimHost::watching) && plain.iter().all(PlainWatcher::ready)
    });

    // The requests first (each host judges them: waiting), then the approvals, signed now.
    let store = Store::new(&fleet.endpoints).expect("store client");
    let count = plan.paced + plan.burst;
    let now = Utc::now().trunc_subsecs(0);
    let ids: Vec<String> = (0..count).map(|i| format!("a{i:09}")).collect();
    let mut signed = Vec::new();
    let mut last = 0;
    for chunk in ids.chunks(PAIRS_PER_TXN * 2) {
        let mut kvs = Vec::new();
        for id in chunk {
            let bytes = request_record(
                id,
                "web-1",
                "sim-*",
                now - chrono::Duration::seconds(60),
                now + chrono::Duration::hours(1),
            )
            .expect("request");
            let approval = approver.approve_at(id, &bytes, now).expect("sign");
            signed.push((fleet.approval_key(id).expect("key"), approval));
            kvs.push((fleet.request_key("web-1", id).expect("key"), bytes));
        }
        last = store.put_many(&kvs).expect("put requests");
    }
    wait_for(
        Duration::from_secs(60),
        "every host to read the requests",
        || hosts.iter().all(|h| h.applied_revision() >= last),
    );
    assert!(
        irx.try_recv().is_err(),
        "fleet: a host installed a request nobody approved"
    );

    let mut put_at: HashMap<Vec<u8>, Instant> = HashMap::new();
    let start = Instant::now();
    for (i, (key, value)) in signed.iter().enumerate() {
        if i < plan.paced {
            let due = start + Duration::from_secs(i as u64);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        } else if i == plan.paced {
            std::thread::sleep(Duration::from_secs(1));
        }
        put_at.insert(key.clone().into_bytes(), Instant::now());
        store.put(key, value).expect("put approval");
    }

    // Collect until every host has every approval (or SETTLE after the last put).
    let deadline = Instant::now() + SETTLE;
    let (mut installed, mut seen) = (Vec::new(), Vec::new());
    while (installed.len() < n * count || seen.len() < n * count) && Instant::now() < deadline {
        installed.extend(irx.try_iter());
        seen.extend(srx.try_iter());
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(plain);

    let id_of_key: HashMap<Vec<u8>, usize> = signed
        .iter()
        .enumerate()
        .map(|(i, (k, _))| (k.clone().into_bytes(), i))
        .collect();
    let t0: Vec<Instant> = signed.iter().map(|(k, _)| put_at[k.as_bytes()]).collect();
    // Per approval: when the last host had it.
    let index: HashMap<&str, usize> = ids.iter().enumerate().map(|(i, id)| (&id[..], i)).collect();
    let mut enforced_last: Vec<Option<Instant>> = vec![None; count];
    let mut enforced_n = vec![0usize; count];
    for ins in &installed {
        if let Some(&i) = index.get(&ins.id[..]) {
            enforced_n[i] += 1;
            enforced_last[i] = Some(enforced_last[i].map_or(ins.at, |t| t.max(ins.at)));
        }
    }
    let mut seen_last: Vec<Option<Instant>> = vec![None; count];
    let mut seen_n = vec![0usize; count];
    for s in &seen {
        if let Some(&i) = id_of_key.get(&s.key) {
            seen_n[i] += 1;
            seen_last[i] = Some(seen_last[i].map_or(s.at, |t| t.max(s.at)));
        }
    }
    let missing: usize = enforced_n.iter().map(|&k| n.saturating_sub(k)).sum();
    let lat = |last: &[Option<Instant>], got: &[usize], range: std::ops::Range<usize>| {
        range
            .filter(|&i| got[i] == n)
            .filter_map(|i| last[i].map(|t| t.saturating_duration_since(t0[i])))
            .collect::<Vec<Duration>>()
    };
    let mut paced = lat(&enforced_last, &enforced_n, 0..plan.paced);
    let mut burst = lat(&enforced_last, &enforced_n, plan.paced..count);
    let mut paced_w = lat(&seen_last, &seen_n, 0..plan.paced);
    let mut burst_w = lat(&seen_last, &seen_n, plan.paced..count);
    let (p, b, pw, bw) = (
        summarise(&mut paced),
        summarise(&mut burst),
        summarise(&mut paced_w),
        summarise(&mut burst_w),
    );
    let what = format!("{} at 1/s", plan.paced);
    report.add(
        "fleet.enforce.p50_ms",
        &format!("fleet: approval → installed on all {n} sim hosts p50 ({what})"),
        p.p50 / 1e3,
        "ms",
    );
    report.goal(
        "fleet.enforce.p99_ms",
        "fleet: approval → installed on all hosts p99",
        p.p99 / 1e3,
        "ms",
        Goal::AtMost(1000.0),
    );
    report.add(
        "fleet.enforce.max_ms",
        "fleet: approval → installed on all hosts max",
        p.max / 1e3,
        "ms",
    );
    report.add(
        "fleet.watch.p50_ms",
        &format!("fleet baseline: put → seen by all {n} plain watchers p50"),
        pw.p50 / 1e3,
        "ms",
    );
    report.add(
        "fleet.watch.p99_ms",
        "fleet baseline: put → seen by all plain watchers p99",
        pw.p99 / 1e3,
        "ms",
    );
    report.add(
        "fleet.watch.max_ms",
        "fleet baseline: put → seen by all plain watchers max",
        pw.max / 1e3,
        "ms",
    );
    report.goal(
        "fleet.enforce.burst_max_ms",
        &format!(
            "fleet: burst of {}: approval → installed on all hosts max",
            plan.burst
        ),
        b.max / 1e3,
        "ms",
        Goal::AtMost(1000.0),
    );
    report.add(
        "fleet.watch.burst_max_ms",
        "fleet baseline: burst: put → seen by all plain watchers max",
        bw.max / 1e3,
        "ms",
    );
    report.goal(
        "fleet.enforce.missing",
        &format!(
            "fleet: host × approval pairs not installed {}s after the last put",
            SETTLE.as_secs()
        ),
        missing as f64,
        "",
        Goal::AtMost(0.0),
    );
    if p.n < plan.paced || b.n < plan.burst {
        report.note(format!(
            "fleet: only {} of {} paced and {} of {} burst approvals reached every host",
            p.n, plan.paced, b.n, plan.burst
        ));
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Cold re-list of many records with signature checks

fn relisting(report: &mut Report, fleet: &Fleet, approver: &Approver, pairs: usize) {
    let store = Store::new(&fleet.endpoints).expect("store client");
    let now = Utc::now().trunc_subsecs(0);
    for start in (0..pairs).step_by(PAIRS_PER_TXN) {
        let mut kvs = Vec::new();
        for i in start..(start + PAIRS_PER_TXN).min(pairs) {
            let id = format!("r{i:09}");
            let bytes = request_record(
                &id,
                "web-1",
                "sim-*",
                now - chrono::Duration::seconds(60),
                now + chrono::Duration::hours(1),
            )
            .expect("request");
            let approval = approver.approve_at(&id, &bytes, now).expect("sign");
            kvs.push((fleet.request_key("web-1", &id).expect("key"), bytes));
            kvs.push((fleet.approval_key(&id).expect("key"), approval));
        }
        store.put_many(&kvs).expect("put pairs");
    }
    // Three rounds, alternating, each with a new client (a new connection): the median.
    let (mut range, mut full): (Vec<Relisted>, Vec<Relisted>) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        range.push(relist(fleet, "sim-relist", false).expect("range"));
        full.push(relist(fleet, "sim-relist", true).expect("relist"));
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let total = median(&mut full.iter().map(|r| r.range + r.book + r.verdicts).collect());
    let only_range = median(&mut range.iter().map(|r| r.range).collect());
    let book = median(&mut full.iter().map(|r| r.book).collect());
    let verdicts = median(&mut full.iter().map(|r| r.verdicts).collect());
    let k = pairs as f64 / 1000.0;
    report.goal(
        "fleet.relist.total_ms",
        &format!("fleet: cold re-list of {k}k request+approval pairs, all verified"),
        ms(total),
        "ms",
        Goal::AtMost(2000.0),
    );
    report.add(
        "fleet.relist.range_ms",
        "fleet baseline: the listing alone (range, paged)",
        ms(only_range),
        "ms",
    );
    report.add(
        "fleet.relist.book_ms",
        "fleet: re-list: parsing into the book",
        ms(book),
        "ms",
    );
    report.add(
        "fleet.relist.verdicts_ms",
        "fleet: re-list: verdicts with signature checks",
        ms(verdicts),
        "ms",
    );
    let last = full.last().expect("a round");
    report.goal(
        "fleet.relist.enforced",
        "fleet: re-list: requests judged enforceable (all should be)",
        last.enforced as f64,
        "",
        Goal::AtLeast(pairs as f64),
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Idle cost of a watching jitd

fn idle(report: &mut Report, fleet: &Fleet, idle_for: Duration) {
    let endpoints: Vec<String> = fleet.endpoints.iter().map(|e| format!("\"{e}\"")).collect();
    let with = BenchDaemon::start(
        &format!(
            "[fleet]\nendpoints = [{}]\nhost_name = \"idle-1\"\nprefix = \"{}\"\nallowed_signers = \"{}\"\n",
            endpoints.join(", "),
            fleet.prefix,
            fleet.allowed_signers.display()
        ),
        |_, _| {},
    );
    let without = BenchDaemon::start("", |_, _| {});
    wait_for(
        Duration::from_secs(60),
        "the jitd to watch the store",
        || {
            let out = with.jitd(&["fleet", "status", "--json"]);
            out.status.success()
                && serde_json::from_slice::<serde_json::Value>(&out.stdout)
                    .is_ok_and(|v| v["watching"] == true)
        },
    );
    // Past start-up work on both.
    std::thread::sleep(Duration::from_secs(1));
    let (a0, b0) = (with.cpu_time(), without.cpu_time());
    std::thread::sleep(idle_for);
    let (a1, b1) = (with.cpu_time(), without.cpu_time());
    let per_min = |d: Duration| ms(d) * 60.0 / idle_for.as_secs_f64();
    report.add(
        "fleet.idle.cpu_ms_per_min",
        &format!(
            "fleet: idle jitd with [fleet] (watch + presence), CPU per minute ({} s)",
            idle_for.as_secs()
        ),
        per_min(a1.saturating_sub(a0)),
        "ms",
    );
    report.add(
        "fleet.idle.baseline_cpu_ms_per_min",
        "fleet baseline: the same jitd without [fleet], CPU per minute",
        per_min(b1.saturating_sub(b0)),
        "ms",
    );
    report.add(
        "fleet.idle.rss_mib",
        "fleet: idle jitd with [fleet], resident memory",
        with.memory_mib().0,
        "MiB",
    );
    report.add(
        "fleet.idle.baseline_rss_mib",
        "fleet baseline: without [fleet], resident memory",
        without.memory_mib().0,
        "MiB",
    );
}
