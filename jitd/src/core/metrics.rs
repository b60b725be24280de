//! What jitd counts for Prometheus (`jitd metrics`, `metrics_textfile`), and the text
//! exposition format it is read in. Counters are atomics, bumped on the paths that do the work
//! (a PAM check costs one relaxed increment); gauges are read from the registry when asked.
//! Counters start at zero with the process, as Prometheus expects of counters.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use jit_proto::{GrantKind, State};

use super::events::{Event, EventSink};

/// `jit_requests_total{outcome}`: each time a request enters one of these states.
const OUTCOMES: [(State, &str); 10] = [
    (State::Pending, "requested"),
    (State::Active, "approved"),
    (State::Denied, "denied"),
    (State::Cancelled, "cancelled"),
    (State::TimedOut, "timed_out"),
    (State::Expired, "expired"),
    (State::Revoked, "revoked"),
    (State::Completed, "completed"),
    (State::Failed, "failed"),
    (State::Passed, "passed"),
];

/// Seconds from request to decision: people take minutes, rules milliseconds.
const DECISION_BUCKETS: [f64; 10] = [
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 900.0, 1800.0, 3600.0,
];
/// Seconds from a window's end until its access was withdrawn.
const LATENESS_BUCKETS: [f64; 9] = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0];

/// A Prometheus histogram over fixed buckets (`le`), kept in integers: the sum in
/// microseconds.
pub struct Histogram<const N: usize> {
    bounds: [f64; N],
    counts: [AtomicU64; N],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl<const N: usize> Histogram<N> {
    fn new(bounds: [f64; N]) -> Self {
        Histogram {
            bounds,
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, seconds: f64) {
        let seconds = seconds.max(0.0);
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            if seconds <= *bound {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{bound}\"}} {}",
                count.load(Ordering::Relaxed)
            );
        }
        let total = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {total}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {total}");
    }
}

pub struct Metrics {
    /// [kind][allowed]: ssh/sudo × denied/allowed.
    checks: [[AtomicU64; 2]; 2],
    outcomes: [AtomicU64; OUTCOMES.len()],
    audit_records: AtomicU64,
    notifier_failures: AtomicU64,
    pub decision_seconds: Histogram<{ DECISION_BUCKETS.len() }>,
    pub revocation_lateness_seconds: Histogram<{ LATENESS_BUCKETS.len() }>,
}

/// What is read from the registry when the metrics are asked for.
#[derive(Default)]
pub struct Gauges {
    /// Active grants by (kind, role; "" without one).
    pub active: BTreeMap<(&'static str, String), u64>,
    pub pending: u64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            checks: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            outcomes: std::array::from_fn(|_| AtomicU64::new(0)),
            audit_records: AtomicU64::new(0),
            notifier_failures: AtomicU64::new(0),
            decision_seconds: Histogram::new(DECISION_BUCKETS),
            revocation_lateness_seconds: Histogram::new(LATENESS_BUCKETS),
        }
    }
}

fn kind_index(kind: GrantKind) -> usize {
    match kind {
        GrantKind::Ssh => 0,
        GrantKind::Sudo => 1,
    }
}

impl Metrics {
    pub fn count_check(&self, kind: GrantKind, allowed: bool) {
        self.checks[kind_index(kind)][usize::from(allowed)].fetch_add(1, Ordering::Relaxed);
    }

    /// A request entered `state` (created pending, approved, ended...). A request created
    /// already active (a rule, break-glass, `jitd grant`) counts as requested and approved.
    pub fn count_outcome(&self, state: State) {
        if let Some(i) = OUTCOMES.iter().position(|(s, _)| *s == state) {
            self.outcomes[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn count_notifier_failure(&self) {
        self.notifier_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// The exposition text, with `gauges` read by the caller.
    pub fn render(&self, gauges: &Gauges) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP jit_grants_active Active grants.\n# TYPE jit_grants_active gauge"
        );
        for ((kind, role), n) in &gauges.active {
            let _ = writeln!(
                out,
                "jit_grants_active{{kind=\"{kind}\",role=\"{}\"}} {n}",
                label(role)
            );
        }
        let _ = writeln!(
            out,
            "# HELP jit_requests_pending Requests waiting for a decision.\n# TYPE jit_requests_pending gauge\njit_requests_pending {}",
            gauges.pending
        );
        let _ = writeln!(
            out,
            "# HELP jit_requests_total Requests made (requested), approved, and how they ended, since jitd started.\n# TYPE jit_requests_total counter"
        );
        for ((_, name), n) in OUTCOMES.iter().zip(&self.outcomes) {
            let _ = writeln!(
                out,
                "jit_requests_total{{outcome=\"{name}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP jit_pam_checks_total PAM account checks answered, since jitd started.\n# TYPE jit_pam_checks_total counter"
        );
        for (kind, name) in [(GrantKind::Ssh, "ssh"), (GrantKind::Sudo, "sudo")] {
            for (allowed, result) in [(1, "allowed"), (0, "denied")] {
                let _ = writeln!(
                    out,
                    "jit_pam_checks_total{{kind=\"{name}\",result=\"{result}\"}} {}",
                    self.checks[kind_index(kind)][allowed].load(Ordering::Relaxed)
                );
            }
        }
        self.decision_seconds.render(
            &mut out,
            "jit_decision_seconds",
            "Seconds from a request to the decision that ended its wait.",
        );
        self.revocation_lateness_seconds.render(
            &mut out,
            "jit_revocation_lateness_seconds",
            "Seconds from a grant's end until its access was withdrawn.",
        );
        let _ = writeln!(
            out,
            "# HELP jit_audit_records_total Audit log records written, since jitd started.\n# TYPE jit_audit_records_total counter\njit_audit_records_total {}",
            self.audit_records.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP jit_notifier_failures_total Notifications that failed, since jitd started.\n# TYPE jit_notifier_failures_total counter\njit_notifier_failures_total {}",
            self.notifier_failures.load(Ordering::Relaxed)
        );
        out
    }
}

/// Every published event passes here: audit records are counted off the events themselves
/// (an event carries its audit position once it is on record).
impl EventSink for Metrics {
    fn record(&self, event: &Event) -> std::io::Result<()> {
        if event.audit.is_some() {
            self.audit_records.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// A label value: role names are plain, but escape what the format interprets all the same.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_histograms_and_gauges_are_rendered_as_prometheus_reads_them() {
        let m = Metrics::default();
        m.count_check(GrantKind::Sudo, true);
        m.count_check(GrantKind::Sudo, false);
        m.count_check(GrantKind::Sudo, false);
        m.decision_seconds.observe(42.0);
        m.revocation_lateness_seconds.observe(0.002);
        m.count_outcome(State::Denied);
        m.count_outcome(State::Pending);
        let mut audited = Event::new(crate::core::events::EventKind::Denied, "no");
        m.record(&audited).unwrap();
        audited.audit = Some(crate::core::events::AuditPosition {
            seq: 1,
            hash: "ab".into(),
        });
        m.record(&audited).unwrap();
        let mut g = Gauges {
            pending: 3,
            ..Gauges::default()
        };
        g.active.insert(("sudo", "web\"x".into()), 7);
        let text = m.render(&g);
        for line in [
            "jit_pam_checks_total{kind=\"sudo\",result=\"allowed\"} 1",
            "jit_pam_checks_total{kind=\"sudo\",result=\"denied\"} 2",
            "jit_requests_total{outcome=\"denied\"} 1",
            "jit_requests_total{outcome=\"requested\"} 1",
            "jit_requests_total{outcome=\"expired\"} 0",
            "jit_audit_records_total 1",
            "jit_requests_pending 3",
            "jit_grants_active{kind=\"sudo\",role=\"web\\\"x\"} 7",
            "jit_decision_seconds_bucket{le=\"30\"} 0",
            "jit_decision_seconds_bucket{le=\"60\"} 1",
            "jit_decision_seconds_bucket{le=\"+Inf\"} 1",
            "jit_decision_seconds_sum 42",
            "jit_revocation_lateness_seconds_bucket{le=\"0.005\"} 1",
            "jit_revocation_lateness_seconds_count 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in:\n{text}"
            );
        }
    }
}
