//! A blocking client of etcd v3 through its JSON gateway (grpc-gateway, `/v3/...`), over
//! ureq: no new crates, no async runtime, one thread per watch like jitd's other workers
//! (docs/fleet.md says why, and what each failure looks like on the wire).
//!
//! - `client`: endpoints, failover, authentication, and the unary calls (range, put, txn,
//!   delete, leases);
//! - `watch`: the streaming watch and its line-by-line reading;
//! - `status`: per-member status for `jitd fleet status`;
//! - `tls`: which CA to trust and which client certificate to show;
//! - `wire`: base64, int64-as-string, prefix ranges, bounded reads;
//! - `error`: [`EtcdError`] and the mapping from the gateway's error shapes.

mod client;
mod error;
mod status;
mod tls;
mod watch;
mod wire;

#[cfg(test)]
mod tests;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

pub use client::{Etcd, DELETE_BATCH};
pub use error::EtcdError;
pub use watch::{WatchEvent, WatchItem};

/// How to reach etcd. `Debug` never shows the password.
#[derive(Clone)]
pub struct EtcdSettings {
    /// Client URLs, `http(s)://host:port`.
    pub endpoints: Vec<String>,
    /// The only CA trusted for the endpoints' certificates; without it, the public webpki roots.
    pub ca_file: Option<PathBuf>,
    /// A client certificate (PEM) and its key; through the gateway it must carry no CN.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// An etcd user and its password, when etcd has authentication enabled.
    pub user: Option<String>,
    pub password: Option<String>,
    /// The host's name: the endpoint list is rotated by a hash of it, so hosts spread over
    /// the members (one member delivers about 10k watch events/s).
    pub rotate_by: String,
    /// The deadline of one unary call on one endpoint, connect to last byte (e.g. 3 s).
    pub request_timeout: Duration,
    /// A watch that yields no byte for this long is dead (e.g. 15 s, several progress
    /// notification intervals).
    pub watch_idle_timeout: Duration,
}

impl fmt::Debug for EtcdSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdSettings")
            .field("endpoints", &self.endpoints)
            .field("ca_file", &self.ca_file)
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("rotate_by", &self.rotate_by)
            .field("request_timeout", &self.request_timeout)
            .field("watch_idle_timeout", &self.watch_idle_timeout)
            .finish()
    }
}

/// Every key under a prefix, as of one revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The store's revision the listing reflects: watch from `revision + 1`.
    pub revision: i64,
    /// Sorted by key.
    pub kvs: Vec<Kv>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kv {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub create_revision: i64,
    pub mod_revision: i64,
}
