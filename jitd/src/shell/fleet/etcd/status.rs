//! Each member's own account of itself, for `jitd fleet status`: asked of every endpoint,
//! not failed over, so an operator sees which ones are down.

use serde_json::{json, Value};

use super::client::{detail, Etcd};
use super::error::{EtcdError, Verdict};
use super::wire;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberStatus {
    /// As configured.
    pub endpoint: String,
    /// It answered the status call.
    pub reachable: bool,
    /// The etcd server version ("3.4.23").
    pub version: Option<String>,
    /// It is the raft leader.
    pub leader: bool,
    /// Its store revision and raft term.
    pub revision: Option<i64>,
    pub raft_term: Option<i64>,
    pub db_size: Option<i64>,
    /// Why it did not answer, or the alarms it reports (NOSPACE, CORRUPT).
    pub error: Option<String>,
}

impl Etcd {
    /// Every configured endpoint's status, in configured order; never fails as a whole.
    pub fn status(&self) -> Vec<MemberStatus> {
        let inner = &self.inner;
        inner
            .configured
            .iter()
            .map(|endpoint| {
                let i = inner
                    .endpoints
                    .iter()
                    .position(|e| e == endpoint)
                    .unwrap_or(0);
                let answer = inner.authorized(i, |token| {
                    inner.post_to(i, "/v3/maintenance/status", &json!({}), token)
                });
                match answer {
                    Ok(v) => member(endpoint, &v),
                    Err(verdict) => MemberStatus {
                        endpoint: endpoint.clone(),
                        reachable: false,
                        version: None,
                        leader: false,
                        revision: None,
                        raft_term: None,
                        db_size: None,
                        error: Some(match verdict {
                            Verdict::Final(e) | Verdict::NextEndpoint(e) => detail(&e),
                            Verdict::Reauthenticate => {
                                detail(&EtcdError::Auth("etcd refused the token".into()))
                            }
                        }),
                    },
                }
            })
            .collect()
    }
}

fn member(endpoint: &str, v: &Value) -> MemberStatus {
    let header = v.get("header");
    // Member ids are uint64: compared as the strings the gateway sends.
    let id = header.and_then(|h| h.get("member_id"));
    let leader = v.get("leader");
    let errors: Vec<String> = v
        .get("errors")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    MemberStatus {
        endpoint: endpoint.to_string(),
        reachable: true,
        version: v.get("version").and_then(Value::as_str).map(String::from),
        leader: id.is_some() && id == leader,
        revision: header.and_then(|h| wire::int(h, "revision").ok()),
        raft_term: wire::int(v, "raftTerm").ok(),
        db_size: wire::int(v, "dbSize").ok(),
        error: (!errors.is_empty()).then(|| errors.join("; ")),
    }
}
