//! Fans events out to every sink. The audit log is special: a change that must be on the
//! record is refused when it cannot be written ([`EventLog::audit`], then
//! [`EventLog::publish`]); everything else is best effort ([`EventLog::emit`]) — but not lost
//! from the audit log: what it refused (a full disk) is kept, in order, and written before
//! anything newer once it takes records again. Every event published after its audit record
//! carries that record's position.

use std::collections::VecDeque;
use std::io;
use std::sync::{Mutex, MutexGuard};

use crate::core::events::{AuditTrail, Event, EventKind, EventSink};
use crate::core::model::Request;
use crate::core::timestamp::rfc3339;

/// Events kept for the audit log while it refuses them: about 5 MB at most. Past that the
/// newest are not kept (they still reach journald/syslog) and the log says how many.
const MAX_UNLOGGED: usize = 10_000;

/// Records of the backlog written in line by a caller that may hold the registry's lock (each
/// is an fdatasync); the rest is the scheduler's.
const INLINE: usize = 8;

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
    audit: Option<Box<dyn AuditTrail>>,
    sinks: Vec<Box<dyn EventSink>>,
    unlogged: Mutex<Unlogged>,
}

impl EventLog {
    pub fn new(audit: Option<Box<dyn AuditTrail>>, sinks: Vec<Box<dyn EventSink>>) -> Self {
        EventLog {
            audit,
            sinks,
            unlogged: Mutex::new(Unlogged::default()),
        }
    }

    /// The audit log alone: what must hold before a change is acknowledged. Sets the event's
    /// [`Event::audit`] position, so the sinks [`EventLog::publish`] tells (once any lock the
    /// caller holds is released) carry it; on failure the event stays without one. Whatever
    /// the audit log refused earlier is written first; while that fails, this fails too, so
    /// the log's order is the order things happened in. A backlog longer than [`INLINE`] is
    /// left to the scheduler ([`EventLog::retry`]) and the change refused until it is written.
    pub fn audit(&self, event: &mut Event) -> io::Result<()> {
        event.audit = None;
        let Some(audit) = &self.audit else {
            return Ok(());
        };
        let mut unlogged = self.unlogged();
        if !Self::write_backlog(audit.as_ref(), &mut unlogged, INLINE)? {
            return Err(io::Error::other(format!(
                "still writing the {} records kept while it could not be written; try again \
                 in a few seconds",
                unlogged.events.len()
            )));
        }
        event.audit = Some(audit.append(event)?);
        Ok(())
    }

    fn unlogged(&self) -> MutexGuard<'_, Unlogged> {
        // Every mutation of the backlog is a single push or pop: a poisoned lock is usable.
        self.unlogged.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes up to `limit` records the audit log refused before, oldest first, then (once
    /// there are none left) a note that it did. Stops at the first failure; `Ok(false)` when
    /// the limit left some.
    fn write_backlog(
        audit: &dyn AuditTrail,
        unlogged: &mut Unlogged,
        limit: usize,
    ) -> io::Result<bool> {
        for _ in 0..limit {
            let Some(event) = unlogged.events.front() else {
                break;
            };
            audit.append(event)?;
            unlogged.events.pop_front();
            unlogged.written += 1;
        }
        if !unlogged.events.is_empty() {
            return Ok(false);
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
            audit.append(&note)?;
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
            audit.append(&note)?;
            unlogged.written = 0;
        }
        Ok(true)
    }

    /// For steps that happen whether or not they can be logged (expiry must never wait on
    /// a full disk): an audit failure is reported to the other sinks, and the event is kept
    /// for the audit log until it takes it ([`EventLog::retry`]), behind what it kept before.
    /// The other sinks get it at once, with its audit position when it has one.
    pub fn emit(&self, event: &Event) {
        let mut event = event.clone();
        event.audit = None;
        let Some(audit) = &self.audit else {
            self.publish(&event);
            return;
        };
        let event = &mut event;
        let mut unlogged = self.unlogged();
        let failed = match Self::write_backlog(audit.as_ref(), &mut unlogged, INLINE) {
            Ok(true) => match audit.append(event) {
                Ok(position) => {
                    event.audit = Some(position);
                    None
                }
                Err(e) => Some(e),
            },
            // Behind a backlog the scheduler is writing: it goes after it, in a moment.
            Ok(false) => {
                Self::keep(&mut unlogged, event);
                None
            }
            Err(e) => Some(e),
        };
        if let Some(e) = &failed {
            Self::keep(&mut unlogged, event);
            drop(unlogged);
            let mut err = Event::new(
                EventKind::InternalError,
                format!("cannot write the audit log: {e}"),
            );
            err.request_id = event.request_id.clone();
            self.publish(&err);
        } else {
            drop(unlogged);
        }
        self.publish(event);
    }

    /// [`EventLog::emit`] for several events at once: in the audit log they are made durable
    /// together (one fdatasync instead of one per event), so a burst of best-effort events
    /// (sessions opening and closing) costs the disk one write. Behind a backlog, or when the
    /// batch is refused, each goes the way `emit` sends it, so none is lost and the order
    /// holds.
    pub fn emit_all(&self, events: &[Event]) {
        let Some(audit) = &self.audit else {
            events.iter().for_each(|e| self.publish(e));
            return;
        };
        let mut unlogged = self.unlogged();
        let written = match Self::write_backlog(audit.as_ref(), &mut unlogged, INLINE) {
            Ok(true) => audit.append_all(events).ok(),
            _ => None,
        };
        drop(unlogged);
        let Some(positions) = written else {
            events.iter().for_each(|e| self.emit(e));
            return;
        };
        for (event, position) in events.iter().zip(positions) {
            let mut event = event.clone();
            event.audit = Some(position);
            self.publish(&event);
        }
    }

    /// Keeps `event` for the audit log, marked as logged late; past [`MAX_UNLOGGED`], counts it.
    fn keep(unlogged: &mut Unlogged, event: &Event) {
        if unlogged.events.len() >= MAX_UNLOGGED {
            unlogged.dropped += 1;
            return;
        }
        let mut late = event.clone();
        late.message
            .push_str(" (logged late: the audit log could not take it when it happened)");
        late.extra.push(("LOGGED_LATE", "yes".into()));
        unlogged.events.push_back(late);
    }

    /// Writes all that the audit log refused before, if it takes it now: the scheduler calls
    /// it every second, holding no lock that checks wait on, so the backlog neither waits for
    /// the next event nor is written under the registry's lock.
    pub fn retry(&self) {
        let Some(audit) = &self.audit else { return };
        let mut unlogged = self.unlogged();
        if unlogged.is_empty() {
            return;
        }
        let _still_refused = Self::write_backlog(audit.as_ref(), &mut unlogged, usize::MAX);
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
    e.approver_groups = r.approver_groups.to_vec();
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

    impl AuditTrail for Sink {
        fn append(&self, event: &Event) -> io::Result<crate::core::events::AuditPosition> {
            if self.0.full.load(Ordering::SeqCst) {
                return Err(io::Error::from(io::ErrorKind::StorageFull));
            }
            let mut lines = self.0.lines.lock().unwrap();
            lines.push(event.message.clone());
            Ok(crate::core::events::AuditPosition {
                seq: lines.len() as u64,
                hash: String::new(),
            })
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
        assert!(log
            .audit(&mut Event::new(EventKind::Approved, "d"))
            .is_err());
        disk.full.store(false, Ordering::SeqCst);
        log.audit(&mut Event::new(EventKind::Approved, "e"))
            .unwrap();
        let lines = disk.lines.lock().unwrap().clone();
        let late = " (logged late: the audit log could not take it when it happened)";
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

    /// A batch of session events is no less safe than the events one by one: refused, each is
    /// kept for later, in order; behind a backlog, it goes after it.
    #[test]
    fn a_batch_the_audit_log_refuses_is_kept_and_written_in_order_later() {
        let (log, disk) = log();
        disk.full.store(true, Ordering::SeqCst);
        log.emit(&Event::new(EventKind::SessionOpened, "a"));
        log.emit_all(&[
            Event::new(EventKind::SessionClosed, "b"),
            Event::new(EventKind::SessionOpened, "c"),
        ]);
        disk.full.store(false, Ordering::SeqCst);
        log.emit_all(&[Event::new(EventKind::SessionClosed, "d")]);
        log.emit_all(&[
            Event::new(EventKind::SessionOpened, "e"),
            Event::new(EventKind::SessionClosed, "f"),
        ]);
        let lines = disk.lines.lock().unwrap().clone();
        let late = " (logged late: the audit log could not take it when it happened)";
        assert_eq!(
            lines,
            [
                format!("a{late}"),
                format!("b{late}"),
                format!("c{late}"),
                "the audit log takes records again: 3 written late, each marked LOGGED_LATE".into(),
                "d".into(),
                "e".into(),
                "f".into(),
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
    fn a_long_backlog_is_left_to_the_scheduler_not_written_under_a_callers_lock() {
        let (log, disk) = log();
        disk.full.store(true, Ordering::SeqCst);
        for _ in 0..3 * INLINE {
            log.emit(&Event::new(EventKind::Expired, "x"));
        }
        disk.full.store(false, Ordering::SeqCst);
        let refused = log.audit(&mut Event::new(EventKind::Approved, "change"));
        let err = refused.expect_err("refused while the backlog is written");
        assert!(err.to_string().contains("still writing"), "{err}");
        assert_eq!(
            disk.lines.lock().unwrap().len(),
            INLINE,
            "only a few in line"
        );
        // A best-effort event writes a few more in line and queues behind the rest.
        log.emit(&Event::new(EventKind::SessionOpened, "behind"));
        assert_eq!(disk.lines.lock().unwrap().len(), 2 * INLINE);
        log.retry();
        let lines = disk.lines.lock().unwrap().clone();
        assert_eq!(lines.len(), 3 * INLINE + 2, "{lines:?}");
        assert!(lines[3 * INLINE].starts_with("behind"), "{lines:?}");
        assert_eq!(
            lines[3 * INLINE + 1],
            format!(
                "the audit log takes records again: {} written late, each marked LOGGED_LATE",
                3 * INLINE + 1
            )
        );
        log.audit(&mut Event::new(EventKind::Approved, "change"))
            .unwrap();
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
