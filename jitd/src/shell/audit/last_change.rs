//! Reads back, at startup, the audit log's last record of a change written ahead of its
//! stored record (marked [`STORED_AFTER`]), unless the log already says it was not stored
//! ([`crate::core::unstored_change`] decides what it means).

use std::collections::HashSet;
use std::io;
use std::path::Path;

use chrono::{DateTime, Utc};

use crate::core::events::EventKind;
use crate::core::unstored_change::{LoggedChange, NOT_STORED, STORED_AFTER};
use crate::shell::audit::audit_files;
use crate::shell::audit::audit_log::{lines_backwards, raw_fields, AuditRecord, Scanned, Since};

/// The last change record of the log at `path` (and its rotated files, newest first) written
/// at or after `since`, read backwards from the end. `None` when there is none, or when a
/// later record already said it was not stored, or set its request aside.
pub fn last_change(path: &Path, since: DateTime<Utc>) -> io::Result<Option<LoggedChange>> {
    let mut search = Search {
        since: Since::new(since),
        said: HashSet::new(),
        set_aside: HashSet::new(),
        found: None,
    };
    let files = audit_files::chain_files(path)?;
    for file in files.iter().rev() {
        if lines_backwards(&file.path, &mut |line| search.line(line))? == Scanned::Done {
            break;
        }
    }
    Ok(search.found)
}

struct Search {
    since: Since,
    /// The `seq`s later records said were not stored.
    said: HashSet<u64>,
    /// Requests a later record set aside (quarantined): not in the store, and said so.
    set_aside: HashSet<String>,
    found: Option<LoggedChange>,
}

impl Search {
    fn line(&mut self, line: &[u8]) -> Scanned {
        let [time, event, id] = raw_fields(line, ["time", "event", "request_id"]);
        let (Some(time), Some(event)) = (time, event) else {
            return Scanned::Continue;
        };
        if self.since.is_after(time) {
            return Scanned::Done;
        }
        let event = String::from_utf8_lossy(event);
        let id = id.map(|id| String::from_utf8_lossy(id).into_owned());
        if event == EventKind::Reconciled.name() || event == EventKind::InternalError.name() {
            // Rare lines: parsed whole for their `extra`.
            if let Some(seq) = serde_json::from_slice::<AuditRecord>(line)
                .ok()
                .and_then(|r| r.extra.get(NOT_STORED)?.parse::<u64>().ok())
            {
                self.said.insert(seq);
            }
            return Scanned::Continue;
        }
        if event == EventKind::Quarantined.name() {
            self.set_aside.extend(id);
            return Scanned::Continue;
        }
        let Some(id) = id else {
            return Scanned::Continue;
        };
        // Sound without parsing, as `raw_fields` is: inside a string value every quote is
        // escaped, so this text occurs only as the `extra` key and value jitd wrote.
        let marker = format!("\"{STORED_AFTER}\":\"yes\"");
        if !line.windows(marker.len()).any(|w| w == marker.as_bytes()) {
            return Scanned::Continue;
        }
        // A line that does not parse is no record jitd wrote (`jitd audit verify` says what
        // is wrong with the log): the one before it is looked at instead.
        let Ok(record) = serde_json::from_slice::<AuditRecord>(line) else {
            return Scanned::Continue;
        };
        let Some(time) = record.time() else {
            return Scanned::Continue;
        };
        if !self.said.contains(&record.seq) && !self.set_aside.contains(&id) {
            self.found = Some(LoggedChange {
                seq: record.seq,
                time,
                event: event.into_owned(),
                request_id: id,
            });
        }
        Scanned::Done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::events::{Event, EventSink};
    use crate::shell::audit::audit_log::tests::TempDir;
    use crate::shell::audit::audit_log::{AuditLog, Rotation};

    fn event(kind: EventKind, id: Option<&str>) -> Event {
        let mut e = Event::new(kind, format!("{} of {id:?}", kind.name()));
        e.request_id = id.map(str::to_string);
        e
    }

    /// A change logged ahead of its stored record, as the daemon's `log_ahead` marks it.
    fn change(kind: EventKind, id: Option<&str>) -> Event {
        let mut e = event(kind, id);
        e.extra.push((STORED_AFTER, "yes".into()));
        e
    }

    fn long_ago() -> DateTime<Utc> {
        Utc::now() - chrono::Duration::days(1)
    }

    #[test]
    fn the_last_change_is_found_past_the_records_that_are_not_changes() {
        let dir = TempDir::new("last-change");
        let log = AuditLog::open(&dir.0, Rotation::NEVER).unwrap();
        log.record(&change(EventKind::Requested, Some("aaaaaaaaaa")))
            .unwrap();
        log.record(&change(EventKind::Approved, Some("aaaaaaaaaa")))
            .unwrap();
        for kind in [
            EventKind::GrantInstalled,
            EventKind::SessionOpened,
            EventKind::Expired,
            EventKind::TimedOut,
        ] {
            log.record(&event(kind, Some("bbbbbbbbbb"))).unwrap();
        }
        // A reload's record without a request is no change to a record.
        log.record(&event(EventKind::ConfigReloaded, None)).unwrap();
        // Nor is a change with no local record to store (a fleet request for other hosts),
        // nor text a user wrote that looks like the mark.
        log.record(&event(EventKind::Requested, Some("cccccccccc")))
            .unwrap();
        let mut forged = change(EventKind::Denied, None);
        forged.request_id = Some("dddddddddd".into());
        forged.extra.clear();
        forged.reason = Some("\"STORED_AFTER\":\"yes\"".into());
        forged.message = "\"extra\":{\"STORED_AFTER\":\"yes\"}".into();
        log.record(&forged).unwrap();
        let found = last_change(log.path(), long_ago()).unwrap().unwrap();
        assert_eq!(
            (found.seq, found.event.as_str(), found.request_id.as_str()),
            (2, "approved", "aaaaaaaaaa")
        );
    }

    #[test]
    fn a_change_already_said_to_be_unstored_or_set_aside_is_not_found_again() {
        let dir = TempDir::new("last-change-said");
        let log = AuditLog::open(&dir.0, Rotation::NEVER).unwrap();
        log.record(&change(EventKind::Revoked, Some("aaaaaaaaaa")))
            .unwrap();
        let mut said = event(EventKind::Reconciled, Some("aaaaaaaaaa"));
        said.extra.push((NOT_STORED, "1".into()));
        log.record(&said).unwrap();
        assert_eq!(last_change(log.path(), long_ago()).unwrap(), None);

        log.record(&change(EventKind::Approved, Some("cccccccccc")))
            .unwrap();
        let mut failed = event(EventKind::InternalError, Some("cccccccccc"));
        failed.extra.push((NOT_STORED, "3".into()));
        log.record(&failed).unwrap();
        assert_eq!(last_change(log.path(), long_ago()).unwrap(), None);

        log.record(&change(EventKind::Requested, Some("dddddddddd")))
            .unwrap();
        log.record(&event(EventKind::Quarantined, Some("dddddddddd")))
            .unwrap();
        assert_eq!(last_change(log.path(), long_ago()).unwrap(), None);

        // Said of another record: the last change is still looked at.
        log.record(&change(EventKind::Denied, Some("eeeeeeeeee")))
            .unwrap();
        log.record(&said).unwrap();
        let found = last_change(log.path(), long_ago()).unwrap().unwrap();
        assert_eq!((found.seq, found.event.as_str()), (7, "denied"));
    }

    #[test]
    fn changes_older_than_since_are_not_read() {
        let dir = TempDir::new("last-change-old");
        let log = AuditLog::open(&dir.0, Rotation::NEVER).unwrap();
        log.record(&change(EventKind::Approved, Some("aaaaaaaaaa")))
            .unwrap();
        assert!(last_change(log.path(), long_ago()).unwrap().is_some());
        let later = Utc::now() + chrono::Duration::seconds(5);
        assert_eq!(last_change(log.path(), later).unwrap(), None);
    }

    #[test]
    fn an_empty_or_missing_log_has_no_change() {
        let dir = TempDir::new("last-change-none");
        assert_eq!(
            last_change(&dir.0.join("audit.log"), long_ago()).unwrap(),
            None
        );
        let log = AuditLog::open(&dir.0, Rotation::NEVER).unwrap();
        assert_eq!(last_change(log.path(), long_ago()).unwrap(), None);
    }
}
