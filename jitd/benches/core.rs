//! Micro-benchmarks of jitd's pure core, each beside a baseline measured in the same run:
//!
//! - the check's lookup among 100,000 active grants, beside a plain `HashMap<String, _>` get
//!   (the floor for any keyed lookup);
//! - reading one stored record (what startup does 100,000 times), beside parsing the same
//!   bytes into an untyped `serde_json::Value`;
//! - reading one stored timestamp, beside chrono's general RFC 3339 parser (what it replaced).
//!
//! `cargo bench -p jitd --bench core [-- --out FILE]` prints the figures and writes them as
//! JSON rows (`key`, `label`, `value`, `unit`; the format of docs/benchmarks.md), by default to
//! `target/bench/micro.json`, which `bench/run` folds into its one table. (cargo runs this from
//! `jitd/`: a relative FILE is taken from there.) Figures, not tests:
//! nothing here fails when a number is off.
//!
//! jitd is a binary crate; its core is pure (no I/O, clock injected) and self-contained, so it
//! is compiled into this benchmark directly.

#[allow(dead_code, unused_imports)]
#[path = "../src/core/mod.rs"]
mod core;

use std::collections::HashMap;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

use chrono::{DateTime, Duration, TimeZone, Utc};
use jit_proto::{GrantKind, Target};
use serde_json::json;

use crate::core::lifecycle::{By, Submission};
use crate::core::model::{GrantId, Request};
use crate::core::registry::Registry;
use crate::core::timestamp::Stamp;

const GRANTS: usize = 100_000;

fn main() {
    let mut out = workspace_target().join("bench").join("micro.json");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        // `cargo bench` passes `--bench`; other harness flags mean nothing here.
        if arg == "--out" {
            out = PathBuf::from(args.next().expect("--out FILE"));
        }
    }
    let mut rows = Vec::new();
    lookup(&mut rows);
    record(&mut rows);
    timestamp(&mut rows);

    let width = rows.iter().map(|r: &Row| r.label.len()).max().unwrap_or(10);
    println!("{:<width$}  {:>10}  unit", "measurement", "value");
    for r in &rows {
        println!("{:<width$}  {:>10.1}  {}", r.label, r.value, r.unit);
    }
    let json: Vec<_> = rows
        .iter()
        .map(|r| json!({ "key": r.key, "label": r.label, "value": r.value, "unit": r.unit }))
        .collect();
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).expect("create the output directory");
    }
    std::fs::write(
        &out,
        serde_json::to_string_pretty(&json).expect("json") + "\n",
    )
    .expect("write the results");
    println!("written to {}", out.display());
}

struct Row {
    key: &'static str,
    label: &'static str,
    value: f64,
    unit: &'static str,
}

/// Nanoseconds per call of `f`: the median of 15 rounds of `per_round` calls.
fn ns_per_call(per_round: usize, mut f: impl FnMut(usize)) -> f64 {
    let mut rounds: Vec<f64> = (0..15)
        .map(|_| {
            let start = Instant::now();
            for i in 0..per_round {
                f(i);
            }
            start.elapsed().as_nanos() as f64 / per_round as f64
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    rounds[rounds.len() / 2]
}

/// Pushes the figure, its baseline and their ratio.
#[allow(clippy::too_many_arguments)]
fn compare(
    rows: &mut Vec<Row>,
    key: &'static str,
    label: &'static str,
    value: f64,
    base_key: &'static str,
    base_label: &'static str,
    base: f64,
    ratio_key: &'static str,
    ratio_label: &'static str,
) {
    rows.push(Row {
        key,
        label,
        value,
        unit: "ns",
    });
    rows.push(Row {
        key: base_key,
        label: base_label,
        value: base,
        unit: "ns",
    });
    rows.push(Row {
        key: ratio_key,
        label: ratio_label,
        value: value / base,
        unit: "×",
    });
}

fn t(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + secs, 0).unwrap()
}

fn id(n: usize) -> GrantId {
    let alphabet = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut s = String::from("g");
    let mut v = n;
    for _ in 0..9 {
        s.push(alphabet[v % 36] as char);
        v /= 36;
    }
    GrantId::try_from(s).expect("a valid id")
}

/// An active grant as `jitd grant` makes it.
fn grant(n: usize, target: Target) -> Request {
    let mut r = Request::open(
        id(n),
        Submission {
            uid: 100_000 + n as u32,
            user: format!("user{n:06}"),
            target,
            duration: Duration::hours(2),
            reason: "deploy the release".into(),
            ticket: Some("OPS-1234".into()),
            role: Some("ops".into()),
            approvals_required: 1,
            approver_groups: vec!["ops-leads".into()],
            record: crate::core::recording::Record::Output,
        },
        t(0),
        Duration::hours(1),
    );
    r.approve(&By::user("root", 0), Some("granted directly".into()), t(1))
        .expect("approve");
    r
}

fn lookup(rows: &mut Vec<Row>) {
    let mut registry = Registry::default();
    let mut plain: HashMap<String, GrantId> = HashMap::new();
    for n in 0..GRANTS {
        let r = grant(n, Target::Ssh);
        plain.insert(r.user.to_string(), r.id.clone());
        registry.put(r);
    }
    let users: Vec<String> = (0..4096)
        .map(|i| format!("user{:06}", i * 24 % GRANTS))
        .collect();
    let now = t(60);
    let check = ns_per_call(200_000, |i| {
        let user = &users[i % users.len()];
        black_box(
            registry
                .active_for(user, GrantKind::Ssh, now)
                .next()
                .is_some(),
        );
    });
    let floor = ns_per_call(200_000, |i| {
        black_box(plain.get(&users[i % users.len()]));
    });
    compare(
        rows,
        "micro.check_lookup_ns",
        "check lookup among 100k active grants",
        check,
        "micro.hashmap_get_ns",
        "baseline: HashMap<String, _>::get, 100k keys",
        floor,
        "micro.check_lookup_ratio",
        "check lookup / HashMap get",
    );
}

fn record(rows: &mut Vec<Row>) {
    let r = grant(
        7,
        Target::Sudo {
            command: vec![
                "/usr/bin/systemctl".into(),
                "restart".into(),
                "nginx".into(),
            ],
        },
    );
    // As the store writes it.
    let bytes = serde_json::to_vec_pretty(&r).expect("serialise");
    let typed = ns_per_call(20_000, |_| {
        black_box(serde_json::from_slice::<Request>(black_box(&bytes)).expect("parse"));
    });
    let untyped = ns_per_call(20_000, |_| {
        black_box(serde_json::from_slice::<serde_json::Value>(black_box(&bytes)).expect("parse"));
    });
    compare(
        rows,
        "micro.record_parse_ns",
        "read one stored sudo grant",
        typed,
        "micro.record_parse_value_ns",
        "baseline: the same bytes into serde_json::Value",
        untyped,
        "micro.record_parse_ratio",
        "stored grant / Value",
    );
}

fn timestamp(rows: &mut Vec<Row>) {
    let text = serde_json::to_string(&(t(0) + Duration::microseconds(555_475))).expect("json");
    let fast = ns_per_call(200_000, |_| {
        black_box(serde_json::from_str::<Stamp>(black_box(&text)).expect("parse"));
    });
    let chrono = ns_per_call(200_000, |_| {
        black_box(serde_json::from_str::<DateTime<Utc>>(black_box(&text)).expect("parse"));
    });
    compare(
        rows,
        "micro.timestamp_parse_ns",
        "read one stored timestamp",
        fast,
        "micro.timestamp_chrono_ns",
        "baseline: chrono's RFC 3339 parser",
        chrono,
        "micro.timestamp_ratio",
        "stored timestamp / chrono",
    );
}

/// `target/` of the workspace (or `CARGO_TARGET_DIR`).
fn workspace_target() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join("target")
        })
}
