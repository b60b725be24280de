//! The benchmark's side of the store: a writer (jitd's own etcd client, plus batched puts in
//! one transaction to load ten thousand records quickly), plain watchers that only timestamp
//! what etcd delivers (the baseline), and a cold re-list as a restarted host does it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chrono::Utc;
use serde_json::{json, Value};

use super::{policy, Fleet, APPROVER_GROUP, REQUESTER_GROUP};
use crate::core::fleet::allowed_signers;
use crate::core::fleet::book::Book;
use crate::core::fleet::verdict::{verdict, Local, Verdict};
use crate::shell::fleet::etcd::{Etcd, EtcdSettings, WatchEvent, WatchItem};
use crate::shell::fleet::link::{FleetLink, REQUEST_TIMEOUT, WATCH_IDLE_TIMEOUT};

fn client(endpoints: &[String], rotate_by: &str) -> Result<Etcd, String> {
    Etcd::new(EtcdSettings {
        endpoints: endpoints.to_vec(),
        ca_file: None,
        cert_file: None,
        key_file: None,
        user: None,
        password: None,
        rotate_by: rotate_by.into(),
        request_timeout: REQUEST_TIMEOUT,
        watch_idle_timeout: WATCH_IDLE_TIMEOUT,
    })
    .map_err(|e| e.to_string())
}

/// Writes to the store as approvers' and requesters' jitd do.
pub struct Store {
    etcd: Etcd,
    endpoints: Vec<String>,
}

impl Store {
    pub fn new(endpoints: &[String]) -> Result<Store, String> {
        Ok(Store {
            etcd: client(endpoints, "bench-writer")?,
            endpoints: endpoints.to_vec(),
        })
    }

    /// One put; the store's revision after it.
    pub fn put(&self, key: &str, value: &[u8]) -> Result<i64, String> {
        self.etcd
            .put(key.as_bytes(), value, None)
            .map_err(|e| e.to_string())
    }

    /// Puts all of `kvs` in one transaction (etcd allows 128 operations per transaction by
    /// default); the store's revision after it.
    pub fn put_many(&self, kvs: &[(String, Vec<u8>)]) -> Result<i64, String> {
        let ops: Vec<Value> = kvs
            .iter()
            .map(|(k, v)| {
                json!({"request_put": {"key": STANDARD.encode(k), "value": STANDARD.encode(v)}})
            })
            .collect();
        let body = json!({ "success": ops }).to_string();
        let url = format!("{}/v3/kv/txn", self.endpoints[0]);
        let reply = ureq::post(&url)
            .timeout(Duration::from_secs(30))
            .set("Content-Type", "application/json")
            .send_string(&body)
            .map_err(|e| format!("txn on {url}: {e}"))?
            .into_string()
            .map_err(|e| format!("txn on {url}: {e}"))?;
        let v: Value = serde_json::from_str(&reply).map_err(|e| format!("txn reply: {e}"))?;
        if v["succeeded"] != true {
            return Err(format!("txn did not succeed: {reply}"));
        }
        v["header"]["revision"]
            .as_str()
            .and_then(|r| r.parse().ok())
            .ok_or_else(|| format!("txn reply without a revision: {reply}"))
    }
}

/// Watcher `watcher` saw `key` put at `at`.
#[derive(Debug, Clone)]
pub struct Seen {
    pub watcher: usize,
    pub key: Vec<u8>,
    pub at: Instant,
}

/// A watch on a prefix through jitd's own etcd client that only timestamps each put it is
/// delivered: etcd's put → watch latency, without the book, the verdict or verification.
pub struct PlainWatcher {
    ready: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl PlainWatcher {
    /// Watches `prefix` from the store's next revision, spread over the members as a host
    /// named `rotate_by` would be.
    pub fn start(
        endpoints: &[String],
        prefix: &str,
        watcher: usize,
        rotate_by: &str,
        seen: Sender<Seen>,
    ) -> Result<PlainWatcher, String> {
        let etcd = client(endpoints, rotate_by)?;
        let mut next = etcd
            .range_prefix(prefix.as_bytes())
            .map_err(|e| e.to_string())?
            .revision
            + 1;
        let ready = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, s, prefix) = (Arc::clone(&ready), Arc::clone(&stop), prefix.to_string());
        std::thread::Builder::new()
            .name(format!("plain-{watcher}"))
            .spawn(move || {
                while !s.load(Ordering::Relaxed) {
                    let Ok(mut stream) = etcd.watch_prefix(prefix.as_bytes(), next) else {
                        std::thread::sleep(Duration::from_millis(200));
                        continue;
                    };
                    r.store(true, Ordering::Relaxed);
                    while !s.load(Ordering::Relaxed) {
                        match stream.next() {
                            Ok(WatchItem::Events { revision, events }) => {
                                let at = Instant::now();
                                next = next.max(revision + 1);
                                for ev in events {
                                    if let WatchEvent::Put(kv) = ev {
                                        let _ = seen.send(Seen {
                                            watcher,
                                            key: kv.key,
                                            at,
                                        });
                                    }
                                }
                            }
                            Ok(WatchItem::Progress { revision }) => {
                                next = next.max(revision + 1);
                            }
                            Err(_) => break,
                        }
                    }
                }
            })
            .map_err(|e| format!("cannot start a watcher thread: {e}"))?;
        Ok(PlainWatcher { ready, stop })
    }

    pub fn ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }
}

impl Drop for PlainWatcher {
    /// The thread ends at its next progress notification or event.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// What a cold re-list took, step by step.
#[derive(Debug, Clone, Copy)]
pub struct Relisted {
    /// Connect and read the whole `g/` prefix (paged).
    pub range: Duration,
    /// Parse every record into the book.
    pub book: Duration,
    /// The verdict on every request, signatures checked.
    pub verdicts: Duration,
    pub keys: usize,
    pub requests: usize,
    /// Requests this host would enforce.
    pub enforced: usize,
}

/// What a restarting host named `host` does: a new client lists the store's `g/` prefix, builds
/// the book, and judges every request. With `judge` false only the listing (the baseline).
pub fn relist(fleet: &Fleet, host: &str, judge: bool) -> Result<Relisted, String> {
    let link = FleetLink::open(&fleet.config(), host.to_string())?;
    let start = Instant::now();
    let snap = link
        .etcd
        .range_prefix(link.keys.grants().as_bytes())
        .map_err(|e| e.to_string())?;
    let range = start.elapsed();
    let mut out = Relisted {
        range,
        book: Duration::ZERO,
        verdicts: Duration::ZERO,
        keys: snap.kvs.len(),
        requests: 0,
        enforced: 0,
    };
    if !judge {
        return Ok(out);
    }
    let start = Instant::now();
    let mut book = Book::new(link.keys.clone());
    let ids = book.replace(snap.kvs.iter().map(|kv| (&kv.key[..], &kv.value[..])));
    out.book = start.elapsed();
    out.requests = ids.len();

    let start = Instant::now();
    let policy = policy();
    let signers = link.signers();
    let now = Utc::now();
    let verify = |principal: &str, message: &[u8], sig: &str| {
        allowed_signers::check(&signers, principal, message, sig, now).map_err(|e| e.to_string())
    };
    let approver_groups =
        |name: &str| (name == fleet.approver).then(|| vec![APPROVER_GROUP.to_string()]);
    let requester = [REQUESTER_GROUP.to_string()];
    let local = Local {
        host,
        policy: &policy,
        requester_groups: Some(&requester),
        approver_groups: &approver_groups,
        verify: &verify,
        now,
        any_host: false,
    };
    for id in &ids {
        let Some(entry) = book.get(id) else { continue };
        let Some(Ok(stored)) = &entry.request else {
            continue;
        };
        if matches!(
            verdict(stored, &entry.signed(), &entry.ends(), &local),
            Verdict::Enforce { .. }
        ) {
            out.enforced += 1;
        }
    }
    out.verdicts = start.elapsed();
    Ok(out)
}
