//! Measurement 5, scale: cold start (spawn → state loaded, host reconciled, first check answered) and
//! resident memory with many active grants and a long audit log. The 100k daemon is kept and
//! used by the PAM, sudo and throughput measurements.

use std::path::Path;
use std::time::Duration;

use chrono::Utc;

use crate::daemon::BenchDaemon;
use crate::report::{Goal, Report};
use crate::state::{self, Grant};

/// Name of fake grant holder `n` (grants are keyed by user name; these users need not exist
/// because SSH grants have no drop-in).
pub fn fake_user(n: usize) -> String {
    format!("bu{n:06}")
}

/// A jitd holding `grants` SSH grants of fake users, plus one of `real` (name, uid), with a
/// copy of `audit` (log and head) as its audit log. Returns it with its memory use.
pub fn start(grants: usize, real: Option<(&str, u32)>, audit: Option<&Path>) -> BenchDaemon {
    start_with_history(grants, real, audit, 0)
}

/// As [`start`], plus `history` requests that ended 30 to 395 days ago (past the default
/// `retention`), filed as jitd files them.
pub fn start_with_history(
    grants: usize,
    real: Option<(&str, u32)>,
    audit: Option<&Path>,
    history: usize,
) -> BenchDaemon {
    let now = Utc::now();
    let expires = now + chrono::Duration::hours(4);
    let mut list: Vec<Grant> = (0..grants)
        .map(|i| Grant {
            id: state::id('s', i),
            user: fake_user(i),
            uid: 100_000 + i as u32,
            command: None,
            approved_at: now,
            expires_at: expires,
        })
        .collect();
    if let Some((name, uid)) = real {
        list.push(Grant {
            id: state::id('t', 0),
            user: name.to_string(),
            uid,
            command: None,
            approved_at: now,
            expires_at: expires,
        });
    }
    BenchDaemon::start("", move |state_dir, _| {
        if let Some(from) = audit {
            for f in ["audit.log", "audit.head"] {
                std::fs::copy(from.join(f), state_dir.join(f)).expect("copy audit log");
            }
        }
        state::append_approvals(state_dir, &list).expect("write approvals");
        state::write_requests(state_dir, list).expect("write grants");
        let day = chrono::Duration::days(1);
        state::write_history(state_dir, history, now - day * 395, now - day * 31)
            .expect("write history");
    })
}

/// Issue 20's goals at 100k grants + 1M audit records, with and without a long ended history:
/// a daemon that starts and fits like a small one.
const COLD_START_GOAL_MS: f64 = 250.0;
const RSS_GOAL_MIB: f64 = 32.0;

/// What [`record`] measured.
pub struct Measured {
    pub cold_start_ms: f64,
    pub rss_mib: f64,
}

pub fn record(
    report: &mut Report,
    label: &str,
    key: &str,
    jitd: &BenchDaemon,
    goals: bool,
) -> Measured {
    // Let the scheduler run a round with everything loaded before reading memory.
    std::thread::sleep(Duration::from_millis(1500));
    let (rss, _) = jitd.memory_mib();
    // What the scheduler alone costs while nothing happens (it wakes at least every second).
    let (cpu, wall) = (jitd.cpu_time(), std::time::Instant::now());
    std::thread::sleep(Duration::from_secs(3));
    let idle = (jitd.cpu_time() - cpu).as_secs_f64() / wall.elapsed().as_secs_f64() * 100.0;
    let ms = jitd.cold_start.as_secs_f64() * 1e3;
    report.add(
        &format!("scale.{key}.idle_cpu_pct"),
        &format!("CPU while idle, {label}"),
        idle,
        "%",
    );
    if goals {
        report.goal(
            &format!("scale.{key}.cold_start_ms"),
            &format!("cold start, {label}"),
            ms,
            "ms",
            Goal::AtMost(COLD_START_GOAL_MS),
        );
        report.goal(
            &format!("scale.{key}.rss_mib"),
            &format!("resident memory, {label}"),
            rss,
            "MiB",
            Goal::AtMost(RSS_GOAL_MIB),
        );
    } else {
        report.add(
            &format!("scale.{key}.cold_start_ms"),
            &format!("cold start, {label}"),
            ms,
            "ms",
        );
        report.add(
            &format!("scale.{key}.rss_mib"),
            &format!("resident memory, {label}"),
            rss,
            "MiB",
        );
    }
    Measured {
        cold_start_ms: ms,
        rss_mib: rss,
    }
}
