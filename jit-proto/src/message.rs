//! Requests and responses. Every request names the protocol version; identity is never part
//! of a message: the daemon takes it from the socket's peer credentials.

use serde::{Deserialize, Serialize};

use crate::PROTOCOL_VERSION;

/// The kind of access a grant gives.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum GrantKind {
    /// Run one command line as root through sudo.
    Sudo,
    /// Log in to this host over SSH.
    Ssh,
}

impl GrantKind {
    pub fn as_str(self) -> &'static str {
        match self {
            GrantKind::Sudo => "sudo",
            GrantKind::Ssh => "ssh",
        }
    }
}

/// What a request asks for.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Target {
    /// One exact command line (absolute program path first) run as root via sudo.
    Sudo { command: Vec<String> },
    /// An SSH login to this host.
    Ssh,
}

impl Target {
    pub fn kind(&self) -> GrantKind {
        match self {
            Target::Sudo { .. } => GrantKind::Sudo,
            Target::Ssh => GrantKind::Ssh,
        }
    }
}

/// Lifecycle states. These exact names appear in `--json` output and operators' scripts.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Pending,
    Active,
    Expired,
    Revoked,
    Completed,
    Denied,
    Cancelled,
    TimedOut,
    /// Approved, but the host could not install the grant (for example visudo rejected it).
    Failed,
    /// Not a request: pam_jit let a user through without a grant (a member of the exempt
    /// group, or `fail=open` with jitd down). Recorded for review.
    Passed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Active => "active",
            State::Expired => "expired",
            State::Revoked => "revoked",
            State::Completed => "completed",
            State::Denied => "denied",
            State::Cancelled => "cancelled",
            State::TimedOut => "timed_out",
            State::Failed => "failed",
            State::Passed => "passed",
        }
    }

    /// A terminal state never changes again.
    pub fn is_terminal(self) -> bool {
        !matches!(self, State::Pending | State::Active)
    }
}

/// What a requester (or an approver, for `jitd grant`) asks for.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct NewRequest {
    pub target: Target,
    /// Requested window in seconds; `None` takes the policy's default.
    #[serde(default)]
    pub duration_secs: Option<u64>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub ticket: Option<String>,
    /// Role picked explicitly by the requester.
    #[serde(default)]
    pub role: Option<String>,
    /// Fleet mode: globs on host names (`db-*`) the request is for, instead of this host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<Vec<String>>,
}

/// What the PAM module knows about the login or sudo being checked. TTY and RHOST are hints
/// for the record, never identity.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct PamContext {
    /// PAM_USER.
    pub user: String,
    pub kind: GrantKind,
    pub service: String,
    #[serde(default)]
    pub tty: Option<String>,
    #[serde(default)]
    pub rhost: Option<String>,
    #[serde(default)]
    pub ruser: Option<String>,
}

/// How pam_jit let a user through without asking jitd for a grant.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PassKind {
    /// A member of `exempt_group` (break-glass).
    Exempt,
    /// `fail=open`, jitd unreachable.
    FailOpen,
}

/// A pass pam_jit reports (at once when it can, else jitd reads its log line back later).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct PassReport {
    #[serde(flatten)]
    pub pam: PamContext,
    pub how: PassKind,
    /// Random, also in the pass's log line, so the two reports of one pass are recorded once.
    pub key: String,
    /// Under sudo, sudo's own command line (argv, from /proc/self/cmdline of the process
    /// pam_jit runs in), bounded; the record says what ran without a grant.
    #[serde(default)]
    pub command: Option<Vec<String>>,
}

/// A session the PAM module opened, registered so jitd can end it with its grant.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    #[serde(flatten)]
    pub pam: PamContext,
    /// The process that called pam_open_session (sshd's session child, or sudo).
    pub pid: u32,
    /// The kernel audit session id from /proc/self/sessionid, when set.
    #[serde(default)]
    pub audit_session: Option<u32>,
}

/// An SSH login without a grant that asks for one and waits for the decision (pam_jit's
/// `wait=`). The requester is `pam.user`, named by sshd (root), never by the message's sender.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct LoginWait {
    #[serde(flatten)]
    pub pam: PamContext,
    /// `None`: the user has not been asked; jitd answers [`Response::ReasonWanted`] instead of
    /// creating the request when the role asks for one. `Some("")`: asked (or unable to be
    /// asked) and nothing given: the default, `login from <rhost>`.
    #[serde(default)]
    pub reason: Option<String>,
    /// How long the login waits for the decision; the request times out then.
    pub wait_secs: u64,
}

/// Why a waiting login stopped waiting before a decision.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LoginEnd {
    /// The client disconnected: the request is `cancelled`.
    ClientGone,
    /// The login's own wait ran out: the request is `timed_out`.
    TimedOut,
}

/// Longest `wait_secs` a login may ask for: sshd's LoginGraceTime (default 2 minutes) ends a
/// login long before, and an open connection per waiting login is not free.
pub const MAX_LOGIN_WAIT_SECS: u64 = 600;

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// PAM account check (root only): does `user` hold an active grant of `kind`?
    Check(PamContext),
    /// PAM session open (root only).
    OpenSession(SessionInfo),
    /// PAM session close (root only).
    CloseSession(SessionInfo),
    /// A user asks for access for themselves.
    Submit(NewRequest),
    /// An approver grants access to `user` directly.
    Grant {
        user: String,
        request: NewRequest,
    },
    Approve {
        id: String,
        #[serde(default)]
        comment: Option<String>,
        /// The `approval_token` of what the approver was shown: refused if what is up for
        /// decision has changed since (e.g. an extension was asked for meanwhile).
        #[serde(default)]
        expect: Option<String>,
    },
    Deny {
        id: String,
        reason: String,
    },
    Revoke {
        id: String,
        reason: String,
    },
    /// The requester withdraws a pending request.
    Cancel {
        id: String,
    },
    /// The requester's task is finished: end the active grant now.
    Done {
        id: String,
    },
    Show {
        id: String,
    },
    List {
        #[serde(default)]
        all: bool,
        /// Only break-glass grants nobody has reviewed yet (any state).
        #[serde(default)]
        unreviewed: bool,
        /// Which hundred, newest first: 1 (the default) is the newest hundred, 2 the hundred
        /// before them, and so on.
        #[serde(default)]
        page: Option<u32>,
    },
    /// The requester asks for more time on an active grant; the role's approval rules apply
    /// again and the total never exceeds the role's maximum.
    Extend {
        id: String,
        duration_secs: u64,
    },
    /// An approver marks a break-glass grant reviewed.
    Review {
        id: String,
        comment: String,
    },
    /// Root: reload the policy from the configuration file (as SIGHUP does).
    Reload,
    /// Root (pam_jit): a user passed without a grant. Sent without waiting for the answer.
    Passed(PassReport),
    /// Root or an approver: counters and gauges in Prometheus' text exposition format.
    Metrics,
    /// Root or an auditor: what the recorded sessions of grant `id` printed (session
    /// `session`, counted from 1, or every one).
    Replay {
        id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session: Option<u32>,
    },
    /// Root (pam_jit): an SSH login without a grant asks for one on the user's behalf and will
    /// wait for the decision. Answered with the request (pending, or active if approved at
    /// once), or [`Response::ReasonWanted`].
    LoginWait(LoginWait),
    /// Root (pam_jit): how the request a login waits on stands now. One short exchange per
    /// poll, so a waiting login holds no connection of jitd's.
    LoginStatus {
        id: String,
    },
    /// Root (pam_jit): the login waiting on `id` stopped waiting; a still pending request ends
    /// with it (`cancelled` or `timed_out`).
    LoginAbandon {
        id: String,
        why: LoginEnd,
    },
    /// Fleet mode: an approver's signed approval of a fleet request (`jitd approve` signs in
    /// the approver's own process, with their own SSH key; jitd checks the signature and
    /// writes it to the store). The approver is the caller, from peer credentials.
    FleetApprove {
        id: String,
        /// SHA-256 (hex) of the request bytes the approver was shown.
        request_sha256: String,
        /// RFC 3339, whole seconds: the time the signature names.
        approved_at: String,
        /// The armoured SSHSIG.
        signature: String,
    },
    /// Fleet mode: the store's members, this host's sync position, the hosts alive.
    FleetStatus,
    /// Fleet mode (root): removes from the shared store the requests over for longer than
    /// `older_than_secs` (default 30 days), with their approvals, ends and acknowledgements.
    FleetGc {
        #[serde(default)]
        older_than_secs: Option<u64>,
        /// Says what would go; removes nothing.
        #[serde(default)]
        dry_run: bool,
    },
}

/// The envelope of every request.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ClientMessage {
    pub v: u32,
    #[serde(flatten)]
    pub request: Request,
}

impl ClientMessage {
    pub fn new(request: Request) -> Self {
        ClientMessage {
            v: PROTOCOL_VERSION,
            request,
        }
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame or document could not be understood.
    BadRequest,
    UnsupportedVersion,
    /// The caller may not do this.
    Forbidden,
    NotFound,
    /// The request is not in a state that allows this.
    InvalidState,
    /// Policy refuses the request.
    PolicyDenied,
    /// Too many connections; try again.
    Busy,
    /// The daemon cannot record the change (audit log or store unwritable): nothing was done.
    Unavailable,
    Internal,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Response {
    /// Check: the user holds this active grant.
    Allowed {
        grant_id: String,
    },
    /// Check: no active grant of that kind.
    Denied {
        reason: String,
    },
    /// OpenSession: the covering grant, if any (an exempt user has none).
    SessionRegistered {
        #[serde(default)]
        grant_id: Option<String>,
        /// An SSH grant recorded with tlog: the settings of the session's recorder
        /// (`TLOG_REC_SESSION_CONF_TEXT`), which pam_jit must put into the session's
        /// environment or refuse the session.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tlog_conf: Option<String>,
    },
    /// Boxed: a full view is far larger than the other answers.
    Request {
        request: Box<RequestView>,
    },
    Requests {
        requests: Vec<RequestView>,
        /// Older requests left out so that the answer fits one frame.
        #[serde(default, skip_serializing_if = "is_zero")]
        omitted: usize,
    },
    /// Reload: the new policy is in force.
    Reloaded {
        message: String,
    },
    /// Metrics: Prometheus text exposition format.
    Metrics {
        text: String,
    },
    /// FleetStatus.
    FleetStatus {
        fleet: Box<FleetStatusView>,
    },
    /// FleetGc.
    FleetGc {
        gc: Box<FleetGcView>,
    },
    /// Replay: the sessions' output as `sudoreplay` plays it, cut to fit one frame.
    Replay {
        text: String,
        /// The output was longer than a frame holds: root sees it whole with `jitd replay`.
        #[serde(default)]
        truncated: bool,
    },
    /// LoginWait without a reason: the role asks for one, so the module asks the user (if it
    /// can) and sends the request again. Nothing was recorded.
    ReasonWanted {
        message: String,
    },
    Error {
        code: ErrorCode,
        message: String,
    },
}

/// One decision or lifecycle step on a request.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct DecisionView {
    /// approve, deny, cancel, revoke, done, expire, time_out, fail.
    pub action: String,
    /// Who: a user name, `jitd` for automatic steps, or `rule:NAME` for an automatic approval.
    pub by: String,
    pub at: String,
    #[serde(default)]
    pub note: Option<String>,
    /// An approval that no longer counts: its approver could no longer decide on the request
    /// when it was checked again (a policy reload, or a later approval).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub voided: bool,
}

/// A session registered by pam_jit under a grant.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct SessionView {
    pub pid: u32,
    pub service: String,
    pub user: String,
    #[serde(default)]
    pub ruser: Option<String>,
    #[serde(default)]
    pub tty: Option<String>,
    #[serde(default)]
    pub rhost: Option<String>,
    #[serde(default)]
    pub audit_session: Option<u32>,
    pub opened_at: String,
}

/// A request as shown to CLIs and in `--json` output. Timestamps are RFC 3339 UTC.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct RequestView {
    pub id: String,
    pub user: String,
    pub uid: u32,
    pub state: State,
    /// The exact command line for a sudo grant, `null` for SSH.
    pub command: Option<Vec<String>>,
    pub ssh: bool,
    pub reason: String,
    pub ticket: Option<String>,
    pub role: Option<String>,
    pub duration_secs: u64,
    pub requested_at: String,
    /// When a pending request times out.
    pub pending_until: Option<String>,
    pub approved_at: Option<String>,
    pub expires_at: Option<String>,
    pub ended_at: Option<String>,
    /// Approvals still needed while pending.
    pub approvals_missing: u32,
    /// Who may approve: group names, or `root` alone.
    pub approver_groups: Vec<String>,
    pub decisions: Vec<DecisionView>,
    pub sessions: Vec<SessionView>,
    /// Why the grant could not be installed (state `failed`).
    pub failure: Option<String>,
    /// Distinct approvals the request needs in all.
    #[serde(default)]
    pub approvals_required: u32,
    /// More time asked for on this active grant, waiting for approval.
    #[serde(default)]
    pub extension: Option<ExtensionView>,
    /// Taken through a break-glass role, without approval.
    #[serde(default)]
    pub break_glass: bool,
    /// The review of a break-glass grant, once an approver made it.
    #[serde(default)]
    pub review: Option<ReviewView>,
    /// True in a list when the command or the reason was shortened to keep the answer within
    /// one frame; `jitd show ID` has them whole.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub clipped: bool,
    /// Names what is up for decision (the request as asked, or its pending extension); pass it
    /// to `jitd approve --expect` to approve exactly that.
    #[serde(default)]
    pub approval_token: String,
    /// Fleet mode: where the request came from and what approvers sign.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet: Option<FleetView>,
    /// Fleet mode: what each host did with the grant (`jitd show`; empty in lists).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<HostAckView>,
}

/// A fleet request's own part.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct FleetView {
    /// The host it was asked on.
    pub origin: String,
    /// Globs on host names.
    pub hosts: Vec<String>,
    /// SHA-256 (hex) of the request record: what an approval signs.
    pub request_sha256: String,
    /// Signed approvals in the store, by approver name (each host checks them itself).
    pub signed_by: Vec<String>,
    /// Whether this host is one of the request's hosts.
    pub for_this_host: bool,
    /// Why this host does not (or no longer) enforce it, when it is one of its hosts.
    #[serde(default)]
    pub refused: Option<String>,
    /// This host's allowed_signers file: `jitd approve` offers the agent keys listed there
    /// for the approver.
    #[serde(default)]
    pub allowed_signers: Option<String>,
}

/// One host's acknowledgement of a fleet grant.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct HostAckView {
    pub host: String,
    /// installed, refused, failed or removed.
    pub state: String,
    #[serde(default)]
    pub why: Option<String>,
    pub at: String,
}

/// `jitd fleet gc`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct FleetGcView {
    pub dry_run: bool,
    /// Requests over before this (RFC 3339) went (or would go).
    pub over_before: String,
    /// How many requests were removed (or would be).
    pub removed_count: usize,
    /// The oldest of them, up to 100 (the answer must fit one frame; the audit log names
    /// every one).
    pub removed: Vec<FleetGcItem>,
    /// Approvals and ends whose request the store no longer holds, removed with them.
    pub orphans: usize,
    /// Keys deleted under `g/`, and acknowledgements under `a/` (0 in a dry run).
    pub deleted_keys: usize,
    pub deleted_acks: u64,
    /// Requests that stay, and request records that cannot be read (kept).
    pub kept: usize,
    pub unreadable: usize,
    /// Requests over for long enough that this run left to the next (it removes the oldest
    /// 10,000 at most).
    #[serde(default)]
    pub more: usize,
    /// Set when the store failed part way: what is above went; run it again for the rest.
    #[serde(default)]
    pub error: Option<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct FleetGcItem {
    pub id: String,
    pub origin: String,
    /// RFC 3339: the last moment anything it granted could last.
    pub over_at: String,
}

/// `jitd fleet status`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct FleetStatusView {
    pub host_name: String,
    pub members: Vec<MemberView>,
    /// Connected to the store and watching.
    pub watching: bool,
    /// The store revision this host has applied.
    pub applied_revision: i64,
    /// The store's revision as last heard (a member's answer or a progress notification).
    pub store_revision: i64,
    /// Seconds since this host last heard from the store (`null`: never).
    pub last_heard_secs: Option<u64>,
    pub last_error: Option<String>,
    /// Hosts whose presence key is in the store (alive within the last ~10 s).
    pub hosts_alive: Vec<String>,
    /// Fleet grants this host enforces now.
    pub enforcing: u32,
    /// Seconds the store has gone unheard (`null` while it is heard).
    #[serde(default)]
    pub offline_secs: Option<u64>,
    /// `[fleet] offline_grace`, and the roles whose fleet grants end once the store has been
    /// away that long (`fleet_offline = "end"`).
    #[serde(default)]
    pub offline_grace_secs: u64,
    #[serde(default)]
    pub offline_ending_roles: Vec<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct MemberView {
    pub endpoint: String,
    pub reachable: bool,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub revision: Option<i64>,
    #[serde(default)]
    pub error: Option<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ExtensionView {
    pub duration_secs: u64,
    pub asked_at: String,
    pub approvals_missing: u32,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ReviewView {
    pub by: String,
    pub at: String,
    pub comment: String,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_carry_the_version_and_a_flat_op_tag() {
        let msg = ClientMessage::new(Request::Check(PamContext {
            user: "alice".into(),
            kind: GrantKind::Sudo,
            service: "sudo".into(),
            tty: None,
            rhost: None,
            ruser: None,
        }));
        let json = serde_json::to_value(&msg).unwrap();
        assert_eq!(json["v"], PROTOCOL_VERSION);
        assert_eq!(json["op"], "check");
        assert_eq!(json["kind"], "sudo");
        let back: ClientMessage = serde_json::from_value(json).unwrap();
        assert_eq!(back, msg);
    }

    #[test]
    fn login_requests_are_flat_and_name_their_parts() {
        let msg = ClientMessage::new(Request::LoginWait(LoginWait {
            pam: PamContext {
                user: "alice".into(),
                kind: GrantKind::Ssh,
                service: "sshd".into(),
                tty: Some("ssh".into()),
                rhost: Some("10.0.0.2".into()),
                ruser: None,
            },
            reason: None,
            wait_secs: 120,
        }));
        let json = serde_json::to_value(&msg).unwrap();
        assert_eq!(json["op"], "login_wait");
        assert_eq!(json["user"], "alice");
        assert_eq!(json["wait_secs"], 120);
        assert_eq!(serde_json::from_value::<ClientMessage>(json).unwrap(), msg);
        let end = serde_json::to_value(ClientMessage::new(Request::LoginAbandon {
            id: "abcdefghij".into(),
            why: LoginEnd::ClientGone,
        }))
        .unwrap();
        assert_eq!(end["op"], "login_abandon");
        assert_eq!(end["why"], "client_gone");
    }

    #[test]
    fn state_names_are_the_documented_ones() {
        for (s, name) in [
            (State::Pending, "pending"),
            (State::TimedOut, "timed_out"),
            (State::Completed, "completed"),
        ] {
            assert_eq!(serde_json::to_value(s).unwrap(), name);
            assert_eq!(s.as_str(), name);
        }
    }
}
