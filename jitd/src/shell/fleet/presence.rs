//! The presence thread: this host's `h/<host>/alive` key on a lease (gone ~10 s after the host
//! is), and the acknowledgements this host owes, written as soon as the store takes them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde::Serialize;

use super::link::FleetLink;
use crate::core::timestamp::rfc3339;

const LEASE_TTL_SECS: i64 = 10;
const KEEPALIVE_EVERY: Duration = Duration::from_secs(3);
const TICK: Duration = Duration::from_millis(200);

#[derive(Serialize)]
struct Alive<'a> {
    jitd: &'a str,
    since: String,
    applied_revision: i64,
}

pub fn run(link: Arc<FleetLink>) {
    let since = rfc3339(Utc::now());
    let mut lease: Option<i64> = None;
    let mut last_keepalive = Instant::now();
    loop {
        if lease.is_none() {
            lease = link.etcd.lease_grant(LEASE_TTL_SECS).ok();
            if let Some(id) = lease {
                if put_alive(&link, id, &since).is_err() {
                    lease = None;
                }
                last_keepalive = Instant::now();
            }
        } else if last_keepalive.elapsed() >= KEEPALIVE_EVERY {
            if let Some(id) = lease {
                match link.etcd.lease_keepalive(id) {
                    Ok(true) => {
                        let _ = put_alive(&link, id, &since);
                    }
                    // Expired (the host was cut off for longer than the TTL): a new lease.
                    Ok(false) | Err(_) => lease = None,
                }
            }
            last_keepalive = Instant::now();
        }
        let _ = link.flush_acks();
        std::thread::sleep(TICK);
    }
}

fn put_alive(link: &FleetLink, lease: i64, since: &str) -> Result<(), super::etcd::EtcdError> {
    let applied_revision = link
        .state
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .applied_revision;
    let value = serde_json::to_vec(&Alive {
        jitd: env!("CARGO_PKG_VERSION"),
        since: since.to_string(),
        applied_revision,
    })
    .unwrap_or_default();
    link.etcd
        .put(link.keys.alive(&link.host).as_bytes(), &value, Some(lease))
        .map(|_| ())
}
