//! The tamper-evident audit log: `audit.log` in the state dir, one JSON object per line, each
//! carrying `prev`, the SHA-256 of the previous line's bytes (a hash chain), and `seq`, its
//! position. A record is appended with O_APPEND and fdatasync'ed before [`AuditLog::append_event`]
//! returns, so the daemon acknowledges an action only once it is on disk.
//!
//! Next to it, `audit.head` holds the seq and hash of the last record (rewritten in place after
//! every append). The chain alone cannot show that whole trailing lines were cut off; the head
//! can, unless whoever cut them also rewrote the head. Neither can stop someone with root from
//! rewriting the whole file and recomputing every hash: for that, compare `jitd audit verify`'s
//! final hash with a copy kept elsewhere (journald forwarding, a remote syslog; every event
//! there carries its record's seq and hash).
//!
//! The log rotates ([`Rotation`]): `audit.log` is renamed `audit-<first seq>.log` and a new
//! one continues the same chain (audit_files.rs names and lists the files; audit_verify.rs
//! checks the chain across them).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{DateTime, SecondsFormat, Utc};
use nix::fcntl::{renameat2, Flock, FlockArg, RenameFlags};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::core::events::{AuditPosition, AuditTrail, Event, EventKind, EventSink};
use crate::core::model::GrantId;
use crate::core::timestamp;
use crate::shell::atomic_file::{fsync_dir, open_trusted, read_trusted};
use crate::shell::audit::audit_files;
use crate::shell::failpoint;

pub const LOG_FILE: &str = "audit.log";
/// The `prev` of the first record: there is no previous line.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// No record may be longer; readers refuse longer lines instead of buffering without bound.
/// Requests arrive in frames of at most 64 KiB, so a real record stays far below this.
pub const MAX_LINE: usize = 1 << 20;
/// `audit.head` is one fixed-size line (`{seq:020} {hash}\n`), overwritten in place, so an
/// update never changes its length and fits within one disk sector.
const HEAD_LEN: usize = 20 + 1 + 64 + 1;

/// One line of the audit log. Fields are stored raw (JSON escapes them); readers that print
/// them for humans pass them through `escape_text`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub seq: u64,
    /// RFC 3339 UTC, when the record was written.
    pub time: String,
    /// `EventKind::name`.
    pub event: String,
    pub message_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approver: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// `Event::extra`, keyed by the field name without the `JIT_` prefix.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, String>,
    pub message: String,
    /// Hex SHA-256 of the previous line (without its newline), or [`GENESIS`].
    pub prev: String,
}

impl AuditRecord {
    fn from_event(seq: u64, time: DateTime<Utc>, event: &Event, prev: &str) -> Self {
        let kind = event.kind();
        AuditRecord {
            seq,
            time: time.to_rfc3339_opts(SecondsFormat::Millis, true),
            event: kind.name().to_string(),
            message_id: kind.message_id().to_string(),
            request_id: event.request_id.clone(),
            user: event.user.clone(),
            approver: event.approver.clone(),
            role: event.role.clone(),
            command: event.command.clone(),
            reason: event.reason.clone(),
            ticket: event.ticket.clone(),
            expires: event.expires.clone(),
            extra: event
                .extra
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            message: event.message.clone(),
            prev: prev.to_string(),
        }
    }

    /// The record's time; `None` if it does not parse (`verify` checks the chain, not the
    /// content, so callers treat `None` as unknown).
    pub fn time(&self) -> Option<DateTime<Utc>> {
        DateTime::parse_from_rfc3339(&self.time)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The line as written: compact JSON in field order, with DEL and C1 controls (which JSON
    /// would leave raw) escaped too, so `cat audit.log` never feeds a terminal an escape.
    pub(crate) fn to_line(&self) -> String {
        let json = serde_json::to_string(self).expect("a struct of strings serializes");
        let mut out = String::with_capacity(json.len());
        for c in json.chars() {
            if c.is_control() {
                // Only DEL and U+0080..U+009F get here: serde_json already escaped C0. They can
                // only occur inside strings, where \u escapes are valid JSON.
                out.push_str(&format!("\\u{:04x}", c as u32));
            } else {
                out.push(c);
            }
        }
        out
    }
}

/// Hex SHA-256 of one line (without its newline): what the next record's `prev` holds.
pub fn line_hash(line: &[u8]) -> String {
    Sha256::digest(line)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Where the chain ends: the last record's seq and hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHead {
    pub seq: u64,
    pub hash: String,
}

impl ChainHead {
    pub(crate) fn genesis() -> Self {
        ChainHead {
            seq: 0,
            hash: GENESIS.to_string(),
        }
    }

    fn encode(&self) -> String {
        format!("{:020} {}\n", self.seq, self.hash)
    }

    fn parse(bytes: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(bytes).ok()?;
        let (seq, hash) = text.strip_suffix('\n')?.split_once(' ')?;
        let valid_hash = hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit());
        let seq = seq.parse().ok()?;
        valid_hash.then(|| ChainHead {
            seq,
            hash: hash.to_string(),
        })
    }
}

/// The head file next to a log file: `audit.log` → `audit.head`.
pub fn head_path(log_path: &Path) -> PathBuf {
    log_path.with_extension("head")
}

/// Reads `audit.head`; `Ok(None)` when it does not exist or is empty (never written). A link
/// or a file that is not jitd's alone is refused.
pub(crate) fn read_head(path: &Path) -> io::Result<Option<ChainHead>> {
    let bytes = match read_trusted(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if bytes.is_empty() {
        return Ok(None);
    }
    ChainHead::parse(&bytes).map(Some).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is not a valid audit head", path.display()),
        )
    })
}

/// When `audit.log` is rotated: checked before each append, so a file is never rotated while
/// it is empty and a record is never split across files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// Rotate before an append would make the file longer than this many bytes.
    pub max_bytes: Option<u64>,
    /// Rotate once the file's first record is this old (by the records' own times).
    pub max_age: Option<std::time::Duration>,
}

impl Rotation {
    #[cfg(test)]
    pub const NEVER: Rotation = Rotation {
        max_bytes: None,
        max_age: None,
    };

    fn due(&self, len: u64, record_len: u64, first: &FirstRecord, now: DateTime<Utc>) -> bool {
        let too_big = self
            .max_bytes
            .is_some_and(|max| len.saturating_add(record_len) > max);
        let too_old = match (self.max_age, first.time) {
            (Some(age), Some(t)) => (now - t).to_std().is_ok_and(|elapsed| elapsed >= age),
            _ => false,
        };
        too_big || too_old
    }
}

/// Where a record's time comes from: the daemon's clock, which never goes backwards (so the
/// log is in time order even when the wall clock is set back, and its times agree with the
/// records' approval and expiry times).
pub type Now = Box<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// The append side, owned by the daemon. Thread-safe; holds an exclusive flock on `audit.head`
/// so a second daemon cannot interleave its own chain.
pub struct AuditLog {
    path: PathBuf,
    now: Now,
    head_path: PathBuf,
    rotation: Rotation,
    inner: Mutex<Writer>,
    /// The `reconciled` record written when `open` cut a torn line, for the other sinks.
    repair: Option<Event>,
}

struct Writer {
    /// `audit.head`, overwritten in place. Its lock keeps out a second jitd: unlike `audit.log`
    /// it is never renamed, so the lock holds across rotations.
    head_file: Flock<File>,
    /// The active `audit.log`, opened for appending.
    log: File,
    head: ChainHead,
    /// Length of the log up to the last acknowledged record: a failed append is cut back to it.
    len: u64,
    /// The active file's first record, once it has one: names the file when it is rotated,
    /// and dates it for [`Rotation::max_age`].
    first: Option<FirstRecord>,
    /// A rotation renamed `audit.log` away but could not create its successor: the next
    /// append creates it before writing.
    renamed: bool,
    /// Set when the log may no longer match `head`/`len`; every later append fails with it.
    broken: Option<String>,
}

#[derive(Debug, Clone, Copy)]
struct FirstRecord {
    seq: u64,
    time: Option<DateTime<Utc>>,
}

/// An error naming the file and what the operator can do, keeping the original kind (e.g.
/// `StorageFull`) so the daemon can tell disk-full from corruption.
fn context(kind: io::ErrorKind, path: &Path, what: impl fmt::Display) -> io::Error {
    io::Error::new(kind, format!("audit log {}: {what}", path.display()))
}

/// What to do with a log that does not match its head, for every refusal below.
const START_A_NEW_CHAIN: &str = "Run `jitd audit verify`; to start a new chain, move audit.log, \
     audit.head and the rotated audit-*.log files aside (keep them as evidence) and start jitd \
     again";

impl AuditLog {
    /// Opens (or creates) `state_dir/audit.log` and continues its chain, rotating it as
    /// `rotation` says.
    ///
    /// Crash recovery: a final line without its newline can only be a record whose write was
    /// torn before it was fsync'ed — hence never acknowledged — *if* `audit.head` still names
    /// the line before it. Then the torn bytes are cut off and a `reconciled` record says so
    /// (with their length and hash). An empty or missing `audit.log` continues from the last
    /// record of the newest rotated file (a crash in the middle of a rotation). Any other
    /// mismatch between the chain's end and the head (missing lines, an edited last line, a
    /// missing head) means tampering or a lost file: `open` refuses, so the daemon grants
    /// nothing until a person has looked.
    #[cfg(test)]
    pub fn open(state_dir: &Path, rotation: Rotation) -> io::Result<AuditLog> {
        Self::open_with_clock(state_dir, rotation, Box::new(Utc::now))
    }

    /// [`AuditLog::open`], with records timed by `now`.
    pub fn open_with_clock(state_dir: &Path, rotation: Rotation, now: Now) -> io::Result<AuditLog> {
        let path = state_dir.join(LOG_FILE);
        let head_path = head_path(&path);
        // Locked before anything is read, so no other jitd appends meanwhile. A missing head
        // is created only once the log is found to be new: a refusal leaves the files as
        // they were, for evidence.
        let head_file = match lock_head(&head_path, false) {
            Ok(file) => Some(file),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let stored_head = match head_file {
            Some(_) => read_head(&head_path)?,
            None => None,
        };
        let mut log = open_trusted(
            &path,
            OpenOptions::new()
                .read(true)
                .append(true)
                .create(true)
                .mode(0o600),
        )
        .map_err(|e| context(e.kind(), &path, format!("cannot open: {e}")))?;
        let tail = read_tail(&mut log, &path)?;
        let last = match tail.last {
            Some(last) => Some(last),
            None => last_rotated_record(&path)?,
        };

        let head = match (&last, &stored_head) {
            (None, None) => ChainHead::genesis(),
            (None, Some(h)) if *h == ChainHead::genesis() => h.clone(),
            (Some(last), Some(h)) if *h == last.head => h.clone(),
            // The daemon stopped between fsync'ing the record and updating the head.
            (Some(last), Some(h)) if h.seq + 1 == last.head.seq && h.hash == last.prev => {
                last.head.clone()
            }
            (_, None) => {
                return Err(context(
                    io::ErrorKind::InvalidData,
                    &path,
                    format!(
                        "{} is missing, so truncation cannot be ruled out. {START_A_NEW_CHAIN}",
                        head_path.display()
                    ),
                ))
            }
            (last, Some(h)) => {
                let end = last.as_ref().map_or(0, |l| l.head.seq);
                return Err(context(
                    io::ErrorKind::InvalidData,
                    &path,
                    format!(
                        "the log ends at record {end} but {} names record {} with another \
                         hash: records were removed or edited. {START_A_NEW_CHAIN}",
                        head_path.display(),
                        h.seq
                    ),
                ));
            }
        };
        let head_file = match head_file {
            Some(file) => file,
            None => lock_head(&head_path, true)?,
        };
        let first = match tail.complete_len {
            0 => None,
            _ => Some(first_record(&log, &path)?),
        };
        let writer = Writer {
            head_file,
            log,
            head,
            len: tail.complete_len,
            first,
            renamed: false,
            broken: None,
        };
        let mut audit = AuditLog {
            path,
            now,
            head_path,
            rotation,
            inner: Mutex::new(writer),
            repair: None,
        };
        let repair = {
            let mut w = audit.lock();
            if let Some(torn) = &tail.torn {
                w.log.set_len(tail.complete_len).map_err(|e| {
                    context(
                        e.kind(),
                        &audit.path,
                        format!("cannot cut a torn line: {e}"),
                    )
                })?;
                let mut event = Event::new(
                    EventKind::Reconciled,
                    "audit log: removed the torn final record a crash left before it was \
                     acknowledged",
                );
                event.extra = vec![
                    ("TORN_BYTES", torn.len().to_string()),
                    ("TORN_SHA256", line_hash(torn)),
                ];
                let at = audit.append(&mut w, &event, (audit.now)())?;
                event.audit = Some(at.into());
                Some(event)
            } else {
                audit.write_head(&mut w)?;
                None
            }
        };
        audit.repair = repair;
        // A newly created log or head must survive a crash as a directory entry too.
        fsync_dir(state_dir)
            .map_err(|e| context(e.kind(), state_dir, format!("cannot sync: {e}")))?;
        Ok(audit)
    }

    /// The event `open` recorded after cutting a torn final line, if it did, with its audit
    /// position: publish it to journald/syslog so the repair is seen outside the log (it is in
    /// the log already).
    pub fn repair_notice(&self) -> Option<&Event> {
        self.repair.as_ref()
    }

    #[cfg(test)]
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    #[cfg(test)]
    fn head(&self) -> ChainHead {
        self.lock().head.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Writer> {
        // A panic while holding the lock leaves `broken`/`len` consistent enough: every
        // mutation below is followed by its bookkeeping, so recover the guard.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends one record at `time` and returns its chain head once it is on disk.
    fn append(&self, w: &mut Writer, event: &Event, time: DateTime<Utc>) -> io::Result<ChainHead> {
        let mut heads = self.append_all(w, std::slice::from_ref(event), time)?;
        heads
            .pop()
            .ok_or_else(|| io::Error::other("no record appended"))
    }

    /// Appends `events` as consecutive records at `time` with one write and one fdatasync,
    /// and returns each one's chain head once all are on disk. All or none: a failure cuts
    /// the file back to where the batch began.
    fn append_all(
        &self,
        w: &mut Writer,
        events: &[Event],
        time: DateTime<Utc>,
    ) -> io::Result<Vec<ChainHead>> {
        if let Some(why) = &w.broken {
            return Err(context(
                io::ErrorKind::Other,
                &self.path,
                format!("{why}; restart jitd to re-check the log before anything is granted"),
            ));
        }
        let mut bytes = Vec::new();
        let mut heads: Vec<ChainHead> = Vec::with_capacity(events.len());
        for event in events {
            let prev = heads.last().unwrap_or(&w.head);
            let record = AuditRecord::from_event(prev.seq + 1, time, event, &prev.hash);
            let line = record.to_line();
            if line.len() > MAX_LINE {
                return Err(context(
                    io::ErrorKind::InvalidInput,
                    &self.path,
                    format!("record of {} bytes exceeds {MAX_LINE}", line.len()),
                ));
            }
            let hash = line_hash(line.as_bytes());
            bytes.extend_from_slice(line.as_bytes());
            bytes.push(b'\n');
            heads.push(ChainHead {
                seq: record.seq,
                hash,
            });
        }
        let Some(first_seq) = heads.first().map(|h| h.seq) else {
            return Ok(heads);
        };
        let rotated = self.rotate_if_due(w, bytes.len() as u64, time)?;
        let written = w.log.write_all(&bytes).and_then(|()| w.log.sync_data());
        if let Err(e) = written {
            // Cut a partial line (ENOSPC can write part of it) so the next append, once there
            // is room, continues a clean chain. If even that fails, stop appending.
            let cut = w.log.set_len(w.len).and_then(|()| w.log.sync_data());
            if let Err(cut_err) = cut {
                w.broken = Some(format!(
                    "a failed append could not be cut back to {} bytes ({cut_err})",
                    w.len
                ));
            }
            return Err(context(
                e.kind(),
                &self.path,
                format!(
                    "cannot append: {e}. jitd refuses new requests and grants until the audit \
                     log is writable: free space on its file system or fix its permissions"
                ),
            ));
        }
        if rotated {
            failpoint::hit("audit_rotate_before_head");
        }
        w.len += bytes.len() as u64;
        w.first.get_or_insert(FirstRecord {
            seq: first_seq,
            time: Some(time),
        });
        if let Some(last) = heads.last() {
            w.head = last.clone();
        }
        // The records are durable, so these actions may be acknowledged even if the head
        // update fails; later appends refuse until a restart has re-checked the log against
        // the head.
        if let Err(e) = self.write_head(w) {
            w.broken = Some(e.to_string());
        }
        Ok(heads)
    }

    /// Before a record of `record_len` bytes is appended at `now`: if [`Rotation`] says it
    /// should not go into the current file, renames `audit.log` to `audit-<first seq>.log` and
    /// starts a new one. Returns whether the record will be the new file's first.
    ///
    /// Every step leaves a chain that `open` continues after a crash: before the rename,
    /// nothing changed; after it, `audit.log` is missing or empty and the chain ends in the
    /// rotated file, where `audit.head` says; and the record itself is written as any other.
    /// A failure refuses the append (nothing is acknowledged without its record); the next
    /// append tries again from the step that failed.
    fn rotate_if_due(
        &self,
        w: &mut Writer,
        record_len: u64,
        now: DateTime<Utc>,
    ) -> io::Result<bool> {
        if w.renamed {
            self.start_new_file(w)?;
            return Ok(true);
        }
        let Some(first) = w.first else {
            return Ok(false);
        };
        if !self.rotation.due(w.len, record_len, &first, now) {
            return Ok(false);
        }
        let rotated = audit_files::rotated_path(&self.path, first.seq);
        failpoint::hit("audit_rotate_before_rename");
        // Never over another file: a name taken (by hand) would lose that file's records.
        renameat2(
            None,
            &self.path,
            None,
            &rotated,
            RenameFlags::RENAME_NOREPLACE,
        )
        .map_err(|errno| {
            context(
                io::Error::from(errno).kind(),
                &self.path,
                format!(
                    "cannot rotate to {}: {errno}. jitd refuses new requests and grants until \
                     it can (a file of that name is not jitd's: move it away)",
                    rotated.display()
                ),
            )
        })?;
        w.renamed = true;
        failpoint::hit("audit_rotate_after_rename");
        self.start_new_file(w)?;
        Ok(true)
    }

    /// Creates the `audit.log` that follows a rotated one. Its directory entry, and the rename
    /// before it, are made durable before a record in it can be acknowledged.
    fn start_new_file(&self, w: &mut Writer) -> io::Result<()> {
        let log = open_trusted(
            &self.path,
            OpenOptions::new()
                .read(true)
                .append(true)
                .create(true)
                .mode(0o600),
        )
        .map_err(|e| context(e.kind(), &self.path, format!("cannot create: {e}")))?;
        // Only an earlier attempt of this same step creates it; with records in it, someone
        // else did, and the chain would not continue where the head says.
        let len = log.metadata()?.len();
        if len != 0 {
            return Err(context(
                io::ErrorKind::InvalidData,
                &self.path,
                format!("appeared with {len} bytes in it while jitd rotated the log: not jitd's"),
            ));
        }
        failpoint::hit("audit_rotate_after_create");
        let dir = self.path.parent().unwrap_or(Path::new("."));
        fsync_dir(dir).map_err(|e| context(e.kind(), dir, format!("cannot sync: {e}")))?;
        w.log = log;
        w.len = 0;
        w.first = None;
        w.renamed = false;
        Ok(())
    }

    fn write_head(&self, w: &mut Writer) -> io::Result<()> {
        let text = w.head.encode();
        debug_assert_eq!(text.len(), HEAD_LEN);
        w.head_file
            .write_all_at(text.as_bytes(), 0)
            .and_then(|()| w.head_file.set_len(HEAD_LEN as u64))
            .and_then(|()| w.head_file.sync_data())
            .map_err(|e| context(e.kind(), &self.head_path, format!("cannot update: {e}")))
    }

    /// Appends `event` with the current time; returns once it is on disk.
    pub fn append_event(&self, event: &Event) -> io::Result<ChainHead> {
        let mut w = self.lock();
        self.append(&mut w, event, (self.now)())
    }

    #[cfg(test)]
    pub(crate) fn append_at(&self, event: &Event, time: DateTime<Utc>) -> io::Result<ChainHead> {
        let mut w = self.lock();
        self.append(&mut w, event, time)
    }
}

impl EventSink for AuditLog {
    fn record(&self, event: &Event) -> io::Result<()> {
        self.append_event(event).map(|_| ())
    }
}

impl AuditTrail for AuditLog {
    fn append(&self, event: &Event) -> io::Result<AuditPosition> {
        self.append_event(event).map(AuditPosition::from)
    }

    fn append_all(&self, events: &[Event]) -> io::Result<Vec<AuditPosition>> {
        let mut w = self.lock();
        let heads = self.append_all(&mut w, events, (self.now)())?;
        Ok(heads.into_iter().map(AuditPosition::from).collect())
    }
}

impl From<ChainHead> for AuditPosition {
    fn from(head: ChainHead) -> Self {
        AuditPosition {
            seq: head.seq,
            hash: head.hash,
        }
    }
}

/// Opens `audit.head` (creating it empty if `create`) and takes its exclusive lock, which a
/// running jitd holds for as long as it runs.
fn lock_head(path: &Path, create: bool) -> io::Result<Flock<File>> {
    let file = open_trusted(
        path,
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(false)
            .mode(0o600),
    )
    .map_err(|e| context(e.kind(), path, format!("cannot open: {e}")))?;
    Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| {
        context(
            io::ErrorKind::WouldBlock,
            path,
            format!("locked by another process ({errno}): is another jitd running?"),
        )
    })
}

/// The last record of the newest rotated file, when `audit.log` has none: where the chain
/// ends after a crash between renaming `audit.log` and writing to its successor. jitd never
/// rotates an empty file or leaves a torn line in one, so either is refused.
fn last_rotated_record(log: &Path) -> io::Result<Option<LastRecord>> {
    let rotated = audit_files::rotated_files(log)
        .map_err(|e| context(e.kind(), log, format!("cannot list the rotated files: {e}")))?;
    let Some(newest) = rotated.last() else {
        return Ok(None);
    };
    let mut file = open_trusted(&newest.path, OpenOptions::new().read(true))
        .map_err(|e| context(e.kind(), &newest.path, format!("cannot open: {e}")))?;
    let tail = read_tail(&mut file, &newest.path)?;
    let problem = match (&tail.torn, tail.last) {
        (None, Some(last)) => return Ok(Some(last)),
        (Some(_), _) => "ends in an incomplete line, which no crash leaves in a rotated file",
        (None, None) => "holds no records, which no rotation leaves",
    };
    Err(context(
        io::ErrorKind::InvalidData,
        &newest.path,
        format!("{problem}: it was changed. {START_A_NEW_CHAIN}"),
    ))
}

/// The seq and time of the log's first record (which `open` found complete).
fn first_record(log: &File, path: &Path) -> io::Result<FirstRecord> {
    let mut line = Vec::new();
    let mut chunk = vec![0; 1 << 12];
    loop {
        let n = log
            .read_at(&mut chunk, line.len() as u64)
            .map_err(|e| context(e.kind(), path, format!("cannot read: {e}")))?;
        if let Some(end) = chunk[..n].iter().position(|&b| b == b'\n') {
            line.extend_from_slice(&chunk[..end]);
            break;
        }
        line.extend_from_slice(&chunk[..n]);
        if n == 0 || line.len() > MAX_LINE {
            return Err(context(
                io::ErrorKind::InvalidData,
                path,
                "the first line is not a complete record",
            ));
        }
    }
    let record: AuditRecord = serde_json::from_slice(&line).map_err(|e| {
        context(
            io::ErrorKind::InvalidData,
            path,
            format!("the first record is not valid ({e}). {START_A_NEW_CHAIN}"),
        )
    })?;
    Ok(FirstRecord {
        seq: record.seq,
        time: record.time(),
    })
}

/// The end of an existing log, read backwards from its last bytes.
struct Tail {
    /// The last complete record's head and its `prev`.
    last: Option<LastRecord>,
    /// Bytes after the last newline (a torn write), if any.
    torn: Option<Vec<u8>>,
    /// Length of the log without the torn bytes.
    complete_len: u64,
}

struct LastRecord {
    head: ChainHead,
    prev: String,
}

fn read_tail(log: &mut File, path: &Path) -> io::Result<Tail> {
    let len = log
        .metadata()
        .map_err(|e| context(e.kind(), path, e))?
        .len();
    // The last complete line plus a possible torn one fit in two maximal lines.
    let start = len.saturating_sub(2 * (MAX_LINE as u64 + 1));
    log.seek(SeekFrom::Start(start))
        .map_err(|e| context(e.kind(), path, e))?;
    let mut buf = Vec::new();
    log.take(len - start)
        .read_to_end(&mut buf)
        .map_err(|e| context(e.kind(), path, e))?;
    let invalid = |what: String| context(io::ErrorKind::InvalidData, path, what);

    let complete = match buf.iter().rposition(|&b| b == b'\n') {
        Some(i) => i + 1,
        None if start == 0 => 0,
        None => return Err(invalid("the final line is longer than any record".into())),
    };
    let torn = (complete < buf.len()).then(|| buf[complete..].to_vec());
    if let Some(t) = &torn {
        if t.len() > MAX_LINE {
            return Err(invalid("the final line is longer than any record".into()));
        }
    }
    let complete_len = start + complete as u64;
    if complete == 0 {
        return Ok(Tail {
            last: None,
            torn,
            complete_len,
        });
    }
    let body = &buf[..complete - 1];
    let line_start = body.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    if line_start == 0 && start > 0 {
        return Err(invalid("the last record is longer than any record".into()));
    }
    let line = &body[line_start..];
    let record: AuditRecord = serde_json::from_slice(line)
        .map_err(|e| invalid(format!("the last record is not valid: {e}")))?;
    Ok(Tail {
        last: Some(LastRecord {
            head: ChainHead {
                seq: record.seq,
                hash: line_hash(line),
            },
            prev: record.prev,
        }),
        torn,
        complete_len,
    })
}

/// Streams a log's lines, each at most [`MAX_LINE`] bytes, without loading the file.
pub struct LineReader<R> {
    reader: R,
    line_no: usize,
    buf: Vec<u8>,
}

/// One raw line: its number (from 1), bytes without the newline, and whether it had one.
pub struct RawLine<'a> {
    pub number: usize,
    pub bytes: &'a [u8],
    pub terminated: bool,
}

impl<R: BufRead> LineReader<R> {
    pub fn new(reader: R) -> Self {
        LineReader {
            reader,
            line_no: 0,
            buf: Vec::new(),
        }
    }

    /// The next line; `Ok(None)` at the end. A line longer than [`MAX_LINE`] is an error.
    pub fn next_line(&mut self) -> io::Result<Option<RawLine<'_>>> {
        self.buf.clear();
        (&mut self.reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut self.buf)?;
        if self.buf.is_empty() {
            return Ok(None);
        }
        self.line_no += 1;
        let terminated = self.buf.last() == Some(&b'\n');
        if !terminated && self.buf.len() > MAX_LINE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("line {} is longer than {MAX_LINE} bytes", self.line_no),
            ));
        }
        let end = self.buf.len() - usize::from(terminated);
        Ok(Some(RawLine {
            number: self.line_no,
            bytes: &self.buf[..end],
            terminated,
        }))
    }
}

/// The events whose `expires` is the end of a window an approval gave: a grant's approval,
/// break-glass, and extensions. jitd writes them, with the new window's end, after the window
/// opens or moves and before the grant's record is stored.
const APPROVING: [&[u8]; 3] = [b"approved", b"extended", b"break_glass"];

/// The values of `"key":"…"` for each of `keys` in one audit line (the first of each), found in
/// one pass over its quotes without parsing the JSON, in whatever order the keys come. Sound for
/// any line serde_json writes: inside a string value every quote is escaped (`\"`), so
/// `"key":"` only occurs where a key starts, and the one nested object (`extra`) has jitd's own
/// upper-case keys. Text a user controls cannot forge a field.
pub(crate) fn raw_fields<'a, const N: usize>(
    line: &'a [u8],
    keys: [&str; N],
) -> [Option<&'a [u8]>; N] {
    let mut found = [None; N];
    let mut left = N;
    let mut at = 0;
    while let Some(q) = line[at..].iter().position(|&b| b == b'"') {
        at += q + 1;
        let rest = &line[at..];
        let Some(&first) = rest.first() else {
            break;
        };
        for (k, key) in keys.iter().enumerate() {
            let key = key.as_bytes();
            // The first byte rules out most quotes without a comparison call.
            if key.first() == Some(&first)
                && found[k].is_none()
                && rest.starts_with(key)
                && rest[key.len()..].starts_with(b"\":\"")
            {
                let start = at + key.len() + 3;
                let Some(len) = line[start..].iter().position(|&b| b == b'"') else {
                    return found;
                };
                found[k] = Some(&line[start..start + len]);
                at = start + len + 1;
                left -= 1;
                break;
            }
        }
        if left == 0 || at >= line.len() {
            break;
        }
    }
    found
}

/// What the audit log at `path` approved for the grants `wanted`: the end of the newest window
/// an approving record (`approved`, `extended`, `break_glass`) gave each, to the second. Read
/// backwards from the end — `audit.log`, then the rotated files, newest first — and only back
/// to the first record written before `since` (or until every grant was found), so a long
/// history costs only its recent part. A grant missing from the answer has no approval in that
/// part of the log.
pub fn approved_windows(
    path: &Path,
    wanted: &[GrantId],
    since: DateTime<Utc>,
) -> io::Result<HashMap<GrantId, DateTime<Utc>>> {
    let wanted: HashMap<&str, &GrantId> = wanted.iter().map(|id| (id.as_str(), id)).collect();
    let mut found = HashMap::with_capacity(wanted.len());
    if wanted.is_empty() {
        return Ok(found);
    }
    let files = audit_files::chain_files(path)
        .map_err(|e| context(e.kind(), path, format!("cannot list the audit files: {e}")))?;
    let scan = Scan {
        wanted: &wanted,
        since: Since::new(since),
    };
    for file in files.iter().rev() {
        if scan.file(&file.path, &mut found)? == Scanned::Done {
            break;
        }
    }
    Ok(found)
}

struct Scan<'a> {
    wanted: &'a HashMap<&'a str, &'a GrantId>,
    since: Since,
}

/// A time that backward scans stop before, compared with records' raw `time` fields.
pub(crate) struct Since {
    at: DateTime<Utc>,
    /// As jitd writes every time: for those, comparing text is comparing times.
    text: String,
}

impl Since {
    pub(crate) fn new(at: DateTime<Utc>) -> Since {
        Since {
            at,
            text: at.to_rfc3339_opts(SecondsFormat::Millis, true),
        }
    }

    /// Whether a record's raw `time` is before it.
    pub(crate) fn is_after(&self, time: &[u8]) -> bool {
        if time.len() == self.text.len() {
            time < self.text.as_bytes()
        } else {
            timestamp::parse(time).is_some_and(|t| t < self.at)
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Scanned {
    /// What was looked for is found, or cannot be further back: older lines can wait.
    Done,
    /// Go on with the line (or the file) before.
    Continue,
}

/// Hands `line` every non-empty line of the audit file at `path`, last first, reading it
/// backwards in blocks, until it answers [`Scanned::Done`] (which this returns) or the file's
/// start ([`Scanned::Continue`]): the recent end of a long log costs only its own size.
pub(crate) fn lines_backwards(
    path: &Path,
    line: &mut dyn FnMut(&[u8]) -> Scanned,
) -> io::Result<Scanned> {
    const BLOCK: u64 = 1 << 16;
    let file = open_trusted(path, OpenOptions::new().read(true))
        .map_err(|e| context(e.kind(), path, format!("cannot read: {e}")))?;
    let mut end = file.metadata()?.len();
    // The start of the line that began before the block just read (complete at its end).
    let mut carry: Vec<u8> = Vec::new();
    while end > 0 {
        let start = end.saturating_sub(BLOCK);
        let mut buf = vec![0; (end - start) as usize];
        file.read_exact_at(&mut buf, start)
            .map_err(|e| context(e.kind(), path, format!("cannot read: {e}")))?;
        buf.extend_from_slice(&carry);
        end = start;
        let mut lines: Vec<&[u8]> = buf.split(|&b| b == b'\n').collect();
        // The first piece may have begun before this block: keep it for the next.
        let first = if start > 0 {
            Some(lines.remove(0))
        } else {
            None
        };
        for l in lines.into_iter().rev().filter(|l| !l.is_empty()) {
            if line(l) == Scanned::Done {
                return Ok(Scanned::Done);
            }
        }
        carry = first.map(<[u8]>::to_vec).unwrap_or_default();
        if carry.len() > MAX_LINE {
            return Err(context(
                io::ErrorKind::InvalidData,
                path,
                format!("a line before byte {end} is longer than any record"),
            ));
        }
    }
    Ok(Scanned::Continue)
}

impl Scan<'_> {
    /// One file of the chain, read backwards.
    fn file(
        &self,
        path: &Path,
        found: &mut HashMap<GrantId, DateTime<Utc>>,
    ) -> io::Result<Scanned> {
        lines_backwards(path, &mut |line| self.line(line, found))
    }

    fn line(&self, line: &[u8], found: &mut HashMap<GrantId, DateTime<Utc>>) -> Scanned {
        let [time, event, id, until] = raw_fields(line, ["time", "event", "request_id", "expires"]);
        let Some(time) = time else {
            return Scanned::Continue;
        };
        if self.since.is_after(time) {
            return Scanned::Done;
        }
        if !event.is_some_and(|e| APPROVING.contains(&e)) {
            return Scanned::Continue;
        }
        let id = id.and_then(|id| std::str::from_utf8(id).ok());
        let Some(&id) = id.and_then(|id| self.wanted.get(id)) else {
            return Scanned::Continue;
        };
        if found.contains_key(id) {
            return Scanned::Continue; // a newer record already said
        }
        if let Some(until) = until.and_then(timestamp::parse) {
            found.insert(id.clone(), until);
            if found.len() == self.wanted.len() {
                return Scanned::Done;
            }
        }
        Scanned::Continue
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::shell::audit::audit_verify::verify;

    pub(crate) struct TempDir(pub PathBuf);

    impl TempDir {
        pub(crate) fn new(name: &str) -> TempDir {
            let dir = std::env::temp_dir().join(format!(
                "jit-audit-{name}-{}-{}",
                std::process::id(),
                Utc::now().timestamp_nanos_opt().unwrap_or(0)
            ));
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// The line `AuditLog` would write, for building large logs quickly in tests.
    pub(crate) fn line_for(seq: u64, time: DateTime<Utc>, event: &Event, prev: &str) -> String {
        AuditRecord::from_event(seq, time, event, prev).to_line()
    }

    pub(crate) fn approved(n: usize) -> Event {
        let mut e = Event::new(EventKind::Approved, format!("request {n} approved"));
        e.request_id = Some(format!("r{n}"));
        e.user = Some("alice".into());
        e.approver = Some("bob".into());
        e
    }

    /// A log of `n` records in a fresh dir.
    pub(crate) fn log_with(n: usize, name: &str) -> (TempDir, PathBuf) {
        let dir = TempDir::new(name);
        let log = AuditLog::open(&dir.0, Rotation::NEVER).unwrap();
        for i in 1..=n {
            log.record(&approved(i)).unwrap();
        }
        let path = log.path().to_path_buf();
        (dir, path)
    }

    pub(crate) fn lines(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }

    pub(crate) fn write_lines(path: &Path, lines: &[String]) {
        let mut text = lines.join("\n");
        text.push('\n');
        std::fs::write(path, text).unwrap();
    }

    pub(crate) fn bad_line(path: &Path) -> usize {
        match verify(path) {
            Ok(ok) => panic!("tampering went unnoticed: {ok:?}"),
            Err(e) => {
                eprintln!("{e}");
                e.line
            }
        }
    }

    /// The rotation that puts `per_file` records like [`approved`]'s in each file.
    pub(crate) fn every(per_file: u64) -> Rotation {
        let typical = line_for(10, Utc::now(), &approved(10), GENESIS).len() as u64 + 1;
        Rotation {
            max_bytes: Some(per_file * typical + typical / 2),
            max_age: None,
        }
    }

    /// A log of `n` records in a fresh dir, rotated every `per_file` records: for 10 and 3,
    /// `audit-…1.log` (records 1..3), `audit-…4.log`, `audit-…7.log` and `audit.log` (10).
    pub(crate) fn rotated_log_with(n: usize, per_file: u64, name: &str) -> (TempDir, PathBuf) {
        let dir = TempDir::new(name);
        let log = AuditLog::open(&dir.0, every(per_file)).unwrap();
        for i in 1..=n {
            log.record(&approved(i)).unwrap();
        }
        let path = log.path().to_path_buf();
        (dir, path)
    }

    /// The chain's files, by name.
    pub(crate) fn file_names(path: &Path) -> Vec<String> {
        audit_files::chain_files(path)
            .unwrap()
            .iter()
            .map(|f| f.path.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn an_untouched_log_verifies_and_reopening_continues_the_chain() {
        let (dir, path) = log_with(3, "intact");
        assert_eq!(verify(&path).unwrap().lines, 3);
        let log = AuditLog::open(&dir.0, Rotation::NEVER).unwrap();
        assert!(log.repair_notice().is_none());
        log.record(&approved(4)).unwrap();
        let ok = verify(&path).unwrap();
        assert_eq!(ok.lines, 4);
        assert_eq!(ok.head, log.head());
        let first: AuditRecord = serde_json::from_str(&lines(&path)[0]).unwrap();
        assert_eq!(first.prev, GENESIS);
        assert_eq!(first.event, "approved");
        assert_eq!(first.message_id, EventKind::Approved.message_id());
    }

    /// Session opens and closes written in one go: one chain, in order, each with its own
    /// position; and a batch the log cannot take leaves no part of it behind.
    #[test]
    fn a_batch_is_written_in_order_as_one_chain_or_not_at_all() {
        let (dir, path) = log_with(2, "batch");
        let log = AuditLog::open(&dir.0, Rotation::NEVER).unwrap();
        let batch = [approved(3), approved(4), approved(5)];
        let positions = AuditTrail::append_all(&log, &batch).unwrap();
        assert_eq!(
            positions.iter().map(|p| p.seq).collect::<Vec<_>>(),
            [3, 4, 5]
        );
        let ok = verify(&path).unwrap();
        assert_eq!(ok.lines, 5);
        assert_eq!(ok.head, log.head());
        assert_eq!(positions[2].hash, log.head().hash);
        let mut too_long = approved(7);
        too_long.message = "x".repeat(MAX_LINE);
        let refused = AuditTrail::append_all(&log, &[approved(6), too_long]);
        assert!(refused.is_err());
        assert_eq!(
            verify(&path).unwrap().lines,
            5,
            "part of a refused batch was written"
        );
        log.record(&approved(6)).unwrap();
        assert_eq!(verify(&path).unwrap().lines, 6);
    }

    #[test]
    fn a_missing_head_is_reported_and_refused_at_open() {
        let (dir, path) = log_with(2, "nohead");
        std::fs::remove_file(head_path(&path)).unwrap();
        assert_eq!(bad_line(&path), 3);
        let err = AuditLog::open(&dir.0, Rotation::NEVER)
            .err()
            .expect("open must refuse");
        assert!(err.to_string().contains("audit.head is missing"), "{err}");
        assert!(
            !head_path(&path).exists(),
            "the refusal changed the evidence"
        );
    }

    #[test]
    fn open_refuses_a_log_cut_short() {
        let (dir, path) = log_with(4, "open-cut");
        let mut l = lines(&path);
        l.truncate(2);
        write_lines(&path, &l);
        let err = AuditLog::open(&dir.0, Rotation::NEVER)
            .err()
            .expect("open must refuse");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(
            err.to_string().contains("records were removed or edited"),
            "{err}"
        );
    }

    #[test]
    fn a_crash_mid_write_is_repaired_and_the_repair_recorded() {
        let (dir, path) = log_with(2, "crash");
        // What a crash during the third append leaves: part of a line, head still at 2.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        let torn = b"{\"seq\":3,\"time\":\"2026";
        f.write_all(torn).unwrap();
        drop(f);
        let log = AuditLog::open(&dir.0, Rotation::NEVER).unwrap();
        let notice = log.repair_notice().expect("the repair is announced");
        assert_eq!(notice.kind(), EventKind::Reconciled);
        log.record(&approved(4)).unwrap();
        drop(log);
        assert_eq!(verify(&path).unwrap().lines, 4);
        let repair: AuditRecord = serde_json::from_str(&lines(&path)[2]).unwrap();
        assert_eq!(repair.event, "reconciled");
        assert_eq!(repair.extra["TORN_BYTES"], torn.len().to_string());
    }

    #[test]
    fn a_crash_before_the_head_update_is_accepted() {
        let (dir, path) = log_with(3, "headlag");
        let hp = head_path(&path);
        let log = AuditLog::open(&dir.0, Rotation::NEVER).unwrap();
        let old_head = std::fs::read(&hp).unwrap();
        log.record(&approved(4)).unwrap();
        drop(log);
        std::fs::write(&hp, old_head).unwrap();
        assert_eq!(verify(&path).unwrap().lines, 4);
        AuditLog::open(&dir.0, Rotation::NEVER)
            .unwrap()
            .record(&approved(5))
            .unwrap();
        assert_eq!(verify(&path).unwrap().lines, 5);
    }

    #[test]
    fn a_second_writer_is_refused() {
        let dir = TempDir::new("lock");
        let _first = AuditLog::open(&dir.0, Rotation::NEVER).unwrap();
        let err = AuditLog::open(&dir.0, Rotation::NEVER)
            .err()
            .expect("second open must fail");
        assert!(err.to_string().contains("another jitd"), "{err}");
    }

    #[test]
    fn user_text_is_stored_exactly_but_never_as_raw_controls() {
        let dir = TempDir::new("controls");
        let log = AuditLog::open(&dir.0, Rotation::NEVER).unwrap();
        let mut e = approved(1);
        e.reason = Some("x\nMESSAGE_ID=forged\x1b[31m\u{9b}31m\x7f".into());
        log.record(&e).unwrap();
        let text = std::fs::read_to_string(log.path()).unwrap();
        assert_eq!(text.lines().count(), 1);
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "{text:?}"
        );
        let back: AuditRecord = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(back.reason, e.reason);
    }

    #[test]
    fn a_full_disk_fails_cleanly_and_recovers_when_space_returns() {
        let mnt = TempDir::new("tmpfs");
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k", "jit-audit-test"])
            .arg(&mnt.0)
            .status()
            .unwrap();
        assert!(status.success(), "mount tmpfs (needs root)");
        struct Unmount(PathBuf);
        impl Drop for Unmount {
            fn drop(&mut self) {
                let _ = std::process::Command::new("umount").arg(&self.0).status();
            }
        }
        let _unmount = Unmount(mnt.0.clone());

        let log = AuditLog::open(&mnt.0, Rotation::NEVER).unwrap();
        log.record(&approved(1)).unwrap();
        // Fill the file system up to the last byte.
        let filler = mnt.0.join("filler");
        let mut f = File::create(&filler).unwrap();
        let chunk = vec![b'x'; 1024];
        while f.write_all(&chunk).is_ok() {}
        while f.write_all(b"x").is_ok() {}
        drop(f);

        let mut big = approved(2);
        big.reason = Some("r".repeat(8000));
        let err = log
            .record(&big)
            .expect_err("append to a full disk must fail");
        assert_eq!(err.kind(), io::ErrorKind::StorageFull, "{err}");
        let msg = err.to_string();
        assert!(msg.contains(&log.path().display().to_string()), "{msg}");
        assert!(msg.contains("refuses new requests and grants"), "{msg}");
        // Nothing half-written remains, and the chain is intact.
        assert_eq!(verify(log.path()).unwrap().lines, 1);

        std::fs::remove_file(&filler).unwrap();
        log.record(&big).unwrap();
        assert_eq!(verify(log.path()).unwrap().lines, 2);
    }

    #[test]
    fn approved_windows_are_read_back_from_the_end_as_far_as_asked() {
        let dir = TempDir::new("approved");
        let at = |secs: i64| DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap();
        let id = |s: &str| GrantId::try_from(s.to_string()).unwrap();
        let approval = |kind: EventKind, rid: &str, until: i64| {
            let mut e = Event::new(kind, "x");
            e.request_id = Some(rid.into());
            e.expires = Some(crate::core::timestamp::rfc3339(at(until)));
            e
        };
        let mut events = vec![
            // Approved long ago, before what is asked for.
            (at(0), approval(EventKind::Approved, "oldoldoldo", 9000)),
            (at(1000), approval(EventKind::Approved, "aaaaaaaaaa", 4000)),
        ];
        // Enough other records to span several read blocks, each trying to forge an approval
        // through its reason.
        for n in 0..3000 {
            let mut e = approval(EventKind::SessionOpened, "aaaaaaaaaa", 1);
            e.reason = Some(format!(
                "{n} \",\"event\":\"approved\",\"request_id\":\"bbbbbbbbbb\",\"expires\":\"2099-01-01T00:00:00Z\""
            ));
            events.push((at(1001), e));
        }
        let mut stretched = approval(EventKind::Approved, "dddddddddd", 5000);
        stretched.reason = Some("\",\"expires\":\"2099-01-01T00:00:00Z\",\"x\":\"".into());
        events.push((at(1500), stretched));
        events.push((at(2000), approval(EventKind::Extended, "aaaaaaaaaa", 7000)));
        events.push((at(2001), approval(EventKind::Denied, "cccccccccc", 9999)));
        let mut text = String::new();
        let mut prev = GENESIS.to_string();
        for (n, (time, e)) in events.iter().enumerate() {
            let line = line_for(n as u64 + 1, *time, e, &prev);
            prev = line_hash(line.as_bytes());
            text.push_str(&line);
            text.push('\n');
        }
        // Keys in another order (as serde_json::json! sorts them) read the same.
        let sorted = serde_json::json!({
            "seq": events.len() + 1, "time": "2027-01-15T08:36:40.000Z", "event": "approved",
            "message_id": "x", "request_id": "eeeeeeeeee", "expires": "2027-01-15T09:00:00Z",
            "message": "x", "prev": prev,
        });
        text.push_str(&sorted.to_string());
        text.push('\n');
        let path = dir.0.join(LOG_FILE);
        std::fs::write(&path, text).unwrap();
        assert!(std::fs::metadata(&path).unwrap().len() > 4 * 65536);
        let found = approved_windows(&path, &[id("eeeeeeeeee")], at(500)).unwrap();
        assert_eq!(
            found[&id("eeeeeeeeee")],
            DateTime::parse_from_rfc3339("2027-01-15T09:00:00Z").unwrap()
        );
        let wanted = [
            id("aaaaaaaaaa"),
            id("bbbbbbbbbb"),
            id("cccccccccc"),
            id("dddddddddd"),
            id("oldoldoldo"),
        ];
        let found = approved_windows(&path, &wanted, at(500)).unwrap();
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[&id("dddddddddd")], at(5000), "not the reason's");
        assert_eq!(
            found[&id("aaaaaaaaaa")],
            at(7000),
            "the newest window counts"
        );
        let found = approved_windows(&path, &wanted, at(0)).unwrap();
        assert_eq!(found[&id("oldoldoldo")], at(9000));
        assert!(!found.contains_key(&id("bbbbbbbbbb")) && !found.contains_key(&id("cccccccccc")));
    }

    #[test]
    fn rotation_continues_one_chain_across_files_and_reopening_continues_it() {
        let (dir, path) = rotated_log_with(10, 3, "rotate");
        let rotated = |seq| audit_files::rotated_path(&path, seq);
        assert_eq!(
            file_names(&path),
            [
                "audit-00000000000000000001.log",
                "audit-00000000000000000004.log",
                "audit-00000000000000000007.log",
                "audit.log"
            ]
        );
        for seq in [1, 4, 7] {
            assert_eq!(lines(&rotated(seq)).len(), 3);
        }
        // Each file starts where the one before ended: seq goes on, prev links the files.
        let first_of_next: AuditRecord = serde_json::from_str(&lines(&rotated(4))[0]).unwrap();
        assert_eq!(first_of_next.seq, 4);
        assert_eq!(
            first_of_next.prev,
            line_hash(lines(&rotated(1))[2].as_bytes())
        );
        let ok = verify(&path).unwrap();
        assert_eq!((ok.lines, ok.files), (10, 4));
        // After a restart the active file's first record (10) still names it.
        let log = AuditLog::open(&dir.0, every(1)).unwrap();
        log.record(&approved(11)).unwrap();
        assert_eq!(lines(&rotated(10)).len(), 1);
        assert_eq!(lines(&path).len(), 1);
        assert_eq!(verify(&path).unwrap().lines, 11);
    }

    #[test]
    fn rotation_by_age_starts_a_new_file_once_the_first_record_is_old_enough() {
        let dir = TempDir::new("rotate-age");
        let rotation = Rotation {
            max_bytes: None,
            max_age: Some(std::time::Duration::from_secs(3600)),
        };
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let minutes = |m: i64| t0 + chrono::Duration::minutes(m);
        let log = AuditLog::open(&dir.0, rotation).unwrap();
        for m in [0, 30, 59] {
            log.append_at(&approved(1), minutes(m)).unwrap();
        }
        assert_eq!(file_names(log.path()), ["audit.log"]);
        log.append_at(&approved(4), minutes(60)).unwrap();
        assert_eq!(
            file_names(log.path()),
            ["audit-00000000000000000001.log", "audit.log"]
        );
        drop(log);
        // The age of the active file's first record (4, at 60 min) is read back at open.
        let log = AuditLog::open(&dir.0, rotation).unwrap();
        log.append_at(&approved(5), minutes(119)).unwrap();
        assert_eq!(file_names(log.path()).len(), 2);
        log.append_at(&approved(6), minutes(120)).unwrap();
        assert_eq!(
            file_names(log.path()),
            [
                "audit-00000000000000000001.log",
                "audit-00000000000000000004.log",
                "audit.log"
            ]
        );
        assert_eq!(verify(log.path()).unwrap().lines, 6);
    }

    #[test]
    fn a_record_larger_than_the_limit_still_goes_in_a_file_of_its_own() {
        let dir = TempDir::new("rotate-big");
        let log = AuditLog::open(&dir.0, every(1)).unwrap();
        let mut big = approved(1);
        big.reason = Some("r".repeat(10_000));
        log.record(&big).unwrap();
        log.record(&big).unwrap();
        log.record(&approved(3)).unwrap();
        assert_eq!(file_names(log.path()).len(), 3);
        assert_eq!(verify(log.path()).unwrap().lines, 3);
    }

    #[test]
    fn approvals_in_rotated_files_are_found_at_startup() {
        let dir = TempDir::new("rotate-approved");
        let at = |secs: i64| DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap();
        let id = |s: &str| GrantId::try_from(s.to_string()).unwrap();
        let log = AuditLog::open(&dir.0, every(2)).unwrap();
        let approval = |rid: &str, until: i64| {
            let mut e = approved(1);
            e.request_id = Some(rid.into());
            e.expires = Some(crate::core::timestamp::rfc3339(at(until)));
            e
        };
        log.append_at(&approval("oldoldoldo", 9000), at(0)).unwrap();
        log.append_at(&approval("aaaaaaaaaa", 5000), at(100))
            .unwrap();
        for n in 0..7 {
            log.append_at(&approved(n), at(200 + n as i64)).unwrap();
        }
        log.append_at(&approval("bbbbbbbbbb", 6000), at(300))
            .unwrap();
        let path = log.path().to_path_buf();
        assert!(file_names(&path).len() >= 5, "{:?}", file_names(&path));
        let wanted = [id("aaaaaaaaaa"), id("bbbbbbbbbb"), id("oldoldoldo")];
        let found = approved_windows(&path, &wanted, at(50)).unwrap();
        assert_eq!(found[&id("aaaaaaaaaa")], at(5000), "read in an older file");
        assert_eq!(found[&id("bbbbbbbbbb")], at(6000));
        assert!(
            !found.contains_key(&id("oldoldoldo")),
            "read back further than asked"
        );
        let found = approved_windows(&path, &wanted, at(0)).unwrap();
        assert_eq!(found[&id("oldoldoldo")], at(9000));
    }

    /// The crash child: writes 10 records rotated every 3 in `JITD_TEST_SCRATCH` (its own
    /// directory when run alone), where `JITD_FAILPOINT` aborts it in the first rotation.
    #[test]
    fn rotation_crash_child() {
        let own;
        let dir = match std::env::var_os("JITD_TEST_SCRATCH") {
            Some(parents) => PathBuf::from(parents),
            None => {
                own = TempDir::new("rotate-child");
                own.0.clone()
            }
        };
        let log = AuditLog::open(&dir, every(3)).unwrap();
        for i in 1..=10 {
            log.record(&approved(i)).unwrap();
        }
    }

    /// Every step of a rotation where a crash can stop it.
    const ROTATION_FAILPOINTS: [&str; 4] = [
        "audit_rotate_before_rename",
        "audit_rotate_after_rename",
        "audit_rotate_after_create",
        "audit_rotate_before_head",
    ];

    #[test]
    fn a_crash_at_any_step_of_a_rotation_leaves_a_chain_that_open_continues() {
        let module = module_path!();
        let module = module.split_once("::").map_or(module, |(_, rest)| rest);
        for failpoint in ROTATION_FAILPOINTS {
            let dir = TempDir::new("rotate-crash");
            let out = std::process::Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    &format!("{module}::rotation_crash_child"),
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env("JITD_FAILPOINT", failpoint)
                .env("JITD_TEST_SCRATCH", &dir.0)
                .output()
                .unwrap();
            let said = String::from_utf8_lossy(&out.stderr);
            assert!(
                !out.status.success() && said.contains(&format!("failpoint {failpoint} hit")),
                "the child must have crashed at {failpoint}: {said}"
            );
            let path = dir.0.join(LOG_FILE);
            // Records 1..3 were acknowledged; the 4th was being written.
            let written = verify(&path)
                .unwrap_or_else(|e| panic!("after a crash at {failpoint}: {e}"))
                .lines;
            assert!(written == 3 || written == 4, "{failpoint}: {written}");
            let log = AuditLog::open(&dir.0, every(3))
                .unwrap_or_else(|e| panic!("open after a crash at {failpoint}: {e}"));
            for i in 0..4 {
                log.record(&approved(100 + i)).unwrap();
            }
            drop(log);
            let ok = verify(&path).unwrap_or_else(|e| panic!("after {failpoint}: {e}"));
            assert_eq!(ok.lines, written + 4, "{failpoint}");
            assert_eq!(ok.first_seq, 1, "{failpoint}");
            assert!(
                file_names(&path).contains(&"audit-00000000000000000001.log".to_string()),
                "{failpoint}: {:?}",
                file_names(&path)
            );
        }
    }

    #[test]
    fn a_file_in_the_way_of_a_rotation_is_never_overwritten() {
        let dir = TempDir::new("rotate-planted");
        let log = AuditLog::open(&dir.0, every(1)).unwrap();
        log.record(&approved(1)).unwrap();
        let planted = audit_files::rotated_path(log.path(), 1);
        std::fs::write(&planted, "evidence\n").unwrap();
        let err = log
            .record(&approved(2))
            .expect_err("rotating over a file must fail");
        assert!(
            err.to_string().contains("audit-00000000000000000001.log"),
            "{err}"
        );
        assert_eq!(std::fs::read_to_string(&planted).unwrap(), "evidence\n");
        // Once it is moved away, the next append rotates and the chain is whole.
        std::fs::remove_file(&planted).unwrap();
        log.record(&approved(2)).unwrap();
        assert_eq!(verify(log.path()).unwrap().lines, 2);
    }

    #[test]
    fn open_refuses_a_rotated_file_cut_short_when_it_holds_the_chain_s_end() {
        let (dir, path) = rotated_log_with(8, 3, "rotate-cut-newest");
        // A crash right after a rotation's rename: audit.log gone, the end in audit-…7.log.
        let newest = audit_files::rotated_path(&path, 7);
        std::fs::rename(&path, &newest).unwrap();
        let mut l = lines(&newest);
        l.pop();
        write_lines(&newest, &l);
        let err = AuditLog::open(&dir.0, every(3))
            .err()
            .expect("open must refuse");
        assert!(
            err.to_string().contains("the log ends at record 7"),
            "{err}"
        );
        // Emptied entirely: refused as well, naming the file.
        std::fs::write(&newest, "").unwrap();
        let err = AuditLog::open(&dir.0, every(3))
            .err()
            .expect("open must refuse");
        assert!(err.to_string().contains("holds no records"), "{err}");
    }

    #[test]
    fn records_carry_the_time_they_were_written() {
        let dir = TempDir::new("time");
        let log = AuditLog::open(&dir.0, Rotation::NEVER).unwrap();
        let t = DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
            .unwrap()
            .with_timezone(&Utc);
        log.append_at(&approved(1), t).unwrap();
        let rec: AuditRecord = serde_json::from_str(&lines(log.path())[0]).unwrap();
        assert_eq!(rec.time, "2026-01-02T03:04:05.000Z");
        assert_eq!(rec.time(), Some(t));
    }
}
