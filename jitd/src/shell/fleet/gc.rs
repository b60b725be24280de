//! `jitd fleet gc` against the store: one listing of `g/` (a snapshot at one revision), the
//! plan `core::fleet::gc` makes of it, then the deletes, acknowledgements first and each
//! request's own record last, so a run the store interrupts leaves what the next run finds.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::etcd::DELETE_BATCH;
use super::link::FleetLink;
use crate::core::fleet::gc::{self, Plan};

/// What a run found and did.
pub struct Outcome {
    pub plan: Plan,
    pub deleted_keys: usize,
    pub deleted_acks: u64,
    /// The store failed part way (or at the listing): what is counted above went.
    pub error: Option<String>,
}

pub fn run(link: &FleetLink, now: DateTime<Utc>, older_than: Duration, dry_run: bool) -> Outcome {
    let mut outcome = Outcome {
        plan: Plan::default(),
        deleted_keys: 0,
        deleted_acks: 0,
        error: None,
    };
    let snapshot = match link.etcd.range_prefix(link.keys.grants().as_bytes()) {
        Ok(s) => s,
        Err(e) => {
            outcome.error = Some(format!("cannot list the fleet store: {e}"));
            return outcome;
        }
    };
    outcome.plan = gc::plan(
        &link.keys,
        snapshot
            .kvs
            .iter()
            .map(|kv| (kv.key.as_slice(), kv.value.as_slice())),
        now,
        older_than,
    );
    if dry_run {
        return outcome;
    }
    let acks: Vec<String> = outcome
        .plan
        .acks_of
        .iter()
        .map(|id| link.keys.acks_of(id))
        .collect();
    let acks: Vec<&[u8]> = acks.iter().map(|a| a.as_bytes()).collect();
    match link.etcd.delete_prefixes(&acks) {
        Ok(n) => outcome.deleted_acks = u64::try_from(n).unwrap_or(0),
        Err(e) => {
            outcome.error = Some(format!("the fleet store failed part way: {e}"));
            return outcome;
        }
    }
    // In the plan's order, a batch at a time: each request's own record after its approvals
    // and ends, since the plan lists those first.
    for batch in outcome.plan.keys.chunks(DELETE_BATCH) {
        let keys: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
        if let Err(e) = link.etcd.delete_keys(&keys) {
            outcome.error = Some(format!("the fleet store failed part way: {e}"));
            return outcome;
        }
        outcome.deleted_keys += batch.len();
    }
    outcome
}
