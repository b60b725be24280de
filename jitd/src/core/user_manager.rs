//! Whether the end of an SSH grant stops its holder's systemd user manager (and so every
//! service it runs: `systemd-run --user`, lingering units). Pure: the host stops it.

use jit_proto::{GrantKind, State};

use super::model::Request;

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
    use chrono::{DateTime, Utc};
    use jit_proto::Target;

    use super::*;
    use crate::core::left_behind::UserJobs;
    use crate::core::model::{GrantId, Phase, Session, Window};

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
            approver_groups: Box::default(),
            record: crate::core::recording::Record::Off,
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
            login: None,
            fleet: None,
            audit_seq: 0,
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
