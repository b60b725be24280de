//! What the holder of an SSH grant can leave to run after the grant, outside any session: a
//! crontab, at jobs, lingering (their systemd user manager then runs without a login), and
//! services of that manager. The record keeps what was scheduled when the grant's first
//! session opened ([`UserJobs`]); at the end, what was added since is reported
//! ([`UserJobs::added_since`]); `user_manager.rs` decides whether the end also stops the
//! holder's systemd user manager. Pure: the host reads the spools.

use serde::{Deserialize, Serialize};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
