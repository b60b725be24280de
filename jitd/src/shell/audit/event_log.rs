//! Fans events out to every sink. The audit log is special: a change that must be on the
//! record is refused when it cannot be written ([`EventLog::audit`], then
//! [`EventLog::publish`]); everything else is best effort ([`EventLog::emit`]). Every event
//! published after its audit record carries that record's position.

use std::io;

use crate::core::events::{AuditTrail, Event, EventKind, EventSink};
use crate::core::model::Request;
use crate::core::timestamp::rfc3339;

pub struct EventLog {
    audit: Option<Box<dyn AuditTrail>>,
    sinks: Vec<Box<dyn EventSink>>,
}

impl EventLog {
    pub fn new(audit: Option<Box<dyn AuditTrail>>, sinks: Vec<Box<dyn EventSink>>) -> Self {
        EventLog { audit, sinks }
    }

    /// The audit log alone: what must hold before a change is acknowledged. Sets the event's
    /// [`Event::audit`] position, so the sinks [`EventLog::publish`] tells (once any lock the
    /// caller holds is released) carry it; on failure the event stays without one.
    pub fn audit(&self, event: &mut Event) -> io::Result<()> {
        event.audit = None;
        if let Some(audit) = &self.audit {
            event.audit = Some(audit.append(event)?);
        }
        Ok(())
    }

    /// For steps that happen whether or not they can be logged (expiry must never wait on
    /// a full disk): an audit failure is reported to the other sinks, and the event goes to
    /// them without an audit position.
    pub fn emit(&self, event: &Event) {
        let mut event = event.clone();
        match self.audit(&mut event) {
            Ok(()) => self.publish(&event),
            Err(e) => {
                self.publish(&event);
                let mut err = Event::new(
                    EventKind::InternalError,
                    format!("cannot write the audit log: {e}"),
                );
                err.request_id = event.request_id.clone();
                self.publish(&err);
            }
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
        // One write per line: stderr is unbuffered, so formatting straight into it wrote each
        // field with a syscall of its own, and concurrent events interleaved their fields.
        let line = format!("jitd: {}: {event}\n", event.kind().name());
        std::io::Write::write_all(&mut std::io::stderr().lock(), line.as_bytes())
    }
}
