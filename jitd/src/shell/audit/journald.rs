//! Events to journald through its native protocol: one datagram per event to
//! `/run/systemd/journal/socket`, made of `NAME=value\n` fields (systemd's "Native Journal
//! Protocol"), so `journalctl MESSAGE_ID=… JIT_USER=…` finds them.
//!
//! Every value goes through `escape_text`, so no newline or control character reaches the
//! journal raw: a reason of `x\nMESSAGE_ID=forged` stays one JIT_REASON value, and journalctl
//! never prints a user's ANSI sequence. Field names are fixed or `JIT_`-prefixed, so nothing
//! can claim a trusted `_` field (journald drops those from clients anyway).
//!
//! Large payloads: journald accepts bigger entries through a memfd passed with SCM_RIGHTS; we
//! do not implement that path and bound every value to [`MAX_VALUE`] bytes instead (requests
//! arrive in 64 KiB frames, and the audit log keeps the full text).

use std::io;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::core::events::{escape_text, Event, EventSink};

pub const SOCKET: &str = "/run/systemd/journal/socket";
/// Longest value sent, in bytes after escaping; longer ones are cut and marked.
pub const MAX_VALUE: usize = 8 * 1024;
/// journald's limit on a field name.
const MAX_NAME: usize = 64;
/// A stalled journald (full receive queue) must not stall the daemon: the event is dropped
/// with an error after this long (the audit log still has it).
pub const SEND_TIMEOUT: Duration = Duration::from_secs(1);

pub struct JournaldSink {
    socket: UnixDatagram,
    path: PathBuf,
}

impl JournaldSink {
    /// The sink for the system journal, if journald's socket exists.
    pub fn detect() -> Option<JournaldSink> {
        JournaldSink::at(Path::new(SOCKET)).ok()
    }

    /// A sink sending to the journald socket at `path`.
    pub fn at(path: &Path) -> io::Result<JournaldSink> {
        if !std::fs::metadata(path)?.file_type().is_socket() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a socket", path.display()),
            ));
        }
        let socket = UnixDatagram::unbound()?;
        socket.set_write_timeout(Some(SEND_TIMEOUT))?;
        Ok(JournaldSink {
            socket,
            path: path.to_path_buf(),
        })
    }
}

impl EventSink for JournaldSink {
    fn record(&self, event: &Event) -> io::Result<()> {
        let datagram = encode(event);
        self.socket
            .send_to(&datagram, &self.path)
            .map(|_| ())
            .map_err(|e| io::Error::new(e.kind(), format!("journald {}: {e}", self.path.display())))
    }
}

/// The datagram for one event.
pub fn encode(event: &Event) -> Vec<u8> {
    let kind = event.kind();
    let mut out = Vec::with_capacity(512);
    push_field(&mut out, "MESSAGE", &bounded(escape_text(&event.message)));
    push_field(&mut out, "MESSAGE_ID", kind.message_id());
    push_field(&mut out, "PRIORITY", &(kind.priority() as u8).to_string());
    push_field(&mut out, "SYSLOG_IDENTIFIER", "jitd");
    // authpriv: these records concern who may become root.
    push_field(&mut out, "SYSLOG_FACILITY", "10");
    push_field(&mut out, "JIT_EVENT", kind.name());
    let fields = [
        ("JIT_REQUEST_ID", &event.request_id),
        ("JIT_USER", &event.user),
        ("JIT_APPROVER", &event.approver),
        ("JIT_ROLE", &event.role),
        ("JIT_COMMAND", &event.command),
        ("JIT_REASON", &event.reason),
        ("JIT_TICKET", &event.ticket),
        ("JIT_EXPIRES", &event.expires),
    ];
    for (name, value) in fields {
        if let Some(value) = value {
            push_field(&mut out, name, &bounded(escape_text(value)));
        }
    }
    for (name, value) in &event.extra {
        push_field(&mut out, &extra_name(name), &bounded(escape_text(value)));
    }
    // The audit record's place in the chain, so a journal forwarded off the host shows a
    // rewritten audit.log: record JIT_AUDIT_SEQ must still hash to JIT_AUDIT_HASH. Events in
    // no audit record have neither field.
    if let Some(at) = &event.audit {
        push_field(&mut out, "JIT_AUDIT_SEQ", &at.seq.to_string());
        push_field(&mut out, "JIT_AUDIT_HASH", &escape_text(&at.hash));
    }
    out
}

/// `JIT_` + the name in journald's alphabet (A–Z, 0–9, `_`), at most 64 bytes.
fn extra_name(name: &str) -> String {
    let mut out = String::from("JIT_");
    out.extend(name.chars().map(|c| match c.to_ascii_uppercase() {
        c @ ('A'..='Z' | '0'..='9' | '_') => c,
        _ => '_',
    }));
    out.truncate(MAX_NAME);
    out
}

/// Cuts `value` to [`MAX_VALUE`] bytes on a character boundary, saying how much was cut.
fn bounded(value: String) -> String {
    if value.len() <= MAX_VALUE {
        return value;
    }
    let mut end = MAX_VALUE;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…[{} bytes cut]", &value[..end], value.len() - end)
}

/// `NAME=value\n`, or for a value with a newline the binary form: `NAME\n`, the length as
/// little-endian u64, the bytes, `\n`.
fn push_field(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    if value.contains('\n') {
        out.push(b'\n');
        out.extend_from_slice(&(value.len() as u64).to_le_bytes());
    } else {
        out.push(b'=');
    }
    out.extend_from_slice(value.as_bytes());
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::events::EventKind;
    use std::time::Instant;

    use jit_tests::journal::PrivateJournald;

    fn fields(datagram: &[u8]) -> Vec<String> {
        String::from_utf8(datagram.to_vec())
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn the_datagram_carries_fixed_fields_and_escaped_user_text() {
        let mut e = Event::new(EventKind::Approved, "request r1 approved");
        e.user = Some("alice".into());
        e.reason = Some("fix\nMESSAGE_ID=forged\n_UID=0".into());
        e.extra = vec![("pid", "42".into()), ("_uid=0\nX", "1".into())];
        let f = fields(&encode(&e));
        assert!(f.contains(&format!("MESSAGE_ID={}", EventKind::Approved.message_id())));
        assert!(f.contains(&"PRIORITY=5".to_string()));
        assert!(f.contains(&"SYSLOG_FACILITY=10".to_string()));
        assert!(f.contains(&"JIT_REASON=fix\\nMESSAGE_ID=forged\\n_UID=0".to_string()));
        assert!(f.contains(&"JIT_PID=42".to_string()));
        assert!(f.contains(&"JIT__UID_0_X=1".to_string()));
        assert_eq!(f.iter().filter(|l| l.starts_with("MESSAGE_ID=")).count(), 1);
        assert!(!f.iter().any(|l| l.starts_with('_')));
    }

    #[test]
    fn an_audited_event_carries_its_audit_position_and_others_none() {
        let mut e = Event::new(EventKind::Approved, "request r1 approved");
        let f = fields(&encode(&e));
        assert!(!f.iter().any(|l| l.starts_with("JIT_AUDIT_")), "{f:?}");
        e.audit = Some(crate::core::events::AuditPosition {
            seq: 42,
            hash: "ab".repeat(32),
        });
        let f = fields(&encode(&e));
        assert!(f.contains(&"JIT_AUDIT_SEQ=42".to_string()), "{f:?}");
        assert!(f.contains(&format!("JIT_AUDIT_HASH={}", "ab".repeat(32))));
    }

    #[test]
    fn a_value_with_a_newline_uses_the_length_prefixed_form() {
        let mut out = Vec::new();
        push_field(&mut out, "MESSAGE", "a\nb");
        assert_eq!(out, b"MESSAGE\n\x03\0\0\0\0\0\0\0a\nb\n");
    }

    #[test]
    fn long_values_are_cut_on_a_character_boundary() {
        let cut = bounded("é".repeat(MAX_VALUE));
        assert!(cut.len() < MAX_VALUE + 40);
        assert!(cut.ends_with(&format!("…[{} bytes cut]", MAX_VALUE)));
    }

    #[test]
    fn events_land_in_a_real_journal_with_their_fields_and_no_forgeries() {
        let journald = PrivateJournald::start();
        let sink = JournaldSink::at(&journald.socket()).unwrap();
        let user = format!("alice{}", std::process::id());

        let mut requested = Event::new(EventKind::Requested, "request r7 created");
        requested.request_id = Some("r7".into());
        requested.user = Some(user.clone());
        requested.role = Some("db-admin".into());
        requested.command = Some("\x1b[2J/usr/bin/id".into());
        requested.reason = Some("x\nMESSAGE_ID=forged\n_UID=4242".into());
        requested.ticket = Some("OPS-1".into());
        requested.expires = Some("2026-11-29T03:00:00Z".into());
        sink.record(&requested).unwrap();
        let mut glass = Event::new(EventKind::BreakGlass, "break-glass used");
        glass.user = Some(user.clone());
        glass.extra = vec![("PID", "4321".into())];
        sink.record(&glass).unwrap();

        let id = EventKind::Requested.message_id();
        let found = journald.query(&[format!("MESSAGE_ID={id}"), format!("JIT_USER={user}")], 1);
        assert_eq!(found.len(), 1, "{found:?}");
        let entry = &found[0];
        let field = |k: &str| {
            entry[k]
                .as_str()
                .unwrap_or_else(|| panic!("{k} in {entry}"))
        };
        assert_eq!(field("MESSAGE"), "request r7 created");
        assert_eq!(field("PRIORITY"), "5");
        assert_eq!(field("SYSLOG_IDENTIFIER"), "jitd");
        assert_eq!(field("SYSLOG_FACILITY"), "10");
        assert_eq!(field("JIT_EVENT"), "requested");
        assert_eq!(field("JIT_REQUEST_ID"), "r7");
        assert_eq!(field("JIT_ROLE"), "db-admin");
        assert_eq!(field("JIT_TICKET"), "OPS-1");
        assert_eq!(field("JIT_EXPIRES"), "2026-11-29T03:00:00Z");
        // The injections stayed inside their values, escaped.
        assert_eq!(field("JIT_REASON"), "x\\nMESSAGE_ID=forged\\n_UID=4242");
        assert_eq!(field("JIT_COMMAND"), "\\u{1b}[2J/usr/bin/id");
        assert_eq!(field("MESSAGE_ID"), id, "exactly one, the real one");
        assert_eq!(
            field("_UID"),
            "0",
            "journald's trusted uid, not the forged one"
        );
        assert!(journald.query(&["MESSAGE_ID=forged".into()], 0).is_empty());
        assert!(journald.query(&["_UID=4242".into()], 0).is_empty());

        let glass_id = EventKind::BreakGlass.message_id();
        let found = journald.query(
            &[format!("MESSAGE_ID={glass_id}"), format!("JIT_USER={user}")],
            1,
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0]["PRIORITY"], "2");
        assert_eq!(found[0]["JIT_PID"], "4321");
    }

    #[test]
    fn a_stalled_journal_does_not_stall_the_daemon() {
        let dir = crate::shell::audit::audit_log::tests::TempDir::new("stalled-journal");
        let path = dir.0.join("socket");
        // A receiver that never reads: its queue fills and further sends would block.
        let _stalled = UnixDatagram::bind(&path).unwrap();
        let sink = JournaldSink::at(&path).unwrap();
        let started = Instant::now();
        let event = Event::new(EventKind::Requested, "x".repeat(4000));
        let err = (0..100_000)
            .find_map(|_| sink.record(&event).err())
            .expect("a full queue must fail a send");
        // One timed-out send; the bound leaves room for a loaded machine (other tests share
        // this process) and still fails a sink that blocks, or times out on every send.
        assert!(
            started.elapsed() < SEND_TIMEOUT * 20,
            "{:?}",
            started.elapsed()
        );
        assert!(err.to_string().contains("journald"), "{err}");
    }

    #[test]
    fn the_documented_message_ids_are_the_real_ones() {
        let doc = include_str!("../../../../docs/audit.md");
        for kind in EventKind::ALL {
            let row = format!("| `{}` | `{}` |", kind.name(), kind.message_id());
            assert!(doc.contains(&row), "docs/audit.md lacks {row}");
        }
    }

    #[test]
    fn detect_finds_nothing_without_a_journal_socket_path() {
        assert!(JournaldSink::at(Path::new("/nonexistent/jit/socket")).is_err());
        assert!(JournaldSink::at(Path::new("/etc/hostname")).is_err());
    }
}
