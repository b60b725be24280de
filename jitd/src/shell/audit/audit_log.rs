//! The tamper-evident audit log: `audit.log` in the state dir, one JSON object per line, each
//! carrying `prev`, the SHA-256 of the previous line's bytes (a hash chain), and `seq`, its
//! position. A record is appended with O_APPEND and fdatasync'ed before [`AuditLog::record`]
//! returns, so the daemon acknowledges an action only once it is on disk.
//!
//! Next to it, `audit.head` holds the seq and hash of the last record (rewritten in place after
//! every append). The chain alone cannot show that whole trailing lines were cut off; the head
//! can, unless whoever cut them also rewrote the head. Neither can stop someone with root from
//! rewriting the whole file and recomputing every hash: for that, compare `jitd audit verify`'s
//! final hash with a copy kept elsewhere (journald forwarding, a remote syslog).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{DateTime, SecondsFormat, Utc};
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::core::events::{Event, EventKind, EventSink};
use crate::core::model::GrantId;
use crate::core::timestamp;
use crate::shell::atomic_file::{open_trusted, read_trusted};

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
    fn to_line(&self) -> String {
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
    fn genesis() -> Self {
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
fn read_head(path: &Path) -> io::Result<Option<ChainHead>> {
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

/// Where a record's time comes from: the daemon's clock, which never goes backwards (so the
/// log is in time order even when the wall clock is set back, and its times agree with the
/// records' approval and expiry times).
pub type Now = Box<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// The append side, owned by the daemon. Thread-safe; holds an exclusive flock on the log so a
/// second daemon cannot interleave its own chain.
pub struct AuditLog {
    path: PathBuf,
    now: Now,
    head_path: PathBuf,
    inner: Mutex<Writer>,
    /// The `reconciled` record written when `open` cut a torn line, for the other sinks.
    repair: Option<Event>,
}

struct Writer {
    log: Flock<File>,
    head_file: File,
    head: ChainHead,
    /// Length of the log up to the last acknowledged record: a failed append is cut back to it.
    len: u64,
    /// Set when the log may no longer match `head`/`len`; every later append fails with it.
    broken: Option<String>,
}

/// An error naming the file and what the operator can do, keeping the original kind (e.g.
/// `StorageFull`) so the daemon can tell disk-full from corruption.
fn context(kind: io::ErrorKind, path: &Path, what: impl fmt::Display) -> io::Error {
    io::Error::new(kind, format!("audit log {}: {what}", path.display()))
}

impl AuditLog {
    /// Opens (or creates) `state_dir/audit.log` and continues its chain.
    ///
    /// Crash recovery: a final line without its newline can only be a record whose write was
    /// torn before it was fsync'ed — hence never acknowledged — *if* `audit.head` still names
    /// the line before it. Then the torn bytes are cut off and a `reconciled` record says so
    /// (with their length and hash). Any other mismatch between the log's end and the head
    /// (missing lines, an edited last line, a missing head) means tampering or a lost file:
    /// `open` refuses, so the daemon grants nothing until a person has looked.
    #[cfg(test)]
    pub fn open(state_dir: &Path) -> io::Result<AuditLog> {
        Self::open_with_clock(state_dir, Box::new(Utc::now))
    }

    /// [`AuditLog::open`], with records timed by `now`.
    pub fn open_with_clock(state_dir: &Path, now: Now) -> io::Result<AuditLog> {
        let path = state_dir.join(LOG_FILE);
        let head_path = head_path(&path);
        let file = open_trusted(
            &path,
            OpenOptions::new()
                .read(true)
                .append(true)
                .create(true)
                .mode(0o600),
        )
        .map_err(|e| context(e.kind(), &path, format!("cannot open: {e}")))?;
        let mut log =
            Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| {
                context(
                    io::ErrorKind::WouldBlock,
                    &path,
                    format!("locked by another process ({errno}): is another jitd running?"),
                )
            })?;
        let stored_head = read_head(&head_path)?;
        let tail = read_tail(&mut log, &path)?;

        let head = match (&tail.last, &stored_head) {
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
                        "{} is missing, so truncation cannot be ruled out. Run `jitd audit \
                         verify`; to start a new chain, move audit.log aside (keep it as \
                         evidence) and start jitd again",
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
                         hash: records were removed or edited. Run `jitd audit verify`; to \
                         start a new chain, move audit.log and audit.head aside (keep them as \
                         evidence) and start jitd again",
                        head_path.display(),
                        h.seq
                    ),
                ));
            }
        };

        let head_file = open_trusted(
            &head_path,
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600),
        )
        .map_err(|e| context(e.kind(), &head_path, format!("cannot open: {e}")))?;
        let writer = Writer {
            log,
            head_file,
            head,
            len: tail.complete_len,
            broken: None,
        };
        let mut audit = AuditLog {
            path,
            head_path,
            now,
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
                audit.append(&mut w, &event, (audit.now)())?;
                Some(event)
            } else {
                audit.write_head(&mut w)?;
                None
            }
        };
        audit.repair = repair;
        // A newly created log or head must survive a crash as a directory entry too.
        File::open(state_dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| context(e.kind(), state_dir, format!("cannot sync: {e}")))?;
        Ok(audit)
    }

    /// The event `open` recorded after cutting a torn final line, if it did: send it to
    /// journald/syslog too so the repair is seen outside the log.
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
        if let Some(why) = &w.broken {
            return Err(context(
                io::ErrorKind::Other,
                &self.path,
                format!("{why}; restart jitd to re-check the log before anything is granted"),
            ));
        }
        let record = AuditRecord::from_event(w.head.seq + 1, time, event, &w.head.hash);
        let line = record.to_line();
        if line.len() > MAX_LINE {
            return Err(context(
                io::ErrorKind::InvalidInput,
                &self.path,
                format!("record of {} bytes exceeds {MAX_LINE}", line.len()),
            ));
        }
        let mut bytes = line.into_bytes();
        let hash = line_hash(&bytes);
        bytes.push(b'\n');
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
        w.len += bytes.len() as u64;
        w.head = ChainHead {
            seq: record.seq,
            hash,
        };
        // The record is durable, so this action may be acknowledged even if the head update
        // fails; later appends refuse until a restart has re-checked the log against the head.
        if let Err(e) = self.write_head(w) {
            w.broken = Some(e.to_string());
        }
        Ok(w.head.clone())
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

/// Opens a log for streaming reads (the CLI's queries and `verify`), never through a link.
pub fn open_reader(path: &Path) -> io::Result<LineReader<BufReader<File>>> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| context(e.kind(), path, format!("cannot read: {e}")))?;
    Ok(LineReader::new(BufReader::with_capacity(1 << 16, file)))
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
fn raw_fields<'a, const N: usize>(line: &'a [u8], keys: [&str; N]) -> [Option<&'a [u8]>; N] {
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
/// backwards from the end, and only back to the first record written before `since` (or until
/// every grant was found), so a long log costs only its recent part. A grant missing from the
/// answer has no approval in that part of the log.
pub fn approved_windows(
    path: &Path,
    wanted: &[GrantId],
    since: DateTime<Utc>,
) -> io::Result<HashMap<GrantId, DateTime<Utc>>> {
    const BLOCK: u64 = 1 << 16;
    let wanted: HashMap<&str, &GrantId> = wanted.iter().map(|id| (id.as_str(), id)).collect();
    let mut found = HashMap::with_capacity(wanted.len());
    if wanted.is_empty() {
        return Ok(found);
    }
    let file = open_trusted(path, OpenOptions::new().read(true))
        .map_err(|e| context(e.kind(), path, format!("cannot read: {e}")))?;
    // jitd writes every time in this one form, so comparing text is comparing times.
    let since_text = since.to_rfc3339_opts(SecondsFormat::Millis, true);
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
        for line in lines.into_iter().rev().filter(|l| !l.is_empty()) {
            let [time, event, id, until] =
                raw_fields(line, ["time", "event", "request_id", "expires"]);
            let Some(time) = time else {
                continue;
            };
            let older = if time.len() == since_text.len() {
                time < since_text.as_bytes()
            } else {
                timestamp::parse(time).is_some_and(|t| t < since)
            };
            if older {
                return Ok(found);
            }
            if !event.is_some_and(|e| APPROVING.contains(&e)) {
                continue;
            }
            let id = id.and_then(|id| std::str::from_utf8(id).ok());
            let Some(&id) = id.and_then(|id| wanted.get(id)) else {
                continue;
            };
            if found.contains_key(id) {
                continue; // a newer record already said
            }
            if let Some(until) = until.and_then(timestamp::parse) {
                found.insert(id.clone(), until);
                if found.len() == wanted.len() {
                    return Ok(found);
                }
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
    Ok(found)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyOk {
    /// Number of intact records.
    pub lines: usize,
    /// The chain's end: keep a copy elsewhere to detect a wholesale rewrite later.
    pub head: ChainHead,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyError {
    /// First line (from 1) where the chain breaks; for a log cut short, the first missing one.
    pub line: usize,
    pub what: String,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.what)
    }
}

/// Walks the whole chain in one streaming pass and checks it against `audit.head`. Detects an
/// edited, deleted, inserted, reordered or duplicated record, a torn final line and (through
/// the head) whole lines cut from the end. Cannot detect a log rewritten from scratch with the
/// head rewritten to match: compare [`VerifyOk::head`] with a copy kept elsewhere for that.
pub fn verify(path: &Path) -> Result<VerifyOk, VerifyError> {
    let fail = |line: usize, what: String| VerifyError { line, what };
    let mut reader = open_reader(path).map_err(|e| fail(0, e.to_string()))?;
    let mut head = ChainHead::genesis();
    let mut before_last = ChainHead::genesis();
    loop {
        let raw = match reader.next_line() {
            Ok(Some(raw)) => raw,
            Ok(None) => break,
            Err(e) => return Err(fail(reader.line_no, e.to_string())),
        };
        let n = raw.number;
        if !raw.terminated {
            return Err(fail(
                n,
                "incomplete final line (no newline): the log was cut or a write was torn".into(),
            ));
        }
        let record: AuditRecord = serde_json::from_slice(raw.bytes)
            .map_err(|e| fail(n, format!("not a valid audit record: {e}")))?;
        let expected = head.seq + 1;
        if record.seq > expected {
            return Err(fail(
                n,
                format!(
                    "seq {} where {expected} was expected: record(s) {expected}..{} were deleted",
                    record.seq,
                    record.seq - 1
                ),
            ));
        }
        if record.seq < expected {
            return Err(fail(
                n,
                format!(
                    "seq {} where {expected} was expected: a record was inserted, duplicated or \
                     moved",
                    record.seq
                ),
            ));
        }
        if record.prev != head.hash {
            return Err(fail(
                n,
                match n {
                    1 => "the first record does not start the chain: records before it were \
                          deleted, or it was edited"
                        .to_string(),
                    _ => format!(
                        "prev does not match the hash of line {}: line {} was edited, or this \
                         line was inserted or edited",
                        n - 1,
                        n - 1
                    ),
                },
            ));
        }
        before_last = std::mem::replace(
            &mut head,
            ChainHead {
                seq: record.seq,
                hash: line_hash(raw.bytes),
            },
        );
    }
    let lines = usize::try_from(head.seq).unwrap_or(usize::MAX);
    let hpath = head_path(path);
    let stored = read_head(&hpath).map_err(|e| fail(lines + 1, e.to_string()))?;
    match stored {
        Some(h) if h == head => Ok(VerifyOk { lines, head }),
        // The daemon stopped between writing the last record and updating the head.
        Some(h) if h == before_last && h.seq + 1 == head.seq => Ok(VerifyOk { lines, head }),
        None if head.seq == 0 => Ok(VerifyOk { lines, head }),
        None => Err(fail(
            lines + 1,
            format!(
                "{} is missing: cannot tell whether records were cut from the end",
                hpath.display()
            ),
        )),
        Some(h) if h.seq > head.seq => Err(fail(
            lines + 1,
            format!(
                "the log ends at record {} but {} says record {} was written: records were cut \
                 from the end",
                head.seq,
                hpath.display(),
                h.seq
            ),
        )),
        Some(h) if h.seq == head.seq => Err(fail(
            lines,
            format!(
                "the last record's hash differs from {}: it was edited",
                hpath.display()
            ),
        )),
        Some(h) => Err(fail(
            usize::try_from(h.seq + 1).unwrap_or(usize::MAX),
            format!(
                "{} ends at record {}: later records were not written by jitd (or the head was \
                 edited)",
                hpath.display(),
                h.seq
            ),
        )),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

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

    fn approved(n: usize) -> Event {
        let mut e = Event::new(EventKind::Approved, format!("request {n} approved"));
        e.request_id = Some(format!("r{n}"));
        e.user = Some("alice".into());
        e.approver = Some("bob".into());
        e
    }

    /// A log of `n` records in a fresh dir.
    fn log_with(n: usize, name: &str) -> (TempDir, PathBuf) {
        let dir = TempDir::new(name);
        let log = AuditLog::open(&dir.0).unwrap();
        for i in 1..=n {
            log.record(&approved(i)).unwrap();
        }
        let path = log.path().to_path_buf();
        (dir, path)
    }

    fn lines(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn write_lines(path: &Path, lines: &[String]) {
        let mut text = lines.join("\n");
        text.push('\n');
        std::fs::write(path, text).unwrap();
    }

    fn bad_line(path: &Path) -> usize {
        match verify(path) {
            Ok(ok) => panic!("tampering went unnoticed: {ok:?}"),
            Err(e) => {
                eprintln!("{e}");
                e.line
            }
        }
    }

    #[test]
    fn an_untouched_log_verifies_and_reopening_continues_the_chain() {
        let (dir, path) = log_with(3, "intact");
        assert_eq!(verify(&path).unwrap().lines, 3);
        let log = AuditLog::open(&dir.0).unwrap();
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

    #[test]
    fn an_edited_record_breaks_the_chain_at_the_next_line() {
        let (_dir, path) = log_with(5, "edit");
        let mut l = lines(&path);
        l[2] = l[2].replace("\"bob\"", "\"mallory\"");
        write_lines(&path, &l);
        assert_eq!(bad_line(&path), 4);
    }

    #[test]
    fn an_edited_last_record_is_caught_by_the_head() {
        let (_dir, path) = log_with(3, "edit-last");
        let mut l = lines(&path);
        l[2] = l[2].replace("\"bob\"", "\"mallory\"");
        write_lines(&path, &l);
        assert_eq!(bad_line(&path), 3);
    }

    #[test]
    fn a_deleted_record_is_named() {
        let (_dir, path) = log_with(5, "delete");
        let mut l = lines(&path);
        l.remove(1);
        write_lines(&path, &l);
        assert_eq!(bad_line(&path), 2);
    }

    #[test]
    fn an_inserted_record_is_named() {
        let (_dir, path) = log_with(4, "insert");
        let mut l = lines(&path);
        // A forger who even gets prev and seq right still shifts every later seq.
        let mut forged: AuditRecord = serde_json::from_str(&l[1]).unwrap();
        forged.seq = 3;
        forged.prev = line_hash(l[1].as_bytes());
        forged.approver = Some("mallory".into());
        l.insert(2, forged.to_line());
        write_lines(&path, &l);
        assert_eq!(bad_line(&path), 4);
    }

    #[test]
    fn reordered_records_are_named() {
        let (_dir, path) = log_with(5, "reorder");
        let mut l = lines(&path);
        l.swap(1, 2);
        write_lines(&path, &l);
        assert_eq!(bad_line(&path), 2);
    }

    #[test]
    fn whole_lines_cut_from_the_end_are_caught_by_the_head() {
        let (_dir, path) = log_with(5, "truncate");
        let mut l = lines(&path);
        l.truncate(3);
        write_lines(&path, &l);
        assert_eq!(bad_line(&path), 4);
    }

    #[test]
    fn a_torn_last_line_is_named() {
        let (_dir, path) = log_with(3, "torn");
        let text = std::fs::read(&path).unwrap();
        std::fs::write(&path, &text[..text.len() - 10]).unwrap();
        assert_eq!(bad_line(&path), 3);
    }

    #[test]
    fn a_missing_head_is_reported_and_refused_at_open() {
        let (dir, path) = log_with(2, "nohead");
        std::fs::remove_file(head_path(&path)).unwrap();
        assert_eq!(bad_line(&path), 3);
        let err = AuditLog::open(&dir.0).err().expect("open must refuse");
        assert!(err.to_string().contains("audit.head is missing"), "{err}");
    }

    #[test]
    fn open_refuses_a_log_cut_short() {
        let (dir, path) = log_with(4, "open-cut");
        let mut l = lines(&path);
        l.truncate(2);
        write_lines(&path, &l);
        let err = AuditLog::open(&dir.0).err().expect("open must refuse");
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
        let log = AuditLog::open(&dir.0).unwrap();
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
        let log = AuditLog::open(&dir.0).unwrap();
        let old_head = std::fs::read(&hp).unwrap();
        log.record(&approved(4)).unwrap();
        drop(log);
        std::fs::write(&hp, old_head).unwrap();
        assert_eq!(verify(&path).unwrap().lines, 4);
        AuditLog::open(&dir.0)
            .unwrap()
            .record(&approved(5))
            .unwrap();
        assert_eq!(verify(&path).unwrap().lines, 5);
    }

    #[test]
    fn a_second_writer_is_refused() {
        let dir = TempDir::new("lock");
        let _first = AuditLog::open(&dir.0).unwrap();
        let err = AuditLog::open(&dir.0).err().expect("second open must fail");
        assert!(err.to_string().contains("another jitd"), "{err}");
    }

    #[test]
    fn user_text_is_stored_exactly_but_never_as_raw_controls() {
        let dir = TempDir::new("controls");
        let log = AuditLog::open(&dir.0).unwrap();
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

        let log = AuditLog::open(&mnt.0).unwrap();
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
    fn records_carry_the_time_they_were_written() {
        let dir = TempDir::new("time");
        let log = AuditLog::open(&dir.0).unwrap();
        let t = DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
            .unwrap()
            .with_timezone(&Utc);
        log.append_at(&approved(1), t).unwrap();
        let rec: AuditRecord = serde_json::from_str(&lines(log.path())[0]).unwrap();
        assert_eq!(rec.time, "2026-01-02T03:04:05.000Z");
        assert_eq!(rec.time(), Some(t));
    }
}
