//! This host's link to the fleet: the etcd client, the book of what the store holds, the trust
//! anchor (allowed_signers) and the acknowledgements waiting to be written. Shared by the sync
//! thread, the presence thread and the daemon's request handling.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use jit_proto::{FleetStatusView, HostAckView, MemberView};

use super::allowed_signers_file;
use super::etcd::{Etcd, EtcdError, EtcdSettings};
use crate::config::fleet_table::FleetConfig;
use crate::config::secret_file;
use crate::core::fleet::allowed_signers::AllowedSigners;
use crate::core::fleet::book::Book;
use crate::core::fleet::records::{parse_ack, AckRecord, AckState, Keys};
use crate::core::model::GrantId;
use crate::core::timestamp::rfc3339;

/// How long a unary call to the store may take before the next member is tried.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// A watch that has heard nothing (not even a progress notification) for this long is taken
/// for dead and opened again elsewhere. Members should run with
/// `--experimental-watch-progress-notify-interval=2s` (docs/fleet.md); with etcd's default
/// (10 minutes) a quiet, healthy watch is merely reopened every so often.
pub const WATCH_IDLE_TIMEOUT: Duration = Duration::from_secs(15);

/// The sync position and health, for `jitd fleet status`.
#[derive(Debug, Default, Clone)]
pub struct SyncState {
    pub watching: bool,
    pub applied_revision: i64,
    pub store_revision: i64,
    pub last_heard: Option<Instant>,
    pub last_error: Option<String>,
    /// Since when the store has not been heard (no member answered, or the watch was lost),
    /// counted from startup until it first is; `None` while it is.
    pub offline_since: Option<Instant>,
}

pub struct FleetLink {
    pub host: String,
    pub keys: Keys,
    pub etcd: Etcd,
    pub book: Mutex<Book>,
    pub state: Mutex<SyncState>,
    signers: RwLock<Arc<AllowedSigners>>,
    signers_path: PathBuf,
    /// Acknowledgements not yet written, newest per grant (the presence thread writes them).
    unsent: Mutex<BTreeMap<GrantId, AckRecord>>,
    /// What this host last acknowledged per grant, so a verdict repeated by every watch event
    /// is acknowledged (and logged) once.
    acked: Mutex<BTreeMap<GrantId, (AckState, Option<String>)>>,
    /// What was already logged about fleet records, so each reason is logged once.
    noted: Mutex<std::collections::HashSet<(GrantId, String)>>,
}

impl FleetLink {
    /// Reads the trust anchor and the etcd password; no network yet.
    pub fn open(config: &FleetConfig, host: String) -> Result<FleetLink, String> {
        let signers = allowed_signers_file::load(&config.allowed_signers)
            .map_err(|e| format!("[fleet] allowed_signers: {e}"))?;
        // The etcd client key is this host's credential: root's alone, like a password file.
        if let Some(key) = &config.key_file {
            if nix::unistd::geteuid().is_root() {
                secret_file::check_private("key_file", key).map_err(|e| format!("[fleet] {e}"))?;
            }
        }
        let password = match &config.password_file {
            Some(path) => Some(secret_file::read("password_file", "one password", path)?),
            None => None,
        };
        let etcd = Etcd::new(EtcdSettings {
            endpoints: config.endpoints.clone(),
            ca_file: config.ca_file.clone(),
            cert_file: config.cert_file.clone(),
            key_file: config.key_file.clone(),
            user: config.user.clone(),
            password,
            rotate_by: host.clone(),
            request_timeout: REQUEST_TIMEOUT,
            watch_idle_timeout: WATCH_IDLE_TIMEOUT,
        })
        .map_err(|e| format!("[fleet]: {e}"))?;
        let keys = Keys::new(&config.prefix);
        Ok(FleetLink {
            book: Mutex::new(Book::new(keys.clone())),
            keys,
            host,
            etcd,
            state: Mutex::new(SyncState {
                offline_since: Some(Instant::now()),
                ..SyncState::default()
            }),
            signers: RwLock::new(Arc::new(signers)),
            signers_path: config.allowed_signers.clone(),
            unsent: Mutex::new(BTreeMap::new()),
            acked: Mutex::new(BTreeMap::new()),
            noted: Mutex::new(std::collections::HashSet::new()),
        })
    }

    /// Puts a record this host just wrote into the book at once, so that the request it
    /// belongs to is judged (and shown) without waiting for the watch to bring it back.
    pub fn remember(&self, key: &[u8], value: &[u8]) {
        self.book
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .put(key, value);
    }

    pub fn signers(&self) -> Arc<AllowedSigners> {
        Arc::clone(&self.signers.read().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn signers_path(&self) -> &std::path::Path {
        &self.signers_path
    }

    /// Reads allowed_signers again (a reload); the old one stays on error.
    pub fn reload_signers(&self) -> Result<(), String> {
        let fresh = allowed_signers_file::load(&self.signers_path)?;
        *self.signers.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(fresh);
        Ok(())
    }

    /// Records this host's state for grant `id`; true if it changed (and is queued to be
    /// written), false if the host had said exactly that already.
    pub fn ack(
        &self,
        id: &GrantId,
        state: AckState,
        why: Option<String>,
        at: DateTime<Utc>,
    ) -> bool {
        let mut acked = self.acked.lock().unwrap_or_else(|e| e.into_inner());
        let now = (state, why.clone());
        if acked.get(id) == Some(&now) {
            return false;
        }
        // Bounded like the book: forgetting only means an acknowledgement may be written
        // again.
        if acked.len() >= crate::core::fleet::book::MAX_REQUESTS {
            acked.clear();
        }
        acked.insert(id.clone(), now);
        drop(acked);
        self.unsent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), AckRecord { state, why, at });
        true
    }

    /// True the first time `what` is said about `id` (bounded: forgets all at 10,000).
    pub fn first_note(&self, id: &GrantId, what: &str) -> bool {
        let mut noted = self.noted.lock().unwrap_or_else(|e| e.into_inner());
        if noted.len() >= 10_000 {
            noted.clear();
        }
        noted.insert((id.clone(), what.to_string()))
    }

    /// Writes the queued acknowledgements; what fails stays queued.
    pub fn flush_acks(&self) -> Result<(), EtcdError> {
        let batch: Vec<(GrantId, AckRecord)> = {
            let unsent = self.unsent.lock().unwrap_or_else(|e| e.into_inner());
            unsent.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
        };
        for (id, ack) in batch {
            let value = serde_json::to_vec(&ack).unwrap_or_default();
            self.etcd
                .put(self.keys.ack(&id, &self.host).as_bytes(), &value, None)?;
            let mut unsent = self.unsent.lock().unwrap_or_else(|e| e.into_inner());
            if unsent.get(&id) == Some(&ack) {
                unsent.remove(&id);
            }
        }
        Ok(())
    }

    /// Every host's acknowledgement of `id`, read from the store now.
    pub fn acks_of(&self, id: &GrantId) -> Result<Vec<HostAckView>, EtcdError> {
        let snap = self.etcd.range_prefix(self.keys.acks_of(id).as_bytes())?;
        Ok(snap
            .kvs
            .iter()
            .filter_map(|kv| {
                let host = self.keys.ack_host(id, &kv.key)?.to_string();
                let ack = parse_ack(&kv.value).ok()?;
                Some(HostAckView {
                    host,
                    state: ack.state.as_str().into(),
                    why: ack.why,
                    at: rfc3339(ack.at),
                })
            })
            .collect())
    }

    pub fn heard(&self, revision: i64) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.store_revision = s.store_revision.max(revision);
        s.last_heard = Some(Instant::now());
        s.last_error = None;
        s.offline_since = None;
    }

    /// A member confirmed a new watch: the store is reachable (a quiet store may send nothing
    /// else for a while).
    pub fn watching(&self) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.watching = true;
        s.offline_since = None;
    }

    pub fn failed(&self, e: &EtcdError) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.watching = false;
        s.last_error = Some(e.to_string());
        s.offline_since.get_or_insert_with(Instant::now);
    }

    /// How long the store has gone unheard, if it is now.
    pub fn offline_for(&self) -> Option<Duration> {
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.offline_since.map(|t| t.elapsed())
    }

    /// `jitd fleet status`: asks every member now (each within [`REQUEST_TIMEOUT`]).
    pub fn status_view(&self, enforcing: u32) -> FleetStatusView {
        let members = self
            .etcd
            .status()
            .into_iter()
            .map(|m| MemberView {
                endpoint: m.endpoint,
                reachable: m.reachable,
                version: m.version,
                revision: m.revision,
                error: m.error,
            })
            .collect();
        let hosts_alive = match self.etcd.range_prefix(self.keys.hosts().as_bytes()) {
            Ok(snap) => snap
                .kvs
                .iter()
                .filter_map(|kv| self.keys.alive_host(&kv.key).map(str::to_string))
                .collect(),
            Err(_) => Vec::new(),
        };
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner()).clone();
        FleetStatusView {
            host_name: self.host.clone(),
            members,
            watching: s.watching,
            applied_revision: s.applied_revision,
            store_revision: s.store_revision,
            last_heard_secs: s.last_heard.map(|t| t.elapsed().as_secs()),
            last_error: s.last_error,
            hosts_alive,
            enforcing,
            offline_secs: s.offline_since.map(|t| t.elapsed().as_secs()),
            offline_grace_secs: 0,
            offline_ending_roles: Vec::new(),
        }
    }
}
