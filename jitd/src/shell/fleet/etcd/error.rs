//! What can go wrong talking to etcd, in the terms an operator acts on, and how the
//! gateway's error shapes map onto it.

use std::fmt;

/// A failed etcd operation. The texts never contain a password or a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EtcdError {
    /// The revision asked for is older than etcd's history: re-list, then watch from the
    /// list's revision + 1 (deletions in the gap are only visible as absence from the list).
    Compacted { compact_revision: i64 },
    /// No endpoint answered in time, or the one in use failed (down, no leader, partitioned).
    /// Try again later; another endpoint may answer.
    Unavailable(String),
    /// etcd refused the credentials (wrong user or password, or auth required but none set).
    Auth(String),
    /// The etcd user lacks the permission (RBAC) for this key or prefix.
    Denied(String),
    /// A value, answer or watch line exceeds jitd's bounds or etcd's request limit.
    TooLarge(String),
    /// The lease named in a put no longer exists (expired or revoked): grant a new one.
    LeaseGone,
    /// The settings cannot work (bad endpoint URL, unreadable certificate or key).
    Config(String),
    /// An answer jitd does not understand: not an etcd 3.4+ JSON gateway, or a bug.
    Protocol(String),
}

impl fmt::Display for EtcdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EtcdError::Compacted { compact_revision } => write!(
                f,
                "etcd has compacted its history up to revision {compact_revision}, past the \
                 revision asked for (this host was away longer than --auto-compaction-retention): \
                 re-list and watch from there"
            ),
            EtcdError::Unavailable(why) => write!(
                f,
                "etcd is unavailable: {why} (check that the fleet endpoints run and are reachable \
                 from this host, and that the cluster has a leader: etcdctl endpoint status)"
            ),
            EtcdError::Auth(why) => write!(
                f,
                "etcd refused the credentials: {why} (check the fleet user and password; through \
                 the JSON gateway a client certificate must have no CN)"
            ),
            EtcdError::Denied(why) => write!(
                f,
                "etcd denied the operation: {why} (check the role granted to this host's etcd \
                 user: etcdctl user get USER, etcdctl role get ROLE)"
            ),
            EtcdError::TooLarge(why) => write!(f, "too large for etcd: {why}"),
            EtcdError::LeaseGone => write!(
                f,
                "the etcd lease has expired or was revoked (this host missed its keepalives): \
                 grant a new lease"
            ),
            EtcdError::Config(why) => write!(f, "etcd settings: {why}"),
            EtcdError::Protocol(why) => write!(
                f,
                "unexpected answer from etcd: {why} (is the endpoint an etcd 3.4 or later client \
                 URL, serving the JSON gateway at /v3/?)"
            ),
        }
    }
}

impl std::error::Error for EtcdError {}

/// What a caller does with one failed attempt on one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// This endpoint cannot serve now: move on to the next one.
    NextEndpoint(EtcdError),
    /// The token expired or is missing: authenticate again, then retry once.
    Reauthenticate,
    /// The cluster answered: another endpoint would say the same.
    Final(EtcdError),
}

// gRPC status codes (google.golang.org/grpc/codes) the gateway passes through.
const CANCELED: i64 = 1;
const UNKNOWN: i64 = 2;
const INVALID_ARGUMENT: i64 = 3;
const DEADLINE_EXCEEDED: i64 = 4;
const NOT_FOUND: i64 = 5;
const PERMISSION_DENIED: i64 = 7;
const RESOURCE_EXHAUSTED: i64 = 8;
const OUT_OF_RANGE: i64 = 11;
const UNAVAILABLE: i64 = 14;
const UNAUTHENTICATED: i64 = 16;

/// Classifies an etcd error by its gRPC code and message, as the gateway reports it in a
/// body (`{"error":"…","code":N}`) or a stream line (`{"error":{"grpc_code":N,…}}`).
pub fn classify(code: i64, message: &str) -> Verdict {
    let m = message.to_string();
    match code {
        UNAUTHENTICATED => Verdict::Reauthenticate,
        // Auth is enabled and the request carried no token (or the member forgot it).
        INVALID_ARGUMENT if message.contains("user name is empty") => Verdict::Reauthenticate,
        INVALID_ARGUMENT if message.contains("authentication failed") => {
            Verdict::Final(EtcdError::Auth(m))
        }
        INVALID_ARGUMENT if message.contains("too large") => Verdict::Final(EtcdError::TooLarge(m)),
        PERMISSION_DENIED => Verdict::Final(EtcdError::Denied(m)),
        NOT_FOUND if message.contains("lease not found") => Verdict::Final(EtcdError::LeaseGone),
        // A compacted revision in a range; a watch says so with compact_revision instead.
        OUT_OF_RANGE if message.contains("compacted") => Verdict::Final(EtcdError::Compacted {
            compact_revision: 0,
        }),
        // No leader, leader changed, member stopping, timeouts, "too many requests": this
        // member cannot serve now, another one may.
        CANCELED | UNKNOWN | DEADLINE_EXCEEDED | RESOURCE_EXHAUSTED | UNAVAILABLE => {
            Verdict::NextEndpoint(EtcdError::Unavailable(m))
        }
        _ => Verdict::Final(EtcdError::Protocol(format!("gRPC code {code}: {m}"))),
    }
}

/// Classifies an HTTP error status whose body is not an etcd error object.
pub fn classify_http(status: u16, body: &str) -> Verdict {
    let snippet: String = body.chars().take(200).collect();
    let snippet = snippet.trim();
    if body.contains("CommonName") {
        return Verdict::Final(EtcdError::Auth(format!(
            "HTTP {status}: {snippet} (the client certificate has a CN; the gateway refuses those)"
        )));
    }
    match status {
        408 | 429 | 500..=599 => {
            Verdict::NextEndpoint(EtcdError::Unavailable(format!("HTTP {status}: {snippet}")))
        }
        _ => Verdict::Final(EtcdError::Protocol(format!("HTTP {status}: {snippet}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expired_token_or_a_missing_one_means_authenticate_again() {
        assert_eq!(
            classify(16, "etcdserver: invalid auth token"),
            Verdict::Reauthenticate
        );
        assert_eq!(
            classify(3, "etcdserver: user name is empty"),
            Verdict::Reauthenticate
        );
    }

    #[test]
    fn a_wrong_password_and_a_missing_permission_are_final() {
        assert!(matches!(
            classify(
                3,
                "etcdserver: authentication failed, invalid user ID or password"
            ),
            Verdict::Final(EtcdError::Auth(_))
        ));
        assert!(matches!(
            classify(7, "etcdserver: permission denied"),
            Verdict::Final(EtcdError::Denied(_))
        ));
    }

    #[test]
    fn no_leader_and_a_closing_member_move_on_to_the_next_endpoint() {
        for (code, m) in [
            (14, "etcdserver: no leader"),
            (14, "transport is closing"),
            (1, "grpc: the client connection is closing"),
            (4, "context deadline exceeded"),
        ] {
            assert!(
                matches!(classify(code, m), Verdict::NextEndpoint(_)),
                "{code} {m}"
            );
        }
        assert!(matches!(
            classify_http(503, "Service Unavailable"),
            Verdict::NextEndpoint(_)
        ));
    }

    #[test]
    fn a_certificate_with_a_cn_is_named_as_the_cause() {
        let v = classify_http(
            400,
            "CommonName of client sending a request against gateway will be ignored",
        );
        let Verdict::Final(e @ EtcdError::Auth(_)) = v else {
            panic!("{v:?}")
        };
        assert!(e.to_string().contains("no CN"), "{e}");
    }
}
