//! One simulated host: its own [`FleetLink`] (etcd client, book, trust anchor) and the real
//! sync thread, with a sink that judges each changed request as the daemon does
//! (`service/fleet.rs`: the verdict with signature checks against allowed_signers) and, where
//! the daemon would record the grant and run visudo, notes the time it decided to install.

use std::collections::HashSet;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::Utc;

use super::{policy, Fleet, APPROVER_GROUP, REQUESTER_GROUP};
use crate::core::fleet::allowed_signers;
use crate::core::fleet::verdict::{verdict, Local, Verdict};
use crate::core::model::GrantId;
use crate::core::policy::Policy;
use crate::shell::fleet::link::FleetLink;
use crate::shell::fleet::sync::{self, FleetSink};

/// Host `host` decided to enforce request `id` at `at`.
#[derive(Debug, Clone)]
pub struct Installed {
    pub host: usize,
    pub id: String,
    pub at: Instant,
}

pub struct SimHost {
    link: Arc<FleetLink>,
}

impl SimHost {
    /// Starts host number `index`, named `name`, syncing with the store; every grant it
    /// would install is sent to `installed`. Its sync thread runs until the process ends
    /// (like a jitd's, it never gives up on the store).
    pub fn start(
        fleet: &Fleet,
        index: usize,
        name: &str,
        installed: Sender<Installed>,
    ) -> Result<SimHost, String> {
        let link = Arc::new(FleetLink::open(&fleet.config(), name.to_string())?);
        let sink = Arc::new(Sink {
            index,
            link: Arc::clone(&link),
            policy: policy(),
            approver: fleet.approver.clone(),
            installed_ids: Mutex::new(HashSet::new()),
            installed: Mutex::new(installed),
        });
        let for_thread = Arc::clone(&link);
        std::thread::Builder::new()
            .name(format!("sim-{index}"))
            .spawn(move || sync::run(for_thread, sink))
            .map_err(|e| format!("cannot start a sync thread: {e}"))?;
        Ok(SimHost { link })
    }

    /// The watch is open (the first listing is applied).
    pub fn watching(&self) -> bool {
        self.link
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .watching
    }

    /// The store revision up to which this host has applied every change.
    pub fn applied_revision(&self) -> i64 {
        self.link
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .applied_revision
    }
}

struct Sink {
    index: usize,
    link: Arc<FleetLink>,
    policy: Arc<Policy>,
    approver: String,
    installed_ids: Mutex<HashSet<GrantId>>,
    installed: Mutex<Sender<Installed>>,
}

impl FleetSink for Sink {
    fn fleet_changed(&self, ids: &[GrantId]) {
        for id in ids {
            if self.enforces(id) {
                let at = Instant::now();
                let first = self
                    .installed_ids
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(id.clone());
                if first {
                    let _ = self
                        .installed
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .send(Installed {
                            host: self.index,
                            id: id.to_string(),
                            at,
                        });
                }
            }
        }
    }

    fn fleet_relisted(&self) {}
}

impl Sink {
    /// The daemon's judgement (`Service::judge`): this host's policy, its users (simulated:
    /// the requester is in `devs`, the fleet's approver in `dba`), its allowed_signers.
    fn enforces(&self, id: &GrantId) -> bool {
        let entry = self
            .link
            .book
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned();
        let Some(entry) = entry else { return false };
        let Some(Ok(stored)) = &entry.request else {
            return false;
        };
        let signers = self.link.signers();
        let now = Utc::now();
        let verify = |principal: &str, message: &[u8], sig: &str| {
            allowed_signers::check(&signers, principal, message, sig, now)
                .map_err(|e| e.to_string())
        };
        let approver_groups =
            |name: &str| (name == self.approver).then(|| vec![APPROVER_GROUP.to_string()]);
        let requester = [REQUESTER_GROUP.to_string()];
        let local = Local {
            host: &self.link.host,
            policy: &self.policy,
            requester_groups: Some(&requester),
            approver_groups: &approver_groups,
            verify: &verify,
            now,
            any_host: false,
        };
        matches!(
            verdict(stored, &entry.signed(), &entry.ends(), &local),
            Verdict::Enforce { window, .. } if window.expires_at > now
        )
    }
}
