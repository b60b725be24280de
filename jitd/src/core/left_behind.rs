//! What the holder of an SSH grant can leave to run after the grant, outside any session: a
//! crontab, at jobs, lingering (their systemd user manager then runs without a login), and
//! services of that manager. The record keeps what was scheduled when the grant's first
//! session opened ([`UserJobs`]); at the end, what was added since is reported
//! ([`UserJobs::added_since`]), and the user manager is stopped when the grant was the
//! holder's last SSH access ([`stops_user_manager`]). Pure: the host reads the spools.

use jit_proto::{GrantKind, State};
use serde::{Deserialize, Serialize};

use super::model::Request;

/// At most this many at job names are kept in a record; a user with more at the start has
/// their at jobs left uncompared (the record stays small).
pub const MAX_AT_JOBS: usize = 64;

/// What a user had scheduled at one moment. Small: a modification time, a few names, a flag.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserJobs {
    /// The crontab's modification time in nanoseconds since the epoch; `None`: no crontab.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crontab: Option<i64>,
    /// Names of the at jobs the user owned, sorted; `None` when they could not be listed or
    /// were more than [`MAX_AT_JOBS`].
    #[serde(default)]
    pub at_jobs: Option<Vec<String>>,
    /// Whether lingering was enabled for the user.
    #[serde(default)]
    pub linger: bool,
}

/// How the crontab differs from the start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrontabChange {
    Created,
    Changed,
}

/// What [`UserJobs::added_since`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Added {
    pub crontab: Option<CrontabChange>,
    /// At jobs that were not there at the start (all present ones when `at_jobs_unsure`).
    pub at_jobs: Vec<String>,
    /// The at jobs of the start or of now are unknown: `at_jobs` may hold older ones.
    pub at_jobs_unsure: bool,
    /// Lingering was enabled since.
    pub linger: bool,
}

impl Added {
    pub fn is_empty(&self) -> bool {
        self.crontab.is_none() && self.at_jobs.is_empty() && !self.linger
    }
}

impl UserJobs {
    /// `self`, read now, against `start`: what the user added (or changed) in between.
    pub fn added_since(&self, start: &UserJobs) -> Added {
        let crontab = match (start.crontab, self.crontab) {
            (None, Some(_)) => Some(CrontabChange::Created),
            (Some(before), Some(now)) if before != now => Some(CrontabChange::Changed),
            _ => None,
        };
        let (at_jobs, at_jobs_unsure) = match (&start.at_jobs, &self.at_jobs) {
            (Some(before), Some(now)) => (
                now.iter()
                    .filter(|j| before.binary_search(j).is_err())
                    .cloned()
                    .collect(),
                false,
            ),
            (None, Some(now)) => (now.clone(), true),
            (_, None) => (Vec::new(), true),
        };
        Added {
            crontab,
            at_jobs,
            at_jobs_unsure,
            linger: self.linger && !start.linger,
        }
    }

    /// What a record keeps: the at job names sorted, or none when there are too many.
    pub fn for_record(mut self) -> UserJobs {
        self.at_jobs = self
            .at_jobs
            .filter(|j| j.len() <= MAX_AT_JOBS)
            .map(|mut j| {
                j.sort_unstable();
                j.dedup();
                j
            });
        self
    }
}

/// Whether the end of `ending` should stop its holder's systemd user manager (and so every
/// service it runs: `systemd-run --user`, lingering units). Only for an SSH grant that was
/// used (a session opened under it, so it has [`Request::jobs_at_start`]), and only when none
/// of `others`, the holder's other active SSH grants, has a session open: their login keeps
/// the manager.
pub fn stops_user_manager<'a>(
    ending: &Request,
    others: impl IntoIterator<Item = &'a Request>,
) -> bool {
    ending.kind() == GrantKind::Ssh
        && ending.jobs_at_start.is_some()
        && !others.into_iter().any(|r| {
            r.id != ending.id
                && r.uid == ending.uid
                && r.kind() == GrantKind::Ssh
                && r.state() == State::Active
                && !r.sessions.is_empty()
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::{GrantId, Phase, Session, Window};
    use chrono::{DateTime, Utc};
    use jit_proto::Target;

    fn jobs(crontab: Option<i64>, at: &[&str], linger: bool) -> UserJobs {
        UserJobs {
            crontab,
            at_jobs: Some(at.iter().map(|s| s.to_string()).collect()),
            linger,
        }
        .for_record()
    }

    #[test]
    fn nothing_added_is_empty() {
        let start = jobs(Some(5), &["a01", "a02"], true);
        assert!(start.clone().added_since(&start).is_empty());
        // Removing things is not leaving something behind.
        assert!(jobs(None, &["a01"], false).added_since(&start).is_empty());
    }

    #[test]
    fn a_new_or_rewritten_crontab_new_at_jobs_and_lingering_are_reported() {
        let start = jobs(None, &["a01"], false);
        let now = jobs(Some(7), &["a03", "a01", "a02"], true);
        assert_eq!(
            now.added_since(&start),
            Added {
                crontab: Some(CrontabChange::Created),
                at_jobs: vec!["a02".into(), "a03".into()],
                at_jobs_unsure: false,
                linger: true,
            }
        );
        let edited = jobs(Some(8), &["a01"], false);
        assert_eq!(
            edited.added_since(&jobs(Some(7), &["a01"], false)).crontab,
            Some(CrontabChange::Changed)
        );
    }

    #[test]
    fn too_many_at_jobs_at_the_start_are_not_kept_and_the_comparison_says_so() {
        let many: Vec<String> = (0..=MAX_AT_JOBS).map(|n| format!("a{n:05}")).collect();
        let start = UserJobs {
            crontab: None,
            at_jobs: Some(many.clone()),
            linger: false,
        }
        .for_record();
        assert_eq!(start.at_jobs, None);
        let now = UserJobs {
            at_jobs: Some(vec!["a99999".into()]),
            ..UserJobs::default()
        };
        let added = now.added_since(&start);
        assert!(added.at_jobs_unsure);
        assert_eq!(added.at_jobs, vec!["a99999".to_string()]);
    }

    #[test]
    fn old_records_and_snapshots_read_back() {
        let text = serde_json::to_string(&jobs(Some(1), &["b"], true)).unwrap();
        assert_eq!(
            serde_json::from_str::<UserJobs>(&text).unwrap(),
            jobs(Some(1), &["b"], true)
        );
        assert_eq!(
            serde_json::from_str::<UserJobs>("{}").unwrap(),
            UserJobs::default()
        );
    }

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn grant(id: &str, uid: u32, target: Target, used: bool, sessions: usize) -> Request {
        let session = Session {
            pid: 1,
            service: "sshd".into(),
            user: "alice".into(),
            ruser: None,
            tty: None,
            rhost: None,
            audit_session: None,
            opened_at: at("2026-11-29T10:00:00Z"),
            process: None,
        };
        Request {
            id: GrantId::try_from(id.to_string()).unwrap(),
            uid,
            user: "alice".into(),
            target,
            duration_secs: 3600,
            reason: "r".into(),
            ticket: None,
            role: None,
            approvals_required: 1,
            approver_groups: vec![],
            requested_at: at("2026-11-29T09:00:00Z"),
            phase: Phase::Active {
                window: Window {
                    approved_at: at("2026-11-29T09:00:00Z"),
                    expires_at: at("2026-11-29T11:00:00Z"),
                },
                extension: None,
            },
            decisions: vec![],
            sessions: vec![session; sessions],
            failure: None,
            break_glass: None,
            jobs_at_start: used.then(|| Box::new(UserJobs::default())),
        }
    }

    #[test]
    fn the_user_manager_stops_with_the_last_used_ssh_grant_of_its_user() {
        let ending = grant("aaaaaaaaaa", 1001, Target::Ssh, true, 0);
        assert!(stops_user_manager(&ending, []), "no other session: stop");
        assert!(
            stops_user_manager(&ending, [&ending]),
            "itself does not count"
        );

        let idle = grant("bbbbbbbbbb", 1001, Target::Ssh, true, 0);
        assert!(
            stops_user_manager(&ending, [&idle]),
            "another grant nobody is logged in under keeps nothing running"
        );
        let sudo = Target::Sudo {
            command: vec!["/usr/bin/id".into()],
        };
        let sudo_session = grant("cccccccccc", 1001, sudo, false, 1);
        assert!(stops_user_manager(&ending, [&sudo_session]));
        let someone_else = grant("dddddddddd", 1002, Target::Ssh, true, 1);
        assert!(stops_user_manager(&ending, [&someone_else]));

        let logged_in = grant("eeeeeeeeee", 1001, Target::Ssh, true, 1);
        assert!(
            !stops_user_manager(&ending, [&idle, &logged_in]),
            "another SSH login of the holder keeps its manager"
        );
        let never_used = grant("ffffffffff", 1001, Target::Ssh, false, 0);
        assert!(
            !stops_user_manager(&never_used, []),
            "a grant nobody logged in under started nothing"
        );
    }
}
