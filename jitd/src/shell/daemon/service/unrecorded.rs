//! Recording ends, and recording them again when the disk refused. An expiry never waits on
//! the disk: the registry and the host let go of the grant first
//! ([`Service::apply_deadlines`]), and only then is the end logged and stored. When the state
//! directory is full, either write can fail; the audit log keeps what it refused and writes
//! it once it can (`EventLog::retry`), and the record is stored again every second from the
//! scheduler until that works, so jitd catches up by itself when space returns.

use super::{Ended, Service};
use crate::core::events::EventKind;
use crate::core::model::{End, GrantId, Request};
use crate::shell::audit::event_log::event_for;
use crate::shell::failpoint;

impl Service {
    /// Logs and stores an end [`Service::apply_deadlines`] applied.
    ///
    /// The audit log first: after a crash between the two writes the stored record is still
    /// active past its deadline, so the restarted jitd ends it again and logs that (an end
    /// logged twice); the other way round it would be stored as ended and never logged.
    pub(super) fn record_end(&self, ended: Ended) {
        let Ended { id, end, context } = ended;
        let Some(request) = self.read_registry().get(&id).cloned() else {
            return;
        };
        let (kind, what) = match end {
            End::TimedOut => (
                EventKind::TimedOut,
                "no decision in time; the request timed out",
            ),
            _ => (EventKind::Expired, "the window closed; the grant expired"),
        };
        self.events
            .emit(&event_for(kind, &request, format!("{what}{context}")));
        failpoint::hit("expiry_half_recorded");
        self.store_or_retry(&request, "expiry");
        self.warned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }

    /// Stores the registry's current version of `request` (an end already applied: in memory
    /// and on the host); when the disk refuses, says so and keeps it to store again every
    /// second ([`Service::record_again`]), so a full disk never leaves the stored record
    /// active for a restart to bring back. `what` names the change in the message.
    pub(super) fn store_or_retry(&self, request: &Request, what: &str) {
        if let Err(e) = self.store_current(&request.id) {
            self.events.emit(&event_for(
                EventKind::InternalError,
                request,
                format!("cannot persist {what}: {e}; jitd stores it again every second"),
            ));
            self.unstored().insert(request.id.clone());
        }
    }

    /// Stores the registry's current version of `id` after every version before it and
    /// before any after it, without holding up the next writer while the disk works (see
    /// [`WriterTurn::store_current`](crate::shell::daemon::registry_lock::WriterTurn::store_current)).
    pub(super) fn store_current(&self, id: &GrantId) -> std::io::Result<()> {
        self.registry
            .turn()
            .store_current(id, |current| self.store.put(current))
            .map_or(Ok(()), |(stored, _)| stored)
    }

    fn unstored(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<GrantId>> {
        // Single inserts and removes: a poisoned lock is still consistent.
        self.unstored.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What could not be written before, written now if the disk takes it: the audit log's
    /// backlog, then the records of ends not yet stored. Cheap when there is nothing.
    pub(super) fn record_again(&self) {
        self.events.retry();
        let pending: Vec<GrantId> = self.unstored().iter().cloned().collect();
        for id in pending {
            if self.store_current(&id).is_err() {
                // Still full: the rest would fail the same way; next second.
                return;
            }
            self.unstored().remove(&id);
        }
    }
}
