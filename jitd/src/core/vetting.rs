//! Whether a record loaded at startup may be enforced. Running, jitd never opens a window
//! longer than the policy's maximum, and it writes a grant's record only after the approval
//! that opened (or extended) its window is in the audit log. An active grant that breaks either
//! was not written by jitd as it ran — edited, planted, or restored from elsewhere — and is set
//! aside instead of enforced. Pure: the caller reads the audit log and passes what it found.

use std::collections::HashMap;

use chrono::{DateTime, Duration, SubsecRound, Utc};

use super::model::{GrantId, Phase, Request};
use super::policy::Policy;
use super::timestamp::rfc3339;

/// What the audit log approved: for each grant id, the end of the latest window an approval
/// (or extension) there gave it, to the second.
pub type Approved = HashMap<GrantId, DateTime<Utc>>;

/// An approval is written to the audit log just after the window it opens starts; reading the
/// log back from an hour before the earliest window start allows for the clock being stepped.
pub const CLOCK_SLACK: Duration = Duration::hours(1);

fn human(d: Duration) -> String {
    jit_proto::duration::format(d.to_std().unwrap_or_default())
}

/// Why `r` must not be enforced, or `None` when it may be. Only active grants are judged: a
/// pending request is judged again when it is approved, an ended one gives nothing. A grant
/// whose window has closed by `now` is not looked up in `approved` (it is ended at startup
/// anyway), only measured against the maximum.
pub fn unaccounted(
    r: &Request,
    policy: &Policy,
    approved: &Approved,
    now: DateTime<Utc>,
) -> Option<String> {
    let Phase::Active { window, .. } = r.phase else {
        return None;
    };
    let (max, role) = policy.max_duration_for(r.role.as_deref());
    let max = Duration::from_std(max).unwrap_or(Duration::MAX);
    let length = window.expires_at - window.approved_at;
    if length > max {
        return Some(format!(
            "its window of {} is longer than the maximum of {}{}",
            human(length),
            human(max),
            role.map(|r| format!(" for role {r}")).unwrap_or_default()
        ));
    }
    if window.expires_at <= now {
        return None;
    }
    match approved.get(&r.id) {
        None => Some("no approval of it is in the audit log".into()),
        Some(until) if window.expires_at.trunc_subsecs(0) > *until => Some(format!(
            "it lasts until {}, but the audit log approved it only until {}",
            rfc3339(window.expires_at),
            rfc3339(*until)
        )),
        Some(_) => None,
    }
}

/// The grants whose approvals [`unaccounted`] will look for, and how far back in the audit log
/// they can be (the earliest window start among them, less [`CLOCK_SLACK`]); `None` when there
/// are none. Only open windows within the maximum count, so a forged window start cannot make
/// jitd read the whole log.
pub fn approvals_wanted<'a>(
    records: impl IntoIterator<Item = &'a Request>,
    policy: &Policy,
    now: DateTime<Utc>,
) -> Option<(Vec<GrantId>, DateTime<Utc>)> {
    let mut ids = Vec::new();
    let mut since: Option<DateTime<Utc>> = None;
    for r in records {
        let Phase::Active { window, .. } = r.phase else {
            continue;
        };
        let (max, _) = policy.max_duration_for(r.role.as_deref());
        let within = window.expires_at - window.approved_at
            <= Duration::from_std(max).unwrap_or(Duration::MAX);
        if within && window.expires_at > now {
            ids.push(r.id.clone());
            since = Some(since.map_or(window.approved_at, |s| s.min(window.approved_at)));
        }
    }
    since.map(|s| (ids, s - CLOCK_SLACK))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::lifecycle::{By, Submission};
    use crate::core::policy::Defaults;
    use chrono::TimeZone;
    use jit_proto::Target;

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + secs, 0).unwrap()
    }

    fn policy() -> Policy {
        Policy::open(Defaults {
            approver_groups: vec!["leads".into()],
            default_duration: std::time::Duration::from_secs(900),
            max_duration: std::time::Duration::from_secs(4 * 3600),
            require_reason: false,
            record: crate::core::recording::Record::Off,
        })
    }

    /// A grant approved at `t(0)` for `minutes`.
    fn grant(id: &str, minutes: i64) -> Request {
        let mut r = Request::open(
            GrantId::try_from(id.to_string()).unwrap(),
            Submission {
                uid: 1001,
                user: "alice".into(),
                target: Target::Ssh,
                duration: Duration::minutes(minutes),
                reason: "x".into(),
                ticket: None,
                role: None,
                approvals_required: 1,
                approver_groups: vec!["leads".into()],
                record: crate::core::recording::Record::Off,
            },
            t(0),
            Duration::hours(1),
        );
        r.approve(&By::user("bob", 1002), None, t(0)).unwrap();
        r
    }

    #[test]
    fn a_forged_or_stretched_grant_is_not_accounted_for_and_a_real_one_is() {
        let p = policy();
        let real = grant("aaaaaaaaaa", 60);
        let mut approved = Approved::new();
        approved.insert(real.id.clone(), t(3600));
        assert_eq!(unaccounted(&real, &p, &approved, t(10)), None);

        // A 30-day window: longer than any grant the policy gives.
        let mut month = grant("bbbbbbbbbb", 60);
        if let Phase::Active { window, .. } = &mut month.phase {
            window.approved_at = window.expires_at - Duration::days(30);
        }
        approved.insert(month.id.clone(), t(3600));
        let why = unaccounted(&month, &p, &approved, t(10)).unwrap();
        assert!(
            why.contains("window of 30d is longer than the maximum of 4h"),
            "{why}"
        );

        // No approval in the trail.
        let planted = grant("cccccccccc", 60);
        let why = unaccounted(&planted, &p, &approved, t(10)).unwrap();
        assert!(why.contains("no approval"), "{why}");

        // Approved, but its end moved later than the approval said.
        let mut moved = grant("dddddddddd", 60);
        approved.insert(moved.id.clone(), t(1800));
        let why = unaccounted(&moved, &p, &approved, t(10)).unwrap();
        assert!(why.contains("approved it only until"), "{why}");
        // Sub-seconds the log does not carry are no reason.
        approved.insert(moved.id.clone(), t(3600));
        if let Phase::Active { window, .. } = &mut moved.phase {
            window.expires_at += Duration::milliseconds(400);
        }
        assert_eq!(unaccounted(&moved, &p, &approved, t(10)), None);

        // A window already closed ends at startup; it needs no approval to be ended.
        assert_eq!(unaccounted(&planted, &p, &approved, t(7200)), None);
        // Pending and ended records are not judged here.
        let mut pending = grant("eeeeeeeeee", 60);
        pending.phase = Phase::Pending { until: t(99) };
        assert_eq!(unaccounted(&pending, &p, &Approved::new(), t(10)), None);
    }

    #[test]
    fn the_log_is_read_back_only_as_far_as_open_windows_within_the_maximum_reach() {
        let p = policy();
        let a = grant("aaaaaaaaaa", 60);
        let mut old = grant("bbbbbbbbbb", 60);
        if let Phase::Active { window, .. } = &mut old.phase {
            window.approved_at -= Duration::days(365);
        }
        let (ids, since) = approvals_wanted([&a, &old], &p, t(10)).unwrap();
        assert_eq!(ids, vec![a.id.clone()]);
        assert_eq!(since, t(0) - CLOCK_SLACK);
        assert!(approvals_wanted([&a], &p, t(3600)).is_none());
    }
}
