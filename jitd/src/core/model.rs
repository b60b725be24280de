//! The request/grant record as jitd keeps it. The phase carries exactly the timestamps that
//! exist in it, so "active without an expiry" or "pending with an approval time" cannot be
//! written down.

use std::fmt;

use chrono::{DateTime, Utc};
use jit_proto::{GrantKind, State, Target};
use serde::{Deserialize, Serialize};

use super::fleet::verdict::Signed;
use super::left_behind::UserJobs;
use super::recording::Record;
use super::short_text::{RareText, ShortText};
use super::timestamp::{self, Stamp};

/// A request id: 10 characters of `[a-z0-9]`. Used in sudoers file names (`jit_<id>`), so it
/// must never contain a dot, a tilde or a slash; the type guarantees that. Held inline (no
/// heap string): every request's id is also a key in the registry's indexes, and 100,000
/// grants held as `String`s cost some 25 MiB more.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct GrantId([u8; ID_LEN]);

pub const ID_LEN: usize = 10;
const ID_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

impl GrantId {
    /// A fresh random id from the kernel's CSPRNG (unguessable, and safe to generate on many
    /// hosts at once when approvals are shared).
    pub fn random() -> std::io::Result<GrantId> {
        let mut bytes = [0u8; ID_LEN];
        let mut filled = 0;
        while filled < ID_LEN {
            // SAFETY: the pointer and length describe the unfilled tail of `bytes`.
            let n =
                unsafe { libc::getrandom(bytes[filled..].as_mut_ptr().cast(), ID_LEN - filled, 0) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            filled += n as usize;
        }
        // 256 is not a multiple of 36; the slight bias does not matter for an identifier.
        for b in &mut bytes {
            *b = ID_ALPHABET[*b as usize % ID_ALPHABET.len()];
        }
        Ok(GrantId(bytes))
    }

    pub fn as_str(&self) -> &str {
        // Always ASCII: every constructor fills it from ID_ALPHABET.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl TryFrom<String> for GrantId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match <[u8; ID_LEN]>::try_from(s.as_bytes()) {
            Ok(bytes) if bytes.iter().all(|b| ID_ALPHABET.contains(b)) => Ok(GrantId(bytes)),
            _ => Err(format!(
                "{s:?} is not a request id (10 characters, a-z and 0-9; see `jitd list`)"
            )),
        }
    }
}

impl From<GrantId> for String {
    fn from(id: GrantId) -> String {
        id.as_str().to_owned()
    }
}

impl fmt::Display for GrantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The approved window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    #[serde(with = "timestamp")]
    pub approved_at: DateTime<Utc>,
    #[serde(with = "timestamp")]
    pub expires_at: DateTime<Utc>,
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum End {
    Expired,
    Revoked,
    Completed,
    Denied,
    Cancelled,
    TimedOut,
    Failed,
    /// Never a request: pam_jit let the user through without a grant ([`Pass`]).
    Passed,
}

/// More time asked for on an active grant, waiting for its approvals. It exists only inside
/// [`Phase::Active`]: a pending or ended request cannot carry one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extension {
    /// Seconds added to the window when approved.
    pub secs: u64,
    #[serde(with = "timestamp")]
    pub asked_at: DateTime<Utc>,
    pub approvals_required: u32,
    /// Distinct approvers of this extension so far.
    pub approvers: Vec<String>,
}

impl Extension {
    pub fn missing(&self) -> u32 {
        self.approvals_required
            .saturating_sub(self.approvers.len() as u32)
    }
}

/// Stored as `{"phase": "active", "window": ...}`. Read through [`PhaseRecord`], a plain
/// struct: serde reads an internally tagged enum by buffering every field first, which was a
/// tenth of loading 100,000 grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case", try_from = "PhaseRecord")]
pub enum Phase {
    Pending {
        #[serde(with = "timestamp")]
        until: DateTime<Utc>,
    },
    Active {
        window: Window,
        /// Boxed: rare, and an active grant is the record jitd holds most of.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        extension: Option<Box<Extension>>,
    },
    Ended {
        end: End,
        #[serde(with = "timestamp")]
        at: DateTime<Utc>,
        /// The window it had, if it was ever approved.
        window: Option<Window>,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum PhaseTag {
    Pending,
    Active,
    Ended,
}

/// A stored phase as it reads, before [`Phase`] checks that its state has what it needs.
#[derive(Deserialize)]
struct PhaseRecord {
    phase: PhaseTag,
    until: Option<Stamp>,
    window: Option<Window>,
    #[serde(default)]
    extension: Option<Box<Extension>>,
    end: Option<End>,
    at: Option<Stamp>,
}

impl TryFrom<PhaseRecord> for Phase {
    type Error = &'static str;
    fn try_from(r: PhaseRecord) -> Result<Phase, &'static str> {
        Ok(match r.phase {
            PhaseTag::Pending => Phase::Pending {
                until: r.until.ok_or("a pending request without `until`")?.0,
            },
            PhaseTag::Active => Phase::Active {
                window: r.window.ok_or("an active grant without `window`")?,
                extension: r.extension,
            },
            PhaseTag::Ended => Phase::Ended {
                end: r.end.ok_or("an ended request without `end`")?,
                at: r.at.ok_or("an ended request without `at`")?.0,
                window: r.window,
            },
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Approve,
    Deny,
    Cancel,
    Revoke,
    Done,
    Expire,
    TimeOut,
    Fail,
    /// The requester asked for more time.
    Extend,
    /// A break-glass review that an extension reopened (the review as it was, kept).
    Reviewed,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Approve => "approve",
            Action::Deny => "deny",
            Action::Cancel => "cancel",
            Action::Revoke => "revoke",
            Action::Done => "done",
            Action::Expire => "expire",
            Action::TimeOut => "time_out",
            Action::Fail => "fail",
            Action::Extend => "extend",
            Action::Reviewed => "reviewed",
        }
    }
}

/// Who did a step: a user (by uid and name), or jitd itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub action: Action,
    /// Inline when short ([`ShortText`]): an approver's name, in every decided record.
    pub by: ShortText,
    #[serde(default)]
    pub by_uid: Option<u32>,
    #[serde(with = "timestamp")]
    pub at: DateTime<Utc>,
    /// Inline when short: `jitd grant` notes every grant it makes ("granted directly").
    #[serde(default)]
    pub note: Option<ShortText>,
    /// An approval that no longer counts: checked again (at a reload, or when a later approval
    /// would have opened the window), its approver could no longer decide on the request.
    /// Kept in the record as it happened; the audit log says why.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub voided: bool,
}

/// A grant taken through a break-glass role, or a pass pam_jit made without any grant: loud,
/// and on the review backlog until an approver reviews it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakGlass {
    pub review: Option<Review>,
    /// Set for a pass without a grant (the record is then of state `passed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pass: Option<Box<Pass>>,
}

/// How pam_jit let a user through without a grant, and how jitd heard of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pass {
    /// pam_jit's random key for the pass, in its log line and its report alike.
    pub key: String,
    pub how: jit_proto::PassKind,
    pub service: String,
    pub rhost: Option<String>,
    pub tty: Option<String>,
    /// `pam_jit` (told at once) or `journal` (read back from its log line).
    pub heard_from: String,
}

/// The SSH login a request was made for by pam_jit (`wait=`), which waits for its decision.
/// Only a pending request's login matters: when its process is gone, nobody waits any more
/// and the request is cancelled rather than left for someone to approve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Login {
    /// PAM_RHOST as sshd gave it.
    pub rhost: Option<String>,
    pub service: String,
    /// The process the login waits in: sshd's privileged monitor for a public-key login, its
    /// PAM process with keyboard-interactive.
    pub pid: u32,
    /// Its start time (clock ticks since boot) and the boot, so that a reused pid is never
    /// taken for the login; without them only the request's deadline ends a vanished login.
    #[serde(default)]
    pub start_ticks: Option<u64>,
    #[serde(default)]
    pub boot_id: Option<Box<str>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Review {
    pub by: String,
    #[serde(with = "timestamp")]
    pub at: DateTime<Utc>,
    pub comment: String,
}

/// A session pam_jit registered under this grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub pid: u32,
    pub service: String,
    pub user: String,
    pub ruser: Option<String>,
    pub tty: Option<String>,
    pub rhost: Option<String>,
    pub audit_session: Option<u32>,
    #[serde(with = "timestamp")]
    pub opened_at: DateTime<Utc>,
    /// What the host learned of the session's process when it registered (absent in records
    /// older than it): a restarted jitd acts on exactly that process and what it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<SessionProcess>,
}

/// The facts that let jitd find a session's processes again after a restart, and nothing
/// else: a pid alone may since name another process, an audit session holds the whole login.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionProcess {
    /// The kernel's boot id (`/proc/sys/kernel/random/boot_id`). After a reboot, the pid, the
    /// start time and the audit session id below name nothing of this session.
    pub boot_id: Box<str>,
    /// The process's start time, field 22 of `/proc/<pid>/stat` (clock ticks since boot):
    /// with the pid it identifies the process; absent if it could not be read.
    #[serde(default)]
    pub start_ticks: Option<u64>,
    /// Clock ticks since boot when the session registered. A member of its audit session that
    /// started earlier was not started by the session.
    pub registered_ticks: u64,
    /// Whether the process was moved into the grant's cgroup (which then holds everything it
    /// starts, and the audit session is not needed to find it).
    #[serde(default)]
    pub adopted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
///
/// Text that never changes once written is `Box<str>` rather than `String` (16 bytes instead of
/// 24, no spare capacity): jitd holds every record, 100,000 active grants among them.
pub struct Request {
    pub id: GrantId,
    /// The requester, from peer credentials (or named by an approver for `jitd grant`).
    pub uid: u32,
    /// Inline when short ([`ShortText`]), as user names are.
    pub user: ShortText,
    pub target: Target,
    pub duration_secs: u64,
    pub reason: ShortText,
    /// [`RareText`]: one pointer wide, as most requests have neither.
    pub ticket: Option<RareText>,
    pub role: Option<RareText>,
    /// Distinct approvals needed.
    pub approvals_required: u32,
    /// Who may approve (besides root). A boxed slice, two words instead of a Vec's three: set
    /// whole (at submission, and when a reload reassigns it), never pushed to.
    pub approver_groups: Box<[String]>,
    /// What of the grant's sessions is recorded, fixed when it was asked for. Absent (off) in
    /// records older than recording.
    #[serde(default, skip_serializing_if = "Record::is_off")]
    pub record: Record,
    #[serde(with = "timestamp")]
    pub requested_at: DateTime<Utc>,
    pub phase: Phase,
    pub decisions: Vec<Decision>,
    pub sessions: Vec<Session>,
    pub failure: Option<RareText>,
    /// Set when taken through a break-glass role (absent in records older than roles).
    /// Boxed: rare, and every request in memory would otherwise carry its size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub break_glass: Option<Box<BreakGlass>>,
    /// For an SSH grant, what its holder had scheduled (crontab, at jobs, lingering) when its
    /// first session opened; set once, compared at the end. Absent until a session opens, and
    /// in records older than it. Boxed: most records have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jobs_at_start: Option<Box<UserJobs>>,
    /// Set when pam_jit asked for this at an SSH login that waits for the decision. Boxed:
    /// rare.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login: Option<Box<Login>>,
    /// Set on a grant this host enforces for a fleet request. Boxed: rare.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet: Option<Box<FleetPart>>,
    /// The audit log's `seq` of the last change to this record that was logged ahead of being
    /// stored (a request, a decision, a revocation...); 0 in records older than it. A change
    /// logged with a higher `seq` than the stored record holds was never stored: startup says
    /// so in the audit log ([`crate::core::unstored_change`]).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub audit_seq: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What a fleet grant was approved with, as read from the shared store: the request's exact
/// bytes and the approvals that counted. Kept in the local record, so a restarted jitd checks
/// them again against its own policy and allowed_signers, with no network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetPart {
    pub origin: String,
    /// The request record as stored (JSON text): what the approvals' hash is over.
    pub request: String,
    pub request_sha256: String,
    pub approvals: Vec<Signed>,
}

impl End {
    pub fn state(self) -> State {
        match self {
            End::Expired => State::Expired,
            End::Revoked => State::Revoked,
            End::Completed => State::Completed,
            End::Denied => State::Denied,
            End::Cancelled => State::Cancelled,
            End::TimedOut => State::TimedOut,
            End::Failed => State::Failed,
            End::Passed => State::Passed,
        }
    }
}

impl Request {
    pub fn state(&self) -> State {
        match self.phase {
            Phase::Pending { .. } => State::Pending,
            Phase::Active { .. } => State::Active,
            Phase::Ended { end, .. } => end.state(),
        }
    }

    pub fn kind(&self) -> GrantKind {
        self.target.kind()
    }

    pub fn command(&self) -> Option<&[String]> {
        match &self.target {
            Target::Sudo { command } => Some(command),
            Target::Ssh => None,
        }
    }

    pub fn window(&self) -> Option<Window> {
        match self.phase {
            Phase::Active { window, .. } => Some(window),
            Phase::Ended { window, .. } => window,
            Phase::Pending { .. } => None,
        }
    }

    /// When the scheduler must next look at this request, if ever.
    pub fn next_deadline(&self) -> Option<DateTime<Utc>> {
        match self.phase {
            Phase::Pending { until } => Some(until),
            Phase::Active { window, .. } => Some(window.expires_at),
            Phase::Ended { .. } => None,
        }
    }

    /// Distinct users whose approvals count so far (voided ones do not).
    pub fn approvers(&self) -> Vec<&str> {
        let mut seen: Vec<&str> = Vec::new();
        for d in &self.decisions {
            if d.action == Action::Approve && !d.voided && !seen.contains(&&*d.by) {
                seen.push(&d.by);
            }
        }
        seen
    }

    pub fn approvals_missing(&self) -> u32 {
        match self.phase {
            Phase::Pending { .. } => self
                .approvals_required
                .saturating_sub(self.approvers().len() as u32),
            _ => 0,
        }
    }

    pub fn extension(&self) -> Option<&Extension> {
        match &self.phase {
            Phase::Active { extension, .. } => extension.as_deref(),
            _ => None,
        }
    }

    /// When the request ended, if it is history: ended, and nothing left to do with it (a
    /// break-glass grant nobody has reviewed yet is not). History is kept for `retention`
    /// after this, then leaves memory and the state directory; the audit log keeps the trail.
    pub fn history_since(&self) -> Option<DateTime<Utc>> {
        match self.phase {
            Phase::Ended { at, .. } if !self.awaits_review() => Some(at),
            _ => None,
        }
    }

    /// A break-glass grant nobody has reviewed yet.
    pub fn awaits_review(&self) -> bool {
        self.break_glass
            .as_ref()
            .is_some_and(|b| b.review.is_none())
    }

    /// Drops spare capacity. Deserialising a list grows it in steps (one decision is stored in
    /// room for four, 216 bytes wasted), and jitd holds every record it loads.
    pub fn shrink_to_fit(&mut self) {
        self.decisions.shrink_to_fit();
        self.sessions.shrink_to_fit();
        if let Target::Sudo { command } = &mut self.target {
            command.shrink_to_fit();
        }
    }

    /// The command line as one display string, each argument quoted when needed.
    pub fn command_display(&self) -> String {
        match &self.target {
            Target::Ssh => "ssh".into(),
            Target::Sudo { command } => display_command(command),
        }
    }
}

/// Shell-style quoting for display only (never executed).
pub fn display_command(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if !a.is_empty()
                && a.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"/-_.,:=@+%".contains(&b))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// jitd holds every live record in memory (100,000 active grants: docs/benchmarks.md), so
    /// a field added to `Request` costs its size that many times: 280 bytes is a 288-byte
    /// malloc chunk, one more word a 304-byte one. Find room (a rare field in a box, a Vec set
    /// whole as a boxed slice) before raising this.
    #[test]
    fn a_request_in_memory_stays_within_its_budget() {
        assert!(
            std::mem::size_of::<Request>() <= 280,
            "{} bytes",
            std::mem::size_of::<Request>()
        );
    }

    #[test]
    fn ids_are_safe_for_sudoers_file_names() {
        for _ in 0..100 {
            let id = GrantId::random().unwrap();
            assert_eq!(id.as_str().len(), ID_LEN);
            assert!(GrantId::try_from(id.to_string()).is_ok());
        }
        for bad in [
            "../etc/passwd",
            "abc",
            "ABCDEFGHIJ",
            "abcde.ghij",
            "abcdefghi~",
        ] {
            assert!(GrantId::try_from(bad.to_string()).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_phase_reads_back_as_written_and_incomplete_ones_are_refused() {
        let t = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let window = Window {
            approved_at: t("2026-11-29T04:00:00Z"),
            expires_at: t("2026-11-29T05:00:00.25Z"),
        };
        let phases = [
            Phase::Pending {
                until: t("2026-11-29T04:30:00.123456Z"),
            },
            Phase::Active {
                window,
                extension: None,
            },
            Phase::Active {
                window,
                extension: Some(Box::new(Extension {
                    secs: 600,
                    asked_at: t("2026-11-29T04:50:00Z"),
                    approvals_required: 2,
                    approvers: vec!["bob".into()],
                })),
            },
            Phase::Ended {
                end: End::Revoked,
                at: t("2026-11-29T04:10:00Z"),
                window: Some(window),
            },
            Phase::Ended {
                end: End::Denied,
                at: t("2026-11-29T04:10:00Z"),
                window: None,
            },
        ];
        for phase in phases {
            let text = serde_json::to_string(&phase).unwrap();
            assert_eq!(
                serde_json::from_str::<Phase>(&text).unwrap(),
                phase,
                "{text}"
            );
        }
        for (text, why) in [
            (r#"{"phase":"active"}"#, "without `window`"),
            (r#"{"phase":"pending"}"#, "without `until`"),
            (r#"{"phase":"ended","end":"expired"}"#, "without `at`"),
            (r#"{"phase":"granted"}"#, "unknown variant"),
        ] {
            let err = serde_json::from_str::<Phase>(text).unwrap_err().to_string();
            assert!(err.contains(why), "{text}: {err}");
        }
    }

    #[test]
    fn sessions_recorded_before_their_process_facts_still_read() {
        let old = r#"{"pid":4242,"service":"sudo","user":"root","ruser":"alice","tty":"pts/3","rhost":null,"audit_session":7,"opened_at":"2026-11-29T04:00:00Z"}"#;
        let s: Session = serde_json::from_str(old).unwrap();
        assert_eq!(s.process, None);
        assert!(!serde_json::to_string(&s).unwrap().contains("process"));

        let with = Session {
            process: Some(SessionProcess {
                boot_id: "0d9e6a2c-4b1f-4f0e-9a57-2c1e8b7d6f10".into(),
                start_ticks: Some(123_456),
                registered_ticks: 123_470,
                adopted: true,
            }),
            ..s
        };
        let text = serde_json::to_string(&with).unwrap();
        assert_eq!(serde_json::from_str::<Session>(&text).unwrap(), with);
    }

    #[test]
    fn display_quotes_what_a_shell_would_split() {
        let argv = ["/bin/echo", "a b", "it's", "x"].map(String::from);
        assert_eq!(display_command(&argv), r#"/bin/echo 'a b' 'it'\''s' x"#);
    }
}
