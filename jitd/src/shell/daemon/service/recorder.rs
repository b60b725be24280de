//! The recorder thread: what is stored and logged after the caller already has its answer —
//! ends the scheduler applied, and sessions opening and closing (sudo and sshd wait on those
//! answers at every sudo and every login; see docs/faults.md, "Sessions: answered before they
//! are stored").
//!
//! Group commit: the thread takes whatever has queued up while it was writing, stores each
//! grant it touches once (its current version, which includes every session change queued)
//! and writes the batch's audit lines with one fdatasync. A burst of sudos thus costs the disk
//! a write per grant and per batch rather than four per session; when nothing queues up, a
//! batch is one item and nothing changes.

use std::sync::mpsc;

use super::{Ended, Service};
use crate::core::events::{Event, EventKind};
use crate::core::model::{GrantId, Request};
use crate::shell::audit::event_log::event_for;
use crate::shell::failpoint;

/// Most items one batch takes: bounds how long the first of them waits for its audit line.
const MAX_BATCH: usize = 256;

/// What the recorder thread stores and logs after the caller has its answer.
pub(super) enum Deferred {
    /// An end [`Service::apply_deadlines`] applied.
    End(Ended),
    /// A session closed: nothing depends on storing it before sudo or sshd goes on (a
    /// restarted jitd that still lists the session finds its process gone), so sudo does not
    /// wait for the disk to exit.
    SessionClosed {
        id: GrantId,
        pid: u32,
        service: String,
    },
    /// A session registered in memory only, its process already in the grant's cgroup
    /// ([`Service::register_session_in_memory`]): stored, then `event` logged.
    SessionOpened { id: GrantId, event: Box<Event> },
}

/// A session change waiting in a batch for its grant's store and its audit line.
enum SessionNote {
    Opened(Box<Event>),
    Closed { pid: u32, service: String },
}

impl Service {
    /// The recorder thread's loop: until every sender is gone.
    pub(super) fn run_recorder(&self, deferred: mpsc::Receiver<Deferred>) {
        while let Ok(first) = deferred.recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match deferred.try_recv() {
                    Ok(more) => batch.push(more),
                    Err(_) => break,
                }
            }
            self.record(batch);
        }
    }

    /// Hands `work` to the recorder thread, or does it now if there is none.
    pub(super) fn defer(&self, work: Deferred) {
        let sender = self
            .recorder
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let work = match sender {
            Some(s) => match s.send(work) {
                Ok(()) => return,
                Err(mpsc::SendError(work)) => work,
            },
            None => work,
        };
        self.record(vec![work]);
    }

    /// Records `batch` in order: ends one by one (each has its own order of audit line and
    /// store, see [`Service::record_end`]), runs of session changes together.
    pub(super) fn record(&self, batch: Vec<Deferred>) {
        let mut sessions: Vec<(GrantId, SessionNote)> = Vec::new();
        for work in batch {
            match work {
                Deferred::End(e) => {
                    self.record_sessions(std::mem::take(&mut sessions));
                    self.record_end(e);
                }
                Deferred::SessionClosed { id, pid, service } => {
                    sessions.push((id, SessionNote::Closed { pid, service }))
                }
                Deferred::SessionOpened { id, event } => {
                    sessions.push((id, SessionNote::Opened(event)))
                }
            }
        }
        self.record_sessions(sessions);
    }

    /// Stores each grant the changes touch once, its current version (in turn order with
    /// every other store: [`WriterTurn::store_current`]), then logs every change with one
    /// audit write.
    ///
    /// [`WriterTurn::store_current`]: crate::shell::daemon::registry_lock::WriterTurn::store_current
    fn record_sessions(&self, changes: Vec<(GrantId, SessionNote)>) {
        if changes.is_empty() {
            return;
        }
        if changes
            .iter()
            .any(|(_, note)| matches!(note, SessionNote::Opened(_)))
        {
            failpoint::stall("session_open_before_record");
        }
        let mut stored: Vec<(GrantId, Request)> = Vec::new();
        let mut errors = Vec::new();
        for (id, _) in &changes {
            if stored.iter().any(|(done, _)| done == id) {
                continue;
            }
            let Some((persisted, grant)) = self
                .registry
                .turn()
                .store_current(id, |current| self.store.put(current))
            else {
                // Forgotten meanwhile (history past retention): nothing to store.
                continue;
            };
            if let Err(e) = persisted {
                errors.push(event_for(
                    EventKind::InternalError,
                    &grant,
                    format!("cannot persist state: {e}"),
                ));
            }
            stored.push((id.clone(), grant));
        }
        let events: Vec<Event> = changes
            .into_iter()
            .filter_map(|(id, note)| match note {
                // Built when the session opened: logged whatever became of the record since.
                SessionNote::Opened(event) => Some(*event),
                SessionNote::Closed { pid, service } => {
                    let grant = &stored.iter().find(|(done, _)| *done == id)?.1;
                    let mut ev = event_for(
                        EventKind::SessionClosed,
                        grant,
                        format!("{service} session closed"),
                    );
                    ev.extra.push(("PID", pid.to_string()));
                    Some(ev)
                }
            })
            .collect();
        self.events.emit_all(&events);
        for e in &errors {
            self.events.emit(e);
        }
    }
}
