//! Bounded history: a request that ended more than `retention` ago leaves memory and the
//! state directory (the audit log keeps its trail). Without it, every request a host ever saw
//! stayed in memory and was read at every start.

use std::time::Duration as StdDuration;

use chrono::Duration;

use super::Service;
use crate::core::events::{Event, EventKind};
use crate::core::model::GrantId;
use crate::core::recording::RecordingsDir;
use crate::shell::host::recordings;
use crate::shell::host::ssh_recording::SshRecorder;

/// Forgotten per hold of the registry's write lock: checks wait at most for this many removals.
const BATCH: usize = 1000;
/// How often history is swept: often enough that memory tracks `retention` within the hour.
const SWEEP_EVERY_AT_MOST: StdDuration = StdDuration::from_secs(3600);
/// How long after the start the first sweep waits.
const SETTLE: StdDuration = StdDuration::from_secs(10);

pub(super) fn as_chrono(d: StdDuration) -> Duration {
    Duration::from_std(d).unwrap_or(Duration::MAX)
}

impl Service {
    /// Sweeps once jitd has settled after its start, then again every `retention` (at most
    /// hourly), forever.
    pub(super) fn run_history_sweeper(&self) {
        let every = self
            .config
            .retention
            .clamp(StdDuration::from_secs(1), SWEEP_EVERY_AT_MOST);
        // Removing a year of old history is a million unlinks: not while jitd loads, reconciles
        // and answers its first checks (it doubled the cold start with 1M ended requests).
        std::thread::sleep(every.min(SETTLE));
        loop {
            self.sweep_history();
            std::thread::sleep(every);
        }
    }

    /// Forgets the history that ended before now − `retention`: out of memory first (in
    /// batches, so checks never wait on more than one), then its files.
    pub(super) fn sweep_history(&self) {
        let cutoff = self.clock.now() - as_chrono(self.config.retention);
        let mut forgotten = 0;
        loop {
            let turn = self.registry.turn();
            let ids = turn.view(|reg| reg.history_before(cutoff, BATCH));
            if ids.is_empty() {
                break;
            }
            forgotten += turn.forget(&ids);
        }
        match self.store.forget_history_before(cutoff) {
            Ok(files) if files > 0 || forgotten > 0 => self.events.emit(&Event::new(
                EventKind::HistoryForgotten,
                format!(
                    "forgot {forgotten} request(s) that ended before {} and removed {files} stored record(s); the audit log keeps their trail",
                    crate::core::timestamp::rfc3339(cutoff)
                ),
            )),
            Ok(_) => {}
            Err(e) => self.events.emit(&Event::new(
                EventKind::InternalError,
                format!("cannot remove stored history older than retention: {e}"),
            )),
        }
        self.sweep_recordings(cutoff);
    }

    /// Recordings follow their grant's record: those of a grant jitd no longer holds (its
    /// history was forgotten above) and not written to since the cutoff go.
    fn sweep_recordings(&self, cutoff: chrono::DateTime<chrono::Utc>) {
        let Ok(dir) = RecordingsDir::parse(&self.config.recordings_dir) else {
            return;
        };
        let known = |id: &str| {
            GrantId::try_from(id.to_owned()).is_ok_and(|id| self.registry.read().get(&id).is_some())
        };
        let ssh = SshRecorder::new(&dir, &self.config.state_dir).sweep(cutoff.into(), known);
        let sudo = recordings::sweep(&dir, cutoff.into(), known);
        match sudo.and_then(|n| ssh.map(|m| n + m)) {
            Ok(n) if n > 0 => self.events.emit(&Event::new(
                EventKind::HistoryForgotten,
                format!(
                    "removed the recordings of {n} grant(s) that ended before {}",
                    crate::core::timestamp::rfc3339(cutoff)
                ),
            )),
            Ok(_) => {}
            Err(e) => self.events.emit(&Event::new(
                EventKind::InternalError,
                format!("cannot remove recordings older than retention: {e}"),
            )),
        }
    }
}
