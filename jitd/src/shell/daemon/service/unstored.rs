//! Startup: the audit log's last change that was never stored is said so in the log
//! (`core::unstored_change` says why only the last one can be, and what it means).

use std::io;

use chrono::{DateTime, Utc};

use super::Service;
use crate::core::events::{Event, EventKind};
use crate::core::model::{GrantId, Request};
use crate::core::unstored_change::{self, LoggedChange, NOT_STORED};
use crate::shell::audit::event_log::event_for;

/// Reads the audit log back for its last change record written at or after a time
/// (`last_change::last_change` on the daemon's log).
pub type LastChangeTrail<'a> = &'a dyn Fn(DateTime<Utc>) -> io::Result<Option<LoggedChange>>;

impl Service {
    /// Looks at the last change the audit log holds since `since` (the oldest history kept)
    /// and, if `requests` (everything loaded) shows it was never stored, says so with a
    /// `reconciled` record naming it (`JIT_NOT_STORED`, its `seq`). Only reported, never
    /// acted on: the stored records are what jitd enforces, and they are consistent.
    pub(super) fn say_unstored_change(
        &self,
        requests: &[Request],
        last_change: LastChangeTrail,
        since: DateTime<Utc>,
    ) {
        let change = match last_change(since) {
            Ok(Some(change)) => change,
            Ok(None) => return,
            Err(e) => {
                self.events.emit(&Event::new(
                    EventKind::InternalError,
                    format!(
                        "cannot read the audit log's last change back ({e}): a change logged \
                         just before jitd last stopped may not have been stored, and is not \
                         said to be; `jitd audit verify` checks the log"
                    ),
                ));
                return;
            }
        };
        let stored = requests.iter().find(|r| r.id.as_str() == change.request_id);
        let Some(what) = unstored_change::unstored(&change, stored) else {
            return;
        };
        // Not loaded because its file was unreadable (a disk error, a hand edit): it was
        // stored, and loading said what became of it.
        let set_aside = GrantId::try_from(change.request_id.clone())
            .is_ok_and(|id| self.store.set_aside_unreadable(&id));
        if stored.is_none() && set_aside {
            return;
        }
        let message = unstored_change::describe(&change, &what);
        let mut ev = match stored {
            Some(r) => event_for(EventKind::Reconciled, r, message),
            None => {
                let mut ev = Event::new(EventKind::Reconciled, message);
                ev.request_id = Some(change.request_id.clone());
                ev
            }
        };
        ev.extra.push((NOT_STORED, change.seq.to_string()));
        ev.extra.push(("LOGGED_EVENT", change.event.clone()));
        self.events.emit(&ev);
    }
}
