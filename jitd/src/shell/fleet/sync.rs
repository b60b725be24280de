//! The sync thread: list the store's `g/` prefix, then watch it from the next revision; on a
//! compaction (the gap may hide deletions) list again; on any other failure, watch again from
//! the next revision through another member. The position comes only from revisions the store
//! reported (events' mod_revision, progress headers), never from the order of a listing.
//!
//! The daemon is told which requests changed and decides what they mean ([`FleetSink`]). It
//! keeps enforcing from its own records whether or not this thread is connected.

use std::sync::Arc;
use std::time::Duration;

use super::etcd::{EtcdError, WatchEvent, WatchItem};
use super::link::FleetLink;
use crate::core::model::GrantId;

/// Longest wait between attempts while the store cannot be reached.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// What the daemon does with changed fleet requests.
pub trait FleetSink: Send + Sync {
    fn fleet_changed(&self, ids: &[GrantId]);
    /// After a full listing: what this host enforces is judged again even if the store no
    /// longer names it at all (deleted while this host was not watching).
    fn fleet_relisted(&self);
}

pub fn run(link: Arc<FleetLink>, sink: Arc<dyn FleetSink>) {
    let grants = link.keys.grants();
    let mut backoff = FIRST_BACKOFF;
    loop {
        // LIST: a consistent snapshot at one revision.
        let snap = match link.etcd.range_prefix(grants.as_bytes()) {
            Ok(s) => s,
            Err(e) => {
                link.failed(&e);
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        let touched = link
            .book
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(snap.kvs.iter().map(|kv| (&kv.key[..], &kv.value[..])));
        link.heard(snap.revision);
        sink.fleet_changed(&touched);
        sink.fleet_relisted();
        let mut next = snap.revision + 1;
        set_applied(&link, next - 1);
        // WATCH from there until the store says the position is gone.
        loop {
            match watch(&link, &*sink, &grants, &mut next, &mut backoff) {
                EtcdError::Compacted { .. } => break,
                e => {
                    link.failed(&e);
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

/// One watch stream, until it fails (the error is returned); `next` moves with every
/// revision applied, and `backoff` starts over once the stream delivers.
fn watch(
    link: &FleetLink,
    sink: &dyn FleetSink,
    prefix: &str,
    next: &mut i64,
    backoff: &mut Duration,
) -> EtcdError {
    let mut stream = match link.etcd.watch_prefix(prefix.as_bytes(), *next) {
        Ok(s) => s,
        Err(e) => return e,
    };
    link.watching();
    loop {
        let item = match stream.next() {
            Ok(item) => item,
            Err(e) => return e,
        };
        *backoff = FIRST_BACKOFF;
        match item {
            WatchItem::Events { revision, events } => {
                let mut ids = Vec::new();
                {
                    let mut book = link.book.lock().unwrap_or_else(|e| e.into_inner());
                    for ev in events {
                        match ev {
                            WatchEvent::Put(kv) => {
                                *next = (*next).max(kv.mod_revision + 1);
                                ids.extend(book.put(&kv.key, &kv.value));
                            }
                            WatchEvent::Delete { key, mod_revision } => {
                                *next = (*next).max(mod_revision + 1);
                                ids.extend(book.delete(&key));
                            }
                        }
                    }
                }
                ids.sort();
                ids.dedup();
                link.heard(revision);
                sink.fleet_changed(&ids);
                set_applied(link, *next - 1);
            }
            WatchItem::Progress { revision } => {
                // Everything up to `revision` has been sent: nothing of ours changed.
                *next = (*next).max(revision + 1);
                link.heard(revision);
                set_applied(link, *next - 1);
            }
        }
    }
}

fn set_applied(link: &FleetLink, revision: i64) {
    let mut s = link.state.lock().unwrap_or_else(|e| e.into_inner());
    s.applied_revision = s.applied_revision.max(revision);
}
