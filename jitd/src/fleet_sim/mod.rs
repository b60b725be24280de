//! The fleet benchmark's simulator (bench/src/fleet.rs; docs/benchmarks.md): many fleet hosts in
//! one process, each running the real sync loop (`shell::fleet::sync::run` over its own
//! [`FleetLink`](crate::shell::fleet::link::FleetLink) and etcd client) and the real verdict
//! with real signature checks against a real allowed_signers file, and timestamping "installed"
//! where a jitd would run visudo. Also what the benchmark needs around it: an approver that
//! signs like `ssh-keygen -Y sign` with an OpenSSH key file, a writer for the store, plain
//! watchers (the baseline) and a cold re-list.
//!
//! Compiled only with the `fleet-sim` feature, which only `jit-bench` enables: the product
//! carries none of it, and nothing in jitd imports it (`layers.rs` checks). Everything here
//! hands plain types to the benchmark.

mod approver;
mod host;
mod store;

pub use approver::Approver;
pub use host::{Installed, SimHost};
pub use store::{relist, PlainWatcher, Relisted, Seen, Store};

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use jit_proto::Target;

use crate::config::fleet_table::FleetConfig;
use crate::core::fleet::host_pattern::HostPattern;
use crate::core::fleet::records::{FleetRequest, Keys, VERSION};
use crate::core::model::GrantId;
use crate::core::policy::{Defaults, Policy, Role};
use crate::core::recording::Record;

/// The role every simulated host has: SSH for `requester_group`, one approval by someone in
/// `approver_group`, at most an hour.
pub const ROLE: &str = "sim";
pub const REQUESTER: &str = "alice";
pub const REQUESTER_GROUP: &str = "devs";
pub const APPROVER_GROUP: &str = "dba";

/// Where the simulated fleet's store is and whom its hosts trust.
#[derive(Debug, Clone)]
pub struct Fleet {
    pub endpoints: Vec<String>,
    /// Key prefix (`/bench`), as `[fleet] prefix`.
    pub prefix: String,
    /// An allowed_signers file (root's, as jitd requires of it).
    pub allowed_signers: PathBuf,
    /// The approver's name: the principal in allowed_signers, in `APPROVER_GROUP` on every
    /// simulated host.
    pub approver: String,
}

impl Fleet {
    fn config(&self) -> FleetConfig {
        FleetConfig {
            endpoints: self.endpoints.clone(),
            host_name: None,
            prefix: self.prefix.clone(),
            ca_file: None,
            cert_file: None,
            key_file: None,
            user: None,
            password_file: None,
            allowed_signers: self.allowed_signers.clone(),
            offline_grace: None,
        }
    }

    fn keys(&self) -> Keys {
        Keys::new(&self.prefix)
    }

    /// The key of request `id` asked on `origin`.
    pub fn request_key(&self, origin: &str, id: &str) -> Result<String, String> {
        Ok(self
            .keys()
            .request(origin, &GrantId::try_from(id.to_string())?))
    }

    /// The key of this fleet's approver's approval of `id`.
    pub fn approval_key(&self, id: &str) -> Result<String, String> {
        Ok(self
            .keys()
            .approval(&self.approver, &GrantId::try_from(id.to_string())?))
    }

    /// Where approvals are written (what the plain watchers of the baseline watch).
    pub fn approvals_prefix(&self) -> String {
        format!("{}ok/", self.keys().grants())
    }
}

/// The policy of every simulated host (see [`ROLE`]).
fn policy() -> Arc<Policy> {
    let mut p = Policy::open(Defaults {
        approver_groups: Vec::new(),
        default_duration: Duration::from_secs(600),
        max_duration: Duration::from_secs(3600),
        require_reason: false,
        record: Record::Output,
    });
    p.roles.push(Role {
        name: ROLE.into(),
        commands: Vec::new(),
        ssh: true,
        requester_groups: vec![REQUESTER_GROUP.into()],
        requester_users: Vec::new(),
        approver_groups: vec![APPROVER_GROUP.into()],
        approvals: 1,
        self_approval: false,
        deny_ends: true,
        default_duration: Duration::from_secs(600),
        max_duration: Duration::from_secs(3600),
        require_reason: false,
        reason_pattern: None,
        ticket_pattern: None,
        break_glass: false,
        auto_approve: Vec::new(),
        hosts: Vec::new(),
        record: Record::Output,
        fleet_offline: Default::default(),
    });
    Arc::new(p)
}

/// The bytes of a request by [`REQUESTER`] for an SSH login to the hosts matching `hosts`,
/// asked on `origin`, as a jitd writes it.
pub fn request_record(
    id: &str,
    origin: &str,
    hosts: &str,
    requested_at: DateTime<Utc>,
    pending_until: DateTime<Utc>,
) -> Result<Vec<u8>, String> {
    let request = FleetRequest {
        v: VERSION,
        id: GrantId::try_from(id.to_string())?,
        origin: origin.into(),
        user: REQUESTER.into(),
        target: Target::Ssh,
        hosts: vec![HostPattern::try_from(hosts.to_string())?],
        role: ROLE.into(),
        reason: "benchmark".into(),
        ticket: None,
        duration_secs: 600,
        requested_at,
        pending_until,
    };
    serde_json::to_vec(&request).map_err(|e| e.to_string())
}
