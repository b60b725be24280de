//! Fans events out to every sink. The audit log is special: a change that must be on the
//! record is refused when it cannot be written ([`EventLog::audit`]); everything else is
//! best effort ([`EventLog::emit`]) — but not lost from the audit log: what it refused (a full
//! disk) is kept, in order, and written before anything newer once it takes records again.

use std::collections::VecDeque;
use std::io;
use std::sync::{Mutex, MutexGuard};

use crate::core::events::{Event, EventKind, EventSink};
use crate::core::model::Request;
use crate::core::timestamp::rfc3339;

/// Events kept for the audit log while it refuses them: about 5 MB at most. Past that the
/// newest are not kept (they still reach journald/syslog) and the log says how many.
const MAX_UNLOGGED: usize = 10_000;

/// What the audit log refused and must still get.
#[derive(Default)]
struct Unlogged {
    events: VecDeque<Event>,
    /// Left out for want of room in `events`.
    dropped: u64,
    /// Written late since the backlog last emptied, for the note that says so.
    written: u64,
}

impl Unlogged {
    fn is_empty(&self) -> bool {
        self.events.is_empty() && self.dropped == 0 && self.written == 0
    }
}

pub struct EventLog {
    audit: Option<Box<dyn EventSink>>,
    sinks: Vec<Box<dyn EventSink>>,
    unlogged: Mutex<Unlogged>,
}

impl EventLog {
    pub fn new(audit: Option<Box<dyn EventSink>>, sinks: Vec<Box<dyn EventSink>>) -> Self {
        EventLog {
            audit,
            sinks,
            unlogged: Mutex::new(Unlogged::default()),
        }
    }

    /// The audit log alone: what must hold before a change is acknowledged. Follow it with
    /// [`EventLog::publish`] once any lock the caller holds is released. Whatever the audit log
    /// refused earlier is written first; while that fails, this fails too, so the log's order
    /// is the order things happened in.
    pub fn audit(&self, event: &Event) -> io::Result<()> {
        let mut unlogged = self.unlogged();
        self.audit_after_backlog(&mut unlogged, event)
    }

    fn unlogged(&self) -> MutexGuard<'_, Unlogged> {
        // Every mutation of the backlog is a single push or pop: a poisoned lock is usable.
        self.unlogged.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn audit_after_backlog(&self, unlogged: &mut Unlogged, event: &Event) -> io::Result<()> {
        let Some(audit) = &self.audit else {
            return Ok(());
        };
        Self::write_backlog(audit.as_ref(), unlogged)?;
        audit.record(event)
    }

    /// Writes what the audit log refused before, oldest first, then a note that it did;
    /// stops at the first failure.
    fn write_backlog(audit: &dyn EventSink, unlogged: &mut Unlogged) -> io::Result<()> {
        while let Some(event) = unlogged.events.front() {
            audit.record(event)?;
            unlogged.events.pop_front();
            unlogged.written += 1;
        }
        if unlogged.dropped > 0 {
            let mut note = Event::new(
                EventKind::InternalError,
                format!(
                    "{} events could not be kept for the audit log while it could not be \
                     written; journald/syslog had them",
                    unlogged.dropped
                ),
            );
            note.extra.push(("DROPPED", unlogged.dropped.to_string()));
            audit.record(&note)?;
            unlogged.dropped = 0;
        }
        if unlogged.written > 0 {
            let note = Event::new(
                EventKind::Reconciled,
                format!(
                    "the audit log takes records again: {} written late, each marked \
                     LOGGED_LATE",
                    unlogged.written
                ),
            );
            audit.record(&note)?;
            unlogged.written = 0;
        }
        Ok(())
    }

    /// For steps that happen whether or not they can be logged (expiry must never wait on
    /// a full disk): an audit failure is reported to the other sinks, and the event is kept
    /// for the audit log until it takes it ([`EventLog::retry`]).
    pub fn emit(&self, event: &Event) {
        let mut unlogged = self.unlogged();
        let Err(e) = self.audit_after_backlog(&mut unlogged, event) else {
            drop(unlogged);
            self.publish(event);
            return;
        };
        if unlogged.events.len() < MAX_UNLOGGED {
            let mut late = event.clone();
            late.message
                .push_str(" (logged late: the audit log could not be written when it happened)");
            late.extra.push(("LOGGED_LATE", "yes".into()));
            unlogged.events.push_back(late);
        } else {
            unlogged.dropped += 1;
        }
        drop(unlogged);
        self.publish(event);
        let mut err = Event::new(
            EventKind::InternalError,
            format!("cannot write the audit log: {e}"),
        );
        err.request_id = event.request_id.clone();
        self.publish(&err);
    }

    /// Writes what the audit log refused before, if it takes it now (called every second by
    /// the scheduler, so the backlog does not wait for the next event).
    pub fn retry(&self) {
        let Some(audit) = &self.audit else { return };
        let mut unlogged = self.unlogged();
        if unlogged.is_empty() {
            return;
        }
        let _still_refused = Self::write_backlog(audit.as_ref(), &mut unlogged);
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    /// An audit log that refuses every record while `full` is set, like a full disk.
    #[derive(Default)]
    struct Disk {
        full: AtomicBool,
        lines: Mutex<Vec<String>>,
    }

    struct Sink(Arc<Disk>);

    impl EventSink for Sink {
        fn record(&self, event: &Event) -> io::Result<()> {
            if self.0.full.load(Ordering::SeqCst) {
                return Err(io::Error::from(io::ErrorKind::StorageFull));
            }
            self.0.lines.lock().unwrap().push(event.message.clone());
            Ok(())
        }
    }

    fn log() -> (EventLog, Arc<Disk>) {
        let disk = Arc::new(Disk::default());
        (
            EventLog::new(Some(Box::new(Sink(disk.clone()))), vec![]),
            disk,
        )
    }

    #[test]
    fn what_a_full_audit_log_refused_is_written_first_and_in_order_once_it_takes_records() {
        let (log, disk) = log();
        log.emit(&Event::new(EventKind::Expired, "a"));
        disk.full.store(true, Ordering::SeqCst);
        log.emit(&Event::new(EventKind::Expired, "b"));
        log.emit(&Event::new(EventKind::Expired, "c"));
        log.retry();
        // A change that must be on the record is refused while the disk is full.
        assert!(log.audit(&Event::new(EventKind::Approved, "d")).is_err());
        disk.full.store(false, Ordering::SeqCst);
        log.audit(&Event::new(EventKind::Approved, "e")).unwrap();
        let lines = disk.lines.lock().unwrap().clone();
        let late = " (logged late: the audit log could not be written when it happened)";
        assert_eq!(
            lines,
            [
                "a".to_string(),
                format!("b{late}"),
                format!("c{late}"),
                "the audit log takes records again: 2 written late, each marked LOGGED_LATE".into(),
                "e".into()
            ]
        );
    }

    #[test]
    fn the_scheduler_writes_the_backlog_without_waiting_for_a_new_event() {
        let (log, disk) = log();
        disk.full.store(true, Ordering::SeqCst);
        log.emit(&Event::new(EventKind::Expired, "a"));
        disk.full.store(false, Ordering::SeqCst);
        log.retry();
        assert_eq!(disk.lines.lock().unwrap().len(), 2);
        log.retry();
        assert_eq!(disk.lines.lock().unwrap().len(), 2, "nothing twice");
    }

    #[test]
    fn past_its_bound_the_backlog_counts_what_it_left_out() {
        let (log, disk) = log();
        disk.full.store(true, Ordering::SeqCst);
        for _ in 0..MAX_UNLOGGED + 3 {
            log.emit(&Event::new(EventKind::SessionOpened, "s"));
        }
        disk.full.store(false, Ordering::SeqCst);
        log.retry();
        let lines = disk.lines.lock().unwrap();
        assert_eq!(lines.len(), MAX_UNLOGGED + 2);
        assert!(
            lines[MAX_UNLOGGED].starts_with("3 events could not be kept"),
            "{}",
            lines[MAX_UNLOGGED]
        );
    }
}
