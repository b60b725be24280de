//! A blocking client of etcd v3 through its JSON gateway (grpc-gateway), over ureq.
//! PLACEHOLDER until the client branch is merged: the signatures the sync thread uses.

use std::path::PathBuf;
use std::time::Duration;

pub struct EtcdSettings {
    pub endpoints: Vec<String>,
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub rotate_by: String,
    pub request_timeout: Duration,
    pub watch_idle_timeout: Duration,
}

pub struct Etcd;

#[derive(Debug)]
pub enum EtcdError {
    Compacted { compact_revision: i64 },
    Unavailable(String),
    Auth(String),
    Denied(String),
    TooLarge(String),
    Protocol(String),
}

impl std::fmt::Display for EtcdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

pub struct Snapshot {
    pub revision: i64,
    pub kvs: Vec<Kv>,
}
pub struct Kv {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub create_revision: i64,
    pub mod_revision: i64,
}
pub enum WatchEvent {
    Put(Kv),
    Delete { key: Vec<u8>, mod_revision: i64 },
}
pub enum WatchItem {
    Events {
        revision: i64,
        events: Vec<WatchEvent>,
    },
    Progress {
        revision: i64,
    },
}
pub struct Watch;
impl Watch {
    pub fn next(&mut self) -> Result<WatchItem, EtcdError> {
        Err(EtcdError::Unavailable("placeholder".into()))
    }
}
pub struct MemberStatus {
    pub endpoint: String,
    pub reachable: bool,
    pub version: Option<String>,
    pub revision: Option<i64>,
    pub error: Option<String>,
}

#[allow(unused_variables)]
impl Etcd {
    pub fn new(s: EtcdSettings) -> Result<Etcd, EtcdError> {
        Ok(Etcd)
    }
    pub fn range_prefix(&self, prefix: &[u8]) -> Result<Snapshot, EtcdError> {
        Err(EtcdError::Unavailable("placeholder".into()))
    }
    pub fn get(&self, key: &[u8]) -> Result<Option<Kv>, EtcdError> {
        Err(EtcdError::Unavailable("placeholder".into()))
    }
    pub fn put(&self, key: &[u8], value: &[u8], lease: Option<i64>) -> Result<i64, EtcdError> {
        Err(EtcdError::Unavailable("placeholder".into()))
    }
    pub fn create(&self, key: &[u8], value: &[u8]) -> Result<bool, EtcdError> {
        Err(EtcdError::Unavailable("placeholder".into()))
    }
    pub fn delete(&self, key: &[u8]) -> Result<bool, EtcdError> {
        Err(EtcdError::Unavailable("placeholder".into()))
    }
    pub fn watch_prefix(&self, prefix: &[u8], start_revision: i64) -> Result<Watch, EtcdError> {
        Err(EtcdError::Unavailable("placeholder".into()))
    }
    pub fn lease_grant(&self, ttl_secs: i64) -> Result<i64, EtcdError> {
        Err(EtcdError::Unavailable("placeholder".into()))
    }
    pub fn lease_keepalive(&self, id: i64) -> Result<bool, EtcdError> {
        Err(EtcdError::Unavailable("placeholder".into()))
    }
    pub fn status(&self) -> Vec<MemberStatus> {
        Vec::new()
    }
    pub fn endpoint_in_use(&self) -> String {
        String::new()
    }
}
