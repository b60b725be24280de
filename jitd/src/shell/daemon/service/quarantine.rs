//! Startup quarantine: a loaded active grant that the policy or the audit trail cannot account
//! for (a window longer than the maximum, no approval in the audit log, or an end later than
//! the approved one; see `core::vetting`) is not enforced. Its record is moved aside by the
//! store, and a `quarantined` event (critical) goes to the audit log, journald or syslog, the
//! daemon's stderr and the notifiers.

use std::io;

use chrono::{DateTime, Utc};

use super::Service;
use crate::core::events::EventKind;
use crate::core::model::{GrantId, Request};
use crate::core::vetting::{self, Approved};
use crate::shell::audit::event_log::event_for;

/// Reads the audit log back from a time for the approvals of the given grants
/// (`audit_log::approved_windows` on the daemon's log).
pub type ApprovalTrail<'a> = &'a dyn Fn(&[GrantId], DateTime<Utc>) -> io::Result<Approved>;

impl Service {
    /// Drops from `requests` every record that must not be enforced, setting each aside and
    /// reporting it. An error reading the audit log is returned: jitd does not start on
    /// records it cannot check.
    pub(super) fn set_aside_unaccounted(
        &self,
        requests: &mut Vec<Request>,
        trail: ApprovalTrail,
    ) -> io::Result<()> {
        let now = self.clock.now();
        let policy = self.policy();
        let approved = match vetting::approvals_wanted(requests.iter(), &policy, now) {
            Some((ids, since)) => trail(&ids, since).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot check the active grants against the audit log: {e}"),
                )
            })?,
            None => Approved::new(),
        };
        requests.retain(|r| match vetting::unaccounted(r, &policy, &approved, now) {
            None => true,
            Some(why) => {
                self.quarantine(r, &why);
                false
            }
        });
        Ok(())
    }

    fn quarantine(&self, r: &Request, why: &str) {
        let what = format!(
            "active grant {} of {} ({}) is not enforced: {why}",
            r.id,
            r.user,
            r.command_display()
        );
        let mut ev = match self.store.quarantine(&r.id) {
            Ok(place) => {
                let mut ev = event_for(
                    EventKind::Quarantined,
                    r,
                    format!(
                        "{what}. A running jitd never writes such a record (edited, planted or \
                         restored from elsewhere?); it was moved to {place}. Find out how it got \
                         there; a genuine grant must be asked for again"
                    ),
                );
                ev.extra.push(("QUARANTINED_TO", place));
                ev
            }
            Err(e) => event_for(
                EventKind::Quarantined,
                r,
                format!(
                    "{what}. A running jitd never writes such a record (edited, planted or \
                     restored from elsewhere?); it could not be moved aside ({e}), so it stays \
                     in place and is set aside again at every start"
                ),
            ),
        };
        ev.extra.push(("QUARANTINE_REASON", why.to_string()));
        self.events.emit(&ev);
    }
}
