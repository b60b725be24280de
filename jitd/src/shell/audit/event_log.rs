//! Fans events out to every sink. The audit log is special: a change that must be on the
//! record is refused when it cannot be written ([`EventLog::record`]); everything else is
//! best effort ([`EventLog::emit`]).

use std::io;

use crate::core::events::{Event, EventKind, EventSink};
use crate::core::model::Request;
use crate::core::timestamp::rfc3339;

pub struct EventLog {
    audit: Option<Box<dyn EventSink>>,
    sinks: Vec<Box<dyn EventSink>>,
}

impl EventLog {
    pub fn new(audit: Option<Box<dyn EventSink>>, sinks: Vec<Box<dyn EventSink>>) -> Self {
        EventLog { audit, sinks }
    }

    /// Writes the event to the audit log first; on failure nothing else is told and the
    /// caller must not go ahead.
    pub fn record(&self, event: &Event) -> io::Result<()> {
        self.audit(event)?;
        self.publish(event);
        Ok(())
    }

    /// The audit log alone: what must hold before a change is acknowledged. Follow it with
    /// [`EventLog::publish`] once any lock the caller holds is released.
    pub fn audit(&self, event: &Event) -> io::Result<()> {
        match &self.audit {
            Some(audit) => audit.record(event),
            None => Ok(()),
        }
    }

    /// For steps that happen whether or not they can be logged (expiry must never wait on
    /// a full disk): an audit failure is reported to the other sinks.
    pub fn emit(&self, event: &Event) {
        if let Err(e) = self.record(event) {
            self.publish(event);
            let mut err = Event::new(
                EventKind::InternalError,
                format!("cannot write the audit log: {e}"),
            );
            err.request_id = event.request_id.clone();
            self.publish(&err);
        }
    }

    /// Every sink but the audit log (journald or syslog, stderr, notifiers).
    pub fn publish(&self, event: &Event) {
        for sink in &self.sinks {
            if let Err(e) = sink.record(event) {
                eprintln!("jitd: cannot log event: {e}");
            }
        }
    }
}

/// An event about `r`, with the request's fields filled in.
pub fn event_for(kind: EventKind, r: &Request, message: impl Into<String>) -> Event {
    let mut e = Event::new(kind, message);
    e.request_id = Some(r.id.to_string());
    e.user = Some(r.user.to_string());
    e.role = r.role.as_deref().map(str::to_owned);
    e.command = Some(r.command_display());
    e.reason = Some(r.reason.to_string()).filter(|s| !s.is_empty());
    e.ticket = r.ticket.as_deref().map(str::to_owned);
    e.expires = r.window().map(|w| rfc3339(w.expires_at));
    e.duration_secs = Some(r.duration_secs);
    e.approver_groups = r.approver_groups.clone();
    e
}

/// Plain lines on standard error, for a daemon run in a terminal.
pub struct StderrSink;

impl EventSink for StderrSink {
    fn record(&self, event: &Event) -> io::Result<()> {
        eprintln!("jitd: {}: {event}", event.kind().name());
        Ok(())
    }
}
