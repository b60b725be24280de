//! What jitd's answer means for the module: a decision it must follow, or trouble that the
//! `fail=` policy decides.

use jit_proto::{ClientError, ErrorCode, Response};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Check: an active grant covers this access.
    Allowed { grant_id: String },
    /// OpenSession/CloseSession: jitd recorded it (`None` for a session no grant covers,
    /// such as an exempt user's).
    Registered {
        grant_id: Option<String>,
        /// The settings of the session's tlog recorder (a recorded SSH grant).
        tlog_conf: Option<String>,
    },
    /// A trusted daemon said no. Followed whatever `fail=` says: fail-open is about an
    /// unavailable daemon, never about overriding a decision.
    Refused(String),
    /// jitd is truly not there: no socket, connection refused, or the socket is served by
    /// a process that is not root. The only case `fail=open` may open for.
    Unavailable(String),
    /// jitd is there but gave no usable answer: slow, busy, garbage, or a daemon-side
    /// failure. Never opened by `fail=open`: any local user can make a daemon slow.
    Trouble(String),
}

pub fn classify(answer: Result<Response, ClientError>) -> Reply {
    match answer {
        Ok(Response::Allowed { grant_id }) => Reply::Allowed { grant_id },
        Ok(Response::SessionRegistered {
            grant_id,
            tlog_conf,
        }) => Reply::Registered {
            grant_id,
            tlog_conf,
        },
        Ok(Response::Denied { reason }) => Reply::Refused(reason),
        Ok(Response::Error { code, message }) => match code {
            // Decisions about this caller or this access.
            ErrorCode::Forbidden
            | ErrorCode::PolicyDenied
            | ErrorCode::NotFound
            | ErrorCode::InvalidState => Reply::Refused(format!("{code:?}: {message}")),
            // The daemon could not decide.
            ErrorCode::BadRequest
            | ErrorCode::UnsupportedVersion
            | ErrorCode::Busy
            | ErrorCode::Unavailable
            | ErrorCode::Internal => Reply::Trouble(format!("jitd error {code:?}: {message}")),
        },
        Ok(other) => Reply::Trouble(format!("unexpected answer from jitd: {}", kind_of(&other))),
        Err(e @ (ClientError::NotRunning(..) | ClientError::UntrustedPeer(_))) => {
            Reply::Unavailable(e.to_string())
        }
        Err(e) => Reply::Trouble(e.to_string()),
    }
}

fn kind_of(response: &Response) -> &'static str {
    match response {
        Response::Allowed { .. } => "allowed",
        Response::Denied { .. } => "denied",
        Response::SessionRegistered { .. } => "session_registered",
        Response::Request { .. } => "request",
        Response::Requests { .. } => "requests",
        Response::Reloaded { .. } => "reloaded",
        Response::Metrics { .. } => "metrics",
        Response::Replay { .. } => "replay",
        Response::ReasonWanted { .. } => "reason_wanted",
        Response::FleetStatus { .. } => "fleet_status",
        Response::FleetGc { .. } => "fleet_gc",
        Response::Error { .. } => "error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_refusal_is_a_decision_and_an_outage_is_trouble() {
        assert_eq!(
            classify(Ok(Response::Denied {
                reason: "no grant".into()
            })),
            Reply::Refused("no grant".into())
        );
        assert!(matches!(
            classify(Ok(Response::Error {
                code: ErrorCode::Forbidden,
                message: "root only".into()
            })),
            Reply::Refused(_)
        ));
        assert!(matches!(
            classify(Ok(Response::Error {
                code: ErrorCode::Busy,
                message: "later".into()
            })),
            Reply::Trouble(_)
        ));
        assert!(matches!(
            classify(Err(ClientError::TimedOut(Duration::from_millis(5)))),
            Reply::Trouble(_)
        ));
        assert!(matches!(
            classify(Err(ClientError::UntrustedPeer(1000))),
            Reply::Unavailable(_)
        ));
        assert!(matches!(
            classify(Err(ClientError::NotRunning(
                "/run/jitd/jitd.sock".into(),
                std::io::ErrorKind::ConnectionRefused.into()
            ))),
            Reply::Unavailable(_)
        ));
    }

    #[test]
    fn an_answer_to_another_question_is_trouble() {
        assert!(matches!(
            classify(Ok(Response::Requests { requests: vec![], omitted: 0 })),
            Reply::Trouble(m) if m.contains("requests")
        ));
    }
}
