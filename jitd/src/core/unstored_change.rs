//! A change the audit log holds and the state directory never stored.
//!
//! jitd logs a change (a request, a decision, a revocation...) before it stores the request's
//! record, inside the writer's turn, so nothing is acknowledged that is not on the record. A
//! crash between the two writes leaves an audit record of a change that did not happen: an
//! `approved` of a request still pending, a `revoked` of a grant still active, a `requested`
//! of a request that does not exist. An auditor reading the log would believe it. So each
//! stored record carries the `seq` of the last audit record of a change made to it
//! ([`Request::audit_seq`]), and at startup the last change the log holds is compared with
//! the record: a higher `seq` than the record's was never stored, and jitd says so in the log.
//!
//! Such records carry [`STORED_AFTER`]. Only the last of them can be in that gap: they are
//! written one at a time, in the writer's turn, each change stored before the next is logged.
//! Ends of windows (`expired`, `timed_out` by the clock) are not among them: they are logged
//! after the grant is gone from the host, stored after that, and an end logged but not stored
//! is applied and logged again at startup.

use chrono::{DateTime, Utc};
use jit_proto::State;

use super::model::Request;

/// The `extra` field (`JIT_STORED_AFTER=yes` in the journal) of an audit record written ahead
/// of storing the change it describes, in the writer's turn (a request, a decision, a
/// revocation, a reload's reassignment...). Only those are checked: a fleet request asked for
/// other hosts, or an end written to the fleet store, is logged with no local record to store.
pub const STORED_AFTER: &str = "STORED_AFTER";

/// The `extra` field (`JIT_NOT_STORED` in the journal) of a record that says the change
/// logged with that `seq` was not stored: startup's `reconciled`, or the `internal_error` of a
/// store that failed. Either one is said once: the next start finds it and says nothing more.
pub const NOT_STORED: &str = "NOT_STORED";

/// The last change record of the audit log, as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedChange {
    pub seq: u64,
    pub time: DateTime<Utc>,
    /// `EventKind::name` of the record.
    pub event: String,
    pub request_id: String,
}

/// What was never stored of a [`LoggedChange`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unstored {
    /// The request was never stored at all: it does not exist.
    Request,
    /// The request is stored as it was before the change, in this state.
    Change { state: State },
}

/// Whether `change` reached the stored record `stored` (the record of its request, if one was
/// loaded). `None` when it did, or when the record cannot tell (written before records
/// carried [`Request::audit_seq`]).
pub fn unstored(change: &LoggedChange, stored: Option<&Request>) -> Option<Unstored> {
    match stored {
        None => Some(Unstored::Request),
        Some(r) if r.audit_seq == 0 || r.audit_seq >= change.seq => None,
        Some(r) => Some(Unstored::Change { state: r.state() }),
    }
}

/// The sentence the audit log gets for `change`: what did not happen, and what holds instead.
pub fn describe(change: &LoggedChange, what: &Unstored) -> String {
    let logged = format!(
        "audit record {} ({} of request {} at {})",
        change.seq,
        change.event,
        change.request_id,
        change
            .time
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    );
    match what {
        Unstored::Request => format!(
            "{logged} was never stored: jitd stopped between logging it and storing it. \
             Request {} does not exist and nobody was told it did",
            change.request_id
        ),
        Unstored::Change { state } => format!(
            "{logged} was never stored: jitd stopped between logging it and storing it. The \
             change did not take effect and nobody was told it did; request {} is {}",
            change.request_id,
            state.as_str()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::lifecycle::Submission;
    use crate::core::model::GrantId;
    use jit_proto::Target;

    fn change(seq: u64, id: &str, event: &str) -> LoggedChange {
        LoggedChange {
            seq,
            time: DateTime::parse_from_rfc3339("2026-11-30T10:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
            event: event.into(),
            request_id: id.into(),
        }
    }

    fn pending(id: &str, audit_seq: u64) -> Request {
        let mut r = Request::open(
            GrantId::try_from(id.to_string()).unwrap(),
            Submission {
                uid: 1001,
                user: "alice".into(),
                target: Target::Ssh,
                duration: chrono::Duration::minutes(10),
                reason: "x".into(),
                ticket: None,
                role: None,
                approvals_required: 1,
                approver_groups: vec!["leads".into()],
                record: crate::core::recording::Record::Off,
            },
            change(1, id, "requested").time,
            chrono::Duration::hours(1),
        );
        r.audit_seq = audit_seq;
        r
    }

    #[test]
    fn an_approval_logged_after_what_the_record_holds_was_never_stored() {
        let id = GrantId::random().unwrap();
        let r = pending(id.as_str(), 41);
        assert_eq!(
            unstored(&change(42, id.as_str(), "approved"), Some(&r)),
            Some(Unstored::Change {
                state: State::Pending
            })
        );
    }

    #[test]
    fn a_change_the_record_holds_was_stored() {
        let id = GrantId::random().unwrap();
        assert_eq!(
            unstored(
                &change(42, id.as_str(), "approved"),
                Some(&pending(id.as_str(), 42))
            ),
            None
        );
        // A later change the log no longer holds as its last (a newer record's seq).
        assert_eq!(
            unstored(
                &change(42, id.as_str(), "approved"),
                Some(&pending(id.as_str(), 50))
            ),
            None
        );
    }

    #[test]
    fn a_record_older_than_the_seq_it_carries_cannot_tell_and_is_left_alone() {
        let id = GrantId::random().unwrap();
        assert_eq!(
            unstored(
                &change(42, id.as_str(), "approved"),
                Some(&pending(id.as_str(), 0))
            ),
            None
        );
    }

    #[test]
    fn a_request_logged_and_never_stored_does_not_exist() {
        let c = change(7, "abcdefghij", "requested");
        assert_eq!(unstored(&c, None), Some(Unstored::Request));
        let said = describe(&c, &Unstored::Request);
        assert!(said.contains("audit record 7"), "{said}");
        assert!(said.contains("abcdefghij does not exist"), "{said}");
    }

    #[test]
    fn the_sentence_names_the_record_and_the_state_that_holds() {
        let c = change(9, "abcdefghij", "revoked");
        let said = describe(
            &c,
            &Unstored::Change {
                state: State::Active,
            },
        );
        assert!(
            said.starts_with("audit record 9 (revoked of request abcdefghij at 2026-11-30T10:00:00.000Z) was never stored"),
            "{said}"
        );
        assert!(said.ends_with("request abcdefghij is active"), "{said}");
    }
}
