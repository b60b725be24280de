//! `jitd fleet gc` (root): the store's requests no host can act on any more go
//! (`core::fleet::gc` says which and why), and the audit log says what went.

use std::time::Duration as StdDuration;

use jit_proto::{ErrorCode, FleetGcItem, FleetGcView, Response};

use super::{fleet, Failure, Service};
use crate::core::authz::Actor;
use crate::core::events::{Event, EventKind};
use crate::core::fleet::gc::DEFAULT_OLDER_THAN_SECS;
use crate::core::timestamp::rfc3339;
use crate::shell::fleet::gc;

/// Removed requests the answer names (each ~70 bytes; a frame is 64 KiB).
const LISTED: usize = 100;

impl Service {
    pub(super) fn fleet_gc(
        &self,
        actor: &Actor,
        older_than_secs: Option<u64>,
        dry_run: bool,
    ) -> Result<Response, Failure> {
        let link = self.fleet_link().cloned().ok_or_else(fleet::not_fleet)?;
        if !actor.is_root() {
            return Err(Failure::new(
                ErrorCode::Forbidden,
                "only root removes records from the fleet store (`sudo jitd fleet gc`)",
            ));
        }
        let older_than = StdDuration::from_secs(older_than_secs.unwrap_or(DEFAULT_OLDER_THAN_SECS));
        let now = self.clock.now();
        let over_before = chrono::Duration::from_std(older_than)
            .ok()
            .and_then(|d| now.checked_sub_signed(d))
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
        let outcome = gc::run(&link, now, older_than, dry_run);
        let plan = &outcome.plan;
        if !dry_run && (outcome.deleted_keys > 0 || outcome.deleted_acks > 0) {
            let mut ev = Event::new(
                EventKind::HistoryForgotten,
                format!(
                    "fleet gc by {}: {} request(s) over before {} and {} orphaned approval(s) or end(s) removed from the fleet store ({} keys, {} acknowledgements){}",
                    actor.name,
                    plan.removed.len(),
                    rfc3339(over_before),
                    plan.orphans,
                    outcome.deleted_keys,
                    outcome.deleted_acks,
                    outcome
                        .error
                        .as_ref()
                        .map(|e| format!("; then {e}"))
                        .unwrap_or_default()
                ),
            );
            ev.extra
                .push(("FLEET_GC_REQUESTS", plan.removed.len().to_string()));
            ev.extra.push((
                "FLEET_GC_IDS",
                plan.removed
                    .iter()
                    .map(|r| r.id.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
            ));
            self.events.emit(&ev);
        }
        Ok(Response::FleetGc {
            gc: Box::new(FleetGcView {
                dry_run,
                over_before: rfc3339(over_before),
                removed_count: plan.removed.len(),
                removed: plan
                    .removed
                    .iter()
                    .take(LISTED)
                    .map(|r| FleetGcItem {
                        id: r.id.to_string(),
                        origin: r.origin.clone(),
                        over_at: rfc3339(r.over_at),
                    })
                    .collect(),
                orphans: plan.orphans,
                deleted_keys: outcome.deleted_keys,
                deleted_acks: outcome.deleted_acks,
                kept: plan.kept,
                unreadable: plan.unreadable,
                more: plan.more,
                error: outcome.error,
            }),
        })
    }
}
