//! How jit is used, from the audit log, for `jitd report`: who asks for which role, how long
//! approval takes, how much is approved by rules, which roles nobody needs, how often people
//! hand access back early. Built in one streaming pass; memory grows with the number of
//! requests still waiting for a decision, not with the log.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::core::events::EventKind;
use crate::shell::audit::audit_log::AuditRecord;

/// Role key for requests that named a command instead of a role.
pub const NO_ROLE: &str = "(no role)";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Latency {
    pub count: usize,
    pub median_secs: i64,
    pub p90_secs: i64,
    pub max_secs: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct UsageSummary {
    pub records: u64,
    pub first: Option<String>,
    pub last: Option<String>,
    pub requests_by_role: BTreeMap<String, u64>,
    pub requests_by_user: BTreeMap<String, u64>,
    /// From each request's `requested` to its `approved` record.
    pub time_to_approval: Option<Latency>,
    pub approved: u64,
    /// Approved by a rule (`approver` starting with `rule:`) rather than a person.
    pub approved_automatically: u64,
    /// Configured roles no request in the log asked for.
    pub roles_never_used: Vec<String>,
    /// Grants the user ended with `done` before they expired (`completed` records).
    pub ended_early_by_done: u64,
    /// Per UTC day a request was made (`YYYY-MM-DD`), how many ended up approved, denied,
    /// cancelled, timed_out, break_glass, or are still `undecided` at the end of the log.
    pub requests_per_day: BTreeMap<String, BTreeMap<String, u64>>,
    /// Time from request to decision (approval or denial), counted per bucket of
    /// [`DECISION_BUCKETS`] by its label.
    pub decision_time: BTreeMap<String, u64>,
    /// Grants made (approved, by people or rules, or taken through break-glass).
    pub grants_by_role: BTreeMap<String, u64>,
    pub grants_by_user: BTreeMap<String, u64>,
    /// Every break-glass use, oldest first (at most [`MAX_LISTED`]), and whether reviewed.
    pub break_glass: Vec<BreakGlassUse>,
    pub break_glass_uses: u64,
    pub break_glass_reviewed: u64,
    /// Extensions granted (`extended` records).
    pub extensions: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BreakGlassUse {
    pub id: String,
    pub time: String,
    pub user: String,
    pub role: String,
    pub reason: String,
    /// Who reviewed it and when; `None` while nobody has.
    pub reviewed_by: Option<String>,
    pub reviewed_at: Option<String>,
}

/// Break-glass uses listed one by one; beyond this they are only counted.
pub const MAX_LISTED: usize = 1000;

/// Upper bounds (seconds, exclusive) and labels of the decision-time buckets; the last is open.
pub const DECISION_BUCKETS: [(i64, &str); 6] = [
    (60, "under 1m"),
    (300, "1m-5m"),
    (900, "5m-15m"),
    (3600, "15m-1h"),
    (4 * 3600, "1h-4h"),
    (i64::MAX, "4h or more"),
];

/// The outcomes a request per day is counted under, in the order a chart stacks them.
pub const OUTCOMES: [&str; 6] = [
    "approved",
    "break_glass",
    "denied",
    "cancelled",
    "timed_out",
    "undecided",
];

fn day_of(time: &str) -> String {
    time.get(..10).unwrap_or(time).to_string()
}

#[derive(Default)]
pub struct UsageBuilder {
    summary: UsageSummary,
    requested_at: HashMap<String, DateTime<Utc>>,
    approval_secs: Vec<i64>,
    /// Requests without an outcome yet: the day each was made.
    undecided: HashMap<String, String>,
    /// Index in `summary.break_glass` of each listed use, for its review.
    break_glass_at: HashMap<String, usize>,
}

impl UsageBuilder {
    fn outcome(&mut self, r: &AuditRecord, outcome: &str) {
        let day = r
            .request_id
            .as_deref()
            .and_then(|id| self.undecided.remove(id))
            .unwrap_or_else(|| day_of(&r.time));
        *self
            .summary
            .requests_per_day
            .entry(day)
            .or_default()
            .entry(outcome.to_string())
            .or_default() += 1;
    }

    fn decided_after(&mut self, r: &AuditRecord) {
        let asked = r
            .request_id
            .as_deref()
            .and_then(|id| self.requested_at.get(id).copied());
        if let (Some(asked), Some(t)) = (asked, r.time()) {
            let secs = (t - asked).num_seconds().max(0);
            let label = DECISION_BUCKETS
                .iter()
                .find(|(upper, _)| secs < *upper)
                .map_or("4h or more", |(_, l)| l);
            *self
                .summary
                .decision_time
                .entry(label.to_string())
                .or_default() += 1;
        }
    }

    fn granted(&mut self, r: &AuditRecord) {
        let role = r.role.clone().unwrap_or_else(|| NO_ROLE.to_string());
        *self.summary.grants_by_role.entry(role).or_default() += 1;
        if let Some(user) = &r.user {
            *self.summary.grants_by_user.entry(user.clone()).or_default() += 1;
        }
    }
}

impl UsageBuilder {
    pub fn add(&mut self, r: &AuditRecord) {
        let s = &mut self.summary;
        s.records += 1;
        if s.first.is_none() {
            s.first = Some(r.time.clone());
        }
        s.last = Some(r.time.clone());
        let id = r.request_id.as_deref();
        match r.event.as_str() {
            e if e == EventKind::Requested.name() => {
                let role = r.role.clone().unwrap_or_else(|| NO_ROLE.to_string());
                *s.requests_by_role.entry(role).or_default() += 1;
                if let Some(user) = &r.user {
                    *s.requests_by_user.entry(user.clone()).or_default() += 1;
                }
                if let (Some(id), Some(t)) = (id, r.time()) {
                    self.requested_at.insert(id.to_string(), t);
                }
                if let Some(id) = id {
                    self.undecided.insert(id.to_string(), day_of(&r.time));
                }
            }
            // An extension asked for or granted (by people, a rule or break-glass): not a new
            // request or grant.
            _ if r.extra.contains_key("EXTENSION") => {
                s.extensions += u64::from(r.extra["EXTENSION"] == "granted");
            }
            e if e == EventKind::Approved.name() => {
                // One of several approvals a role needs grants nothing yet; jitd's own words
                // say so (the record has no field for it).
                let partial = r.message.contains("more approval(s) needed");
                let decided_now = id.is_none_or(|id| {
                    self.undecided.contains_key(id) || !self.requested_at.contains_key(id)
                });
                if !partial && decided_now {
                    self.decided_after(r);
                    self.outcome(r, "approved");
                    self.granted(r);
                }
                let s = &mut self.summary;
                s.approved += 1;
                if r.approver
                    .as_deref()
                    .is_some_and(|a| a.starts_with("rule:"))
                {
                    s.approved_automatically += 1;
                }
                // Until the approval that grants: the wait ends when access begins.
                if !partial {
                    let asked = id.and_then(|id| self.requested_at.remove(id));
                    if let (Some(asked), Some(t)) = (asked, r.time()) {
                        self.approval_secs.push((t - asked).num_seconds().max(0));
                    }
                }
            }
            e if [
                EventKind::Denied.name(),
                EventKind::Cancelled.name(),
                EventKind::TimedOut.name(),
            ]
            .contains(&e) =>
            {
                if e == EventKind::Denied.name() {
                    self.decided_after(r);
                }
                if id.is_none_or(|id| self.undecided.contains_key(id)) {
                    self.outcome(r, e);
                }
                if let Some(id) = id {
                    self.requested_at.remove(id);
                }
            }
            e if e == EventKind::BreakGlass.name() => {
                self.outcome(r, "break_glass");
                self.granted(r);
                let s = &mut self.summary;
                s.break_glass_uses += 1;
                if s.break_glass.len() < MAX_LISTED {
                    if let Some(id) = id {
                        self.break_glass_at
                            .insert(id.to_string(), s.break_glass.len());
                    }
                    s.break_glass.push(BreakGlassUse {
                        id: id.unwrap_or("").to_string(),
                        time: r.time.clone(),
                        user: r.user.clone().unwrap_or_default(),
                        role: r.role.clone().unwrap_or_default(),
                        reason: r.reason.clone().unwrap_or_default(),
                        reviewed_by: None,
                        reviewed_at: None,
                    });
                }
            }
            e if e == EventKind::Reviewed.name() => {
                s.break_glass_reviewed += 1;
                if let Some(&i) = id.and_then(|id| self.break_glass_at.get(id)) {
                    let use_ = &mut s.break_glass[i];
                    use_.reviewed_by = r.approver.clone().or_else(|| r.user.clone());
                    use_.reviewed_at = Some(r.time.clone());
                }
            }
            e if e == EventKind::Completed.name() => s.ended_early_by_done += 1,
            _ => {}
        }
    }

    pub fn finish(mut self, configured_roles: &[String]) -> UsageSummary {
        for (_, day) in std::mem::take(&mut self.undecided) {
            *self
                .summary
                .requests_per_day
                .entry(day)
                .or_default()
                .entry("undecided".to_string())
                .or_default() += 1;
        }
        // A role granted at once (break-glass, `jitd grant`, a rule) has no `requested` record.
        let used: BTreeSet<&String> = self
            .summary
            .requests_by_role
            .keys()
            .chain(self.summary.grants_by_role.keys())
            .collect();
        self.summary.roles_never_used = configured_roles
            .iter()
            .filter(|r| !used.contains(r))
            .cloned()
            .collect();
        self.approval_secs.sort_unstable();
        let secs = &self.approval_secs;
        self.summary.time_to_approval = (!secs.is_empty()).then(|| Latency {
            count: secs.len(),
            median_secs: secs[secs.len() / 2],
            p90_secs: secs[(secs.len() * 9 / 10).min(secs.len() - 1)],
            max_secs: secs[secs.len() - 1],
        });
        self.summary
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record of `event` for request `id` at minute `min` of 2026-11-30.
    fn rec(event: &str, id: &str, min: u32, extra: &[(&str, &str)], message: &str) -> AuditRecord {
        serde_json::from_value(serde_json::json!({
            "seq": 1,
            "time": format!("2026-11-30T10:{min:02}:00Z"),
            "event": event,
            "message_id": "x",
            "request_id": id,
            "user": "alice",
            "approver": "root",
            "role": "db",
            "reason": "r",
            "extra": extra.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
            "message": message,
            "prev": "p",
        }))
        .unwrap()
    }

    #[test]
    fn outcomes_grants_decision_times_extensions_and_break_glass_are_counted_once_each() {
        let mut b = UsageBuilder::default();
        // Two approvals needed: the first grants nothing yet.
        b.add(&rec("requested", "a", 0, &[], "alice asked"));
        b.add(&rec(
            "approved",
            "a",
            3,
            &[],
            "bob approved; 1 more approval(s) needed",
        ));
        b.add(&rec(
            "approved",
            "a",
            7,
            &[],
            "root approved; the grant is active",
        ));
        // An extension asked for and approved: neither a request nor a grant.
        b.add(&rec("extended", "a", 8, &[("EXTENSION", "asked")], "asks"));
        b.add(&rec(
            "extended",
            "a",
            9,
            &[("EXTENSION", "granted")],
            "approved",
        ));
        b.add(&rec("requested", "d", 0, &[], "asked"));
        b.add(&rec("denied", "d", 30, &[], "no"));
        b.add(&rec("requested", "w", 0, &[], "asked, still waiting"));
        // Break-glass, extended through break-glass, then reviewed.
        b.add(&rec("break_glass", "g", 1, &[], "BREAK-GLASS"));
        b.add(&rec(
            "break_glass",
            "g",
            2,
            &[("EXTENSION", "granted")],
            "extended",
        ));
        b.add(&rec("reviewed", "g", 5, &[], "reviewed"));
        let u = b.finish(&["db".into(), "web".into()]);

        let day = &u.requests_per_day["2026-11-30"];
        assert_eq!(day["approved"], 1);
        assert_eq!(day["denied"], 1);
        assert_eq!(day["break_glass"], 1);
        assert_eq!(day["undecided"], 1);
        assert_eq!(
            u.grants_by_role["db"], 2,
            "the approved grant and the break-glass one"
        );
        assert_eq!(u.extensions, 2);
        assert_eq!(u.break_glass_uses, 1);
        assert_eq!(u.break_glass_reviewed, 1);
        assert_eq!(
            u.break_glass[0].reviewed_at.as_deref(),
            Some("2026-11-30T10:05:00Z")
        );
        assert_eq!(u.decision_time["5m-15m"], 1, "approved after 7 minutes");
        assert_eq!(u.decision_time["15m-1h"], 1, "denied after 30 minutes");
        assert_eq!(u.roles_never_used, ["web"]);
    }
}
