//! `jitd replay` for auditors: the recordings are root's alone, so a member of
//! `auditor_groups` sees them through jitd, as text that fits one answer. Root's `jitd replay`
//! plays them itself, with their timing.

use jit_proto::{ErrorCode, Response};

use super::{Failure, Service};
use crate::core::authz::{self, Actor};
use crate::core::events::{Event, EventKind};
use crate::core::recording::RecordingsDir;
use crate::shell::host::recordings;
use crate::shell::host::ssh_recording::SshRecorder;

/// Room left in a frame for the sessions' text once JSON has escaped it (control characters
/// take six bytes each), with the envelope.
const MAX_TEXT: usize = 8 * 1024;

impl Service {
    pub(super) fn replay(
        &self,
        actor: &Actor,
        id: &str,
        session: Option<u32>,
    ) -> Result<Response, Failure> {
        if !authz::is_auditor(actor, &self.config.auditor_groups) {
            return Err(Failure::new(
                ErrorCode::Forbidden,
                format!(
                    "only root and members of auditor_groups ({}) may replay recordings",
                    if self.config.auditor_groups.is_empty() {
                        "none configured".to_owned()
                    } else {
                        self.config.auditor_groups.join(", ")
                    }
                ),
            ));
        }
        let internal = |e: String| Failure::new(ErrorCode::Internal, e);
        let dir = RecordingsDir::parse(&self.config.recordings_dir).map_err(internal)?;
        let plain_id = !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !plain_id {
            return Err(Failure::new(ErrorCode::BadRequest, "not a grant id"));
        }
        let ssh = SshRecorder::new(&dir, &self.config.state_dir)
            .sessions(id)
            .map_err(|e| internal(format!("cannot read the SSH recording of {id}: {e}")))?;
        let sessions = if ssh.is_empty() {
            recordings::sessions(&dir, id)
                .map_err(|e| internal(format!("cannot list the recordings of {id}: {e}")))?
        } else {
            ssh.iter().map(|r| r.rec.clone()).collect()
        };
        let chosen = recordings::pick(&sessions, id, session)
            .map_err(|m| Failure::new(ErrorCode::NotFound, m))?;
        let mut text = String::new();
        let mut truncated = false;
        for (n, s) in chosen {
            if !ssh.is_empty() {
                let room = MAX_TEXT.saturating_sub(text.len());
                let output = &ssh[n - 1].output;
                text.push_str(&format!("--- session {n} (tlog {s}) ---\n"));
                let shown = String::from_utf8_lossy(&output[..output.len().min(room)]).into_owned();
                truncated |= output.len() > room;
                text.push_str(&shown);
                continue;
            }
            let room = MAX_TEXT.saturating_sub(text.len());
            if room == 0 {
                truncated = true;
                break;
            }
            let (bytes, cut) = recordings::output(&dir, id, s, room)
                .map_err(|e| internal(format!("cannot replay session {n} of {id}: {e}")))?;
            text.push_str(&format!("--- session {n} ({s}) ---\n"));
            text.push_str(&String::from_utf8_lossy(&bytes));
            truncated |= cut;
        }
        // On the trail before anything is shown: who looked at which grant's recordings.
        let mut ev = Event::new(
            EventKind::Replayed,
            format!(
                "{} replayed the recordings of grant {id} ({})",
                actor.name,
                session.map_or("every session".to_string(), |n| format!("session {n}"))
            ),
        );
        ev.request_id = Some(id.to_string());
        ev.approver = Some(actor.name.clone());
        self.events.audit(&mut ev).map_err(|e| {
            Failure::new(
                ErrorCode::Unavailable,
                format!("refused: the audit log cannot be written ({e}); nothing was shown"),
            )
        })?;
        self.events.publish(&ev);
        Ok(Response::Replay { text, truncated })
    }
}
