//! The events jitd reports. Every sink (syslog, journald, the audit log) receives the same
//! [`Event`]; each event type has one fixed journald MESSAGE_ID so `journalctl MESSAGE_ID=…`
//! finds every occurrence across versions.

use std::fmt;

/// BreakGlass and FailOpen also come from pam_jit's own passes, read back from the journal
/// (shell/pam_log_import.rs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    Requested,
    Approved,
    Denied,
    Cancelled,
    TimedOut,
    GrantInstalled,
    GrantFailed,
    SessionOpened,
    SessionClosed,
    ExpiryWarning,
    Expired,
    Revoked,
    Completed,
    Extended,
    BreakGlass,
    FailOpen,
    SessionEnded,
    Reconciled,
    ConfigReloaded,
    InternalError,
    /// An approver reviewed a break-glass grant.
    Reviewed,
    /// An SSH grant ended and its holder had scheduled, during it, what runs without a session
    /// (a crontab, at jobs, lingering).
    LeftBehind,
    /// A record loaded at startup that the policy or the audit trail cannot account for was
    /// set aside instead of enforced.
    Quarantined,
    /// Requests that ended more than `retention` ago left memory and the state directory.
    HistoryForgotten,
    /// Fleet mode: this host does not enforce a fleet request meant for it (its policy or
    /// user database says no), or an approval in the store did not count here (bad signature,
    /// key not in allowed_signers, not an approver here, the requester's own...).
    FleetRefused,
    /// Fleet mode: an approver on this host signed an approval and it went to the store (each
    /// target host checks it and logs `approved` when it enforces the grant).
    FleetSigned,
    /// An auditor had a grant's recorded sessions replayed through jitd.
    Replayed,
}

/// Syslog severities, as journald's PRIORITY field numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    Critical = 2,
    Error = 3,
    Warning = 4,
    Notice = 5,
    Info = 6,
}

impl EventKind {
    pub const ALL: [EventKind; 27] = [
        EventKind::Requested,
        EventKind::Approved,
        EventKind::Denied,
        EventKind::Cancelled,
        EventKind::TimedOut,
        EventKind::GrantInstalled,
        EventKind::GrantFailed,
        EventKind::SessionOpened,
        EventKind::SessionClosed,
        EventKind::ExpiryWarning,
        EventKind::Expired,
        EventKind::Revoked,
        EventKind::Completed,
        EventKind::Extended,
        EventKind::BreakGlass,
        EventKind::FailOpen,
        EventKind::SessionEnded,
        EventKind::Reconciled,
        EventKind::ConfigReloaded,
        EventKind::InternalError,
        EventKind::Reviewed,
        EventKind::LeftBehind,
        EventKind::Quarantined,
        EventKind::HistoryForgotten,
        EventKind::FleetRefused,
        EventKind::FleetSigned,
        EventKind::Replayed,
    ];

    /// Stable snake_case name, used in the audit log and notifier configuration.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Requested => "requested",
            EventKind::Approved => "approved",
            EventKind::Denied => "denied",
            EventKind::Cancelled => "cancelled",
            EventKind::TimedOut => "timed_out",
            EventKind::GrantInstalled => "grant_installed",
            EventKind::GrantFailed => "grant_failed",
            EventKind::SessionOpened => "session_opened",
            EventKind::SessionClosed => "session_closed",
            EventKind::ExpiryWarning => "expiring",
            EventKind::Expired => "expired",
            EventKind::Revoked => "revoked",
            EventKind::Completed => "completed",
            EventKind::Extended => "extended",
            EventKind::BreakGlass => "break_glass",
            EventKind::FailOpen => "fail_open",
            EventKind::SessionEnded => "session_ended",
            EventKind::Reconciled => "reconciled",
            EventKind::ConfigReloaded => "config_reloaded",
            EventKind::InternalError => "internal_error",
            EventKind::Reviewed => "reviewed",
            EventKind::LeftBehind => "left_behind",
            EventKind::Quarantined => "quarantined",
            EventKind::HistoryForgotten => "history_forgotten",
            EventKind::FleetRefused => "fleet_refused",
            EventKind::FleetSigned => "fleet_signed",
            EventKind::Replayed => "replayed",
        }
    }

    /// The kind whose [`EventKind::name`] is `name` (notifier configuration).
    pub fn from_name(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Fixed 128-bit journald MESSAGE_ID (32 lowercase hex digits). Never change one: SREs'
    /// saved queries depend on them.
    pub fn message_id(self) -> &'static str {
        match self {
            EventKind::Requested => "6a1b0f2e8c7d4e31a9f05b3c2d1e0f01",
            EventKind::Approved => "6a1b0f2e8c7d4e31a9f05b3c2d1e0f02",
            EventKind::Denied => "6a1b0f2e8c7d4e31a9f05b3c2d1e0f03",
            EventKind::Cancelled => "6a1b0f2e8c7d4e31a9f05b3c2d1e0f04",
            EventKind::TimedOut => "6a1b0f2e8c7d4e31a9f05b3c2d1e0f05",
            EventKind::GrantInstalled => "6a1b0f2e8c7d4e31a9f05b3c2d1e0f06",
            EventKind::GrantFailed => "6a1b0f2e8c7d4e31a9f05b3c2d1e0f07",
            EventKind::SessionOpened => "6a1b0f2e8c7d4e31a9f05b3c2d1e0f08",
            EventKind::SessionClosed => "6a1b0f2e8c7d4e31a9f05b3c2d1e0f09",
            EventKind::ExpiryWarning => "6a1b0f2e8c7d4e31a9f05b3c2d1e0f0a",
            EventKind::Expired => "6a1b0f2e8c7d4e31a9f05b3c2d1e0f0b",
            EventKind::Revoked => "6a1b0f2e8c7d4e31a9f05b3c2d1e0f0c",
            EventKind::Completed => "6a1b0f2e8c7d4e31a9f05b3c2d1e0f0d",
            EventKind::Extended => "6a1b0f2e8c7d4e31a9f05b3c2d1e0f0e",
            EventKind::BreakGlass => "6a1b0f2e8c7d4e31a9f05b3c2d1e0f0f",
            EventKind::FailOpen => "6a1b0f2e8c7d4e31a9f05b3c2d1e0f10",
            EventKind::SessionEnded => "6a1b0f2e8c7d4e31a9f05b3c2d1e0f11",
            EventKind::Reconciled => "6a1b0f2e8c7d4e31a9f05b3c2d1e0f12",
            EventKind::ConfigReloaded => "6a1b0f2e8c7d4e31a9f05b3c2d1e0f13",
            EventKind::InternalError => "6a1b0f2e8c7d4e31a9f05b3c2d1e0f14",
            EventKind::Reviewed => "6a1b0f2e8c7d4e31a9f05b3c2d1e0f15",
            EventKind::LeftBehind => "6a1b0f2e8c7d4e31a9f05b3c2d1e0f16",
            EventKind::Quarantined => "6a1b0f2e8c7d4e31a9f05b3c2d1e0f17",
            EventKind::HistoryForgotten => "6a1b0f2e8c7d4e31a9f05b3c2d1e0f18",
            EventKind::FleetRefused => "6a1b0f2e8c7d4e31a9f05b3c2d1e0f19",
            EventKind::FleetSigned => "6a1b0f2e8c7d4e31a9f05b3c2d1e0f1a",
            EventKind::Replayed => "6a1b0f2e8c7d4e31a9f05b3c2d1e0f1b",
        }
    }

    pub fn priority(self) -> Priority {
        match self {
            EventKind::BreakGlass | EventKind::FailOpen | EventKind::Quarantined => {
                Priority::Critical
            }
            EventKind::InternalError | EventKind::GrantFailed => Priority::Error,
            EventKind::Denied
            | EventKind::Revoked
            | EventKind::SessionEnded
            | EventKind::FleetRefused
            | EventKind::LeftBehind => Priority::Warning,
            EventKind::Requested
            | EventKind::Approved
            | EventKind::Expired
            | EventKind::Reconciled
            | EventKind::ConfigReloaded
            | EventKind::Reviewed
            | EventKind::FleetSigned
            | EventKind::Replayed
            | EventKind::GrantInstalled => Priority::Notice,
            _ => Priority::Info,
        }
    }
}

/// One thing that happened. Fields a user controls (reason, command, user names, ticket) are
/// stored raw here; every sink escapes them for its own format.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Event {
    pub kind: Option<EventKind>,
    pub request_id: Option<String>,
    pub user: Option<String>,
    pub approver: Option<String>,
    pub role: Option<String>,
    /// The command line, shell-quoted for display, or `ssh`.
    pub command: Option<String>,
    pub reason: Option<String>,
    pub ticket: Option<String>,
    /// RFC 3339 UTC.
    pub expires: Option<String>,
    /// The grant's length as asked for (notifications).
    pub duration_secs: Option<u64>,
    /// Who may decide on the request besides root (routes terminal notices to approvers).
    pub approver_groups: Vec<String>,
    /// Further JIT_* fields (name without the prefix, value raw), e.g. ("PID", "123").
    pub extra: Vec<(&'static str, String)>,
    /// One human sentence.
    pub message: String,
    /// Where the audit log wrote this event, set by the audit log itself; `None` on an event
    /// that is in no audit record (the audit log could not be written, or it never goes there).
    /// journald and syslog carry it so a copy kept off the host can show a rewritten chain.
    pub audit: Option<AuditPosition>,
}

/// An audit record's place in the chain: its `seq` and the hex SHA-256 of its line (what the
/// next record's `prev` and `audit.head` hold).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditPosition {
    pub seq: u64,
    pub hash: String,
}

impl Event {
    pub fn new(kind: EventKind, message: impl Into<String>) -> Self {
        Event {
            kind: Some(kind),
            message: message.into(),
            ..Event::default()
        }
    }

    pub fn kind(&self) -> EventKind {
        self.kind.unwrap_or(EventKind::InternalError)
    }
}

/// A destination for events. `record` returning an error matters only for sinks that must
/// hold before an action is acknowledged (the audit log).
pub trait EventSink: Send + Sync {
    fn record(&self, event: &Event) -> std::io::Result<()>;
}

/// A sink shared with whoever else reads it (the metrics).
impl<T: EventSink + ?Sized> EventSink for std::sync::Arc<T> {
    fn record(&self, event: &Event) -> std::io::Result<()> {
        (**self).record(event)
    }
}

/// The trail that must hold before an action is acknowledged: `append` returns once the event
/// is on disk, saying where it landed.
pub trait AuditTrail: Send + Sync {
    fn append(&self, event: &Event) -> std::io::Result<AuditPosition>;
    /// Appends `events` in order. The audit log writes them all or none, durable together
    /// (one fdatasync for the lot), which is what this is for; the default appends them one
    /// by one.
    fn append_all(&self, events: &[Event]) -> std::io::Result<Vec<AuditPosition>> {
        events.iter().map(|e| self.append(e)).collect()
    }
}

/// Escapes text a user controls for a one-line log: control characters (newline, ESC, DEL and
/// the C1 range) and backslash become visible escapes, so no sink receives a line break, an
/// ANSI sequence or a forged `KEY=value` line.
pub fn escape_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

impl fmt::Display for Event {
    /// The one-line form used for syslog: message, then the fields as key="value".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", escape_text(&self.message))?;
        let fields = [
            ("id", &self.request_id),
            ("user", &self.user),
            ("approver", &self.approver),
            ("role", &self.role),
            ("command", &self.command),
            ("reason", &self.reason),
            ("ticket", &self.ticket),
            ("expires", &self.expires),
        ];
        for (k, v) in fields {
            if let Some(v) = v {
                write!(f, " {k}=\"{}\"", escape_text(v).replace('"', "\\\""))?;
            }
        }
        for (k, v) in &self.extra {
            write!(
                f,
                " {}=\"{}\"",
                k.to_ascii_lowercase(),
                escape_text(v).replace('"', "\\\"")
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn message_ids_are_distinct_128_bit_hex() {
        let ids: HashSet<_> = EventKind::ALL.iter().map(|k| k.message_id()).collect();
        assert_eq!(ids.len(), EventKind::ALL.len());
        for id in ids {
            assert_eq!(id.len(), 32);
            assert!(id
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        }
    }

    #[test]
    fn user_text_cannot_forge_lines_or_fields() {
        let mut e = Event::new(EventKind::Requested, "request created");
        e.reason = Some("deploy\nMESSAGE_ID=forged\x1b[31m\"".into());
        let line = e.to_string();
        assert!(!line.contains('\n'));
        assert!(!line.contains('\x1b'));
        assert!(line.contains(r#"reason="deploy\nMESSAGE_ID=forged\u{1b}[31m\"""#));
    }
}
