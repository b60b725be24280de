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
}

#[derive(Default)]
pub struct UsageBuilder {
    summary: UsageSummary,
    requested_at: HashMap<String, DateTime<Utc>>,
    approval_secs: Vec<i64>,
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
            }
            e if e == EventKind::Approved.name() => {
                s.approved += 1;
                if r.approver
                    .as_deref()
                    .is_some_and(|a| a.starts_with("rule:"))
                {
                    s.approved_automatically += 1;
                }
                let asked = id.and_then(|id| self.requested_at.remove(id));
                if let (Some(asked), Some(t)) = (asked, r.time()) {
                    self.approval_secs.push((t - asked).num_seconds().max(0));
                }
            }
            e if [
                EventKind::Denied.name(),
                EventKind::Cancelled.name(),
                EventKind::TimedOut.name(),
            ]
            .contains(&e) =>
            {
                if let Some(id) = id {
                    self.requested_at.remove(id);
                }
            }
            e if e == EventKind::Completed.name() => s.ended_early_by_done += 1,
            _ => {}
        }
    }

    pub fn finish(mut self, configured_roles: &[String]) -> UsageSummary {
        let used: BTreeSet<&String> = self.summary.requests_by_role.keys().collect();
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
