//! The records fleet mode keeps in the shared store, and their keys. Everything read from the
//! store is untrusted: parsed with bounds, and a record that adds access counts only through
//! signatures over its exact bytes (`verdict`), so there is no JSON canonicalisation to get
//! wrong: hosts hash the bytes they read and never re-serialise them.
//!
//! Key layout under `<prefix>/v1/` (docs/fleet.md):
//!
//! ```text
//! g/req/<origin>/<id>      the request, written once by the host it was asked on
//! g/ok/<approver>/<id>     one approver's signed approval
//! g/end/<writer>/<id>      an end (denied, revoked, cancelled, completed); unsigned
//! a/<id>/<host>            a host's acknowledgement (installed, refused, failed, removed)
//! h/<host>/alive           presence, on the host's lease
//! ```
//!
//! Hosts watch `g/` only, so a hundred acknowledgements do not become a hundred times a
//! hundred watch events.

use chrono::{DateTime, Utc};
use jit_proto::Target;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::host_pattern::HostPattern;
use crate::core::model::{End, GrantId};
use crate::core::timestamp::{self, rfc3339};

/// Largest request record a host reads: a command line of a few kilobytes, a reason, globs.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// Largest approval, end or acknowledgement record (an armoured signature is ~300 bytes; an
/// RSA-4096 one ~800).
pub const MAX_SMALL_RECORD_BYTES: usize = 8 * 1024;
/// How far ahead of this host's clock a signed approval time may lie (clock skew).
pub const MAX_CLOCK_AHEAD_SECS: i64 = 60;
/// The only version of the records this jitd writes and reads.
pub const VERSION: u32 = 1;

/// A request for other hosts, exactly as its origin wrote it. Approvers sign its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetRequest {
    pub v: u32,
    pub id: GrantId,
    /// The host it was asked on (its `host_name`).
    pub origin: String,
    /// The requester's user name on the origin, from peer credentials; each target host
    /// resolves the name itself.
    pub user: String,
    pub target: Target,
    /// Globs on host names (`db-*`).
    pub hosts: Vec<HostPattern>,
    pub role: String,
    pub reason: String,
    pub ticket: Option<String>,
    pub duration_secs: u64,
    #[serde(with = "timestamp")]
    pub requested_at: DateTime<Utc>,
    /// After this, approvals no longer count: the request has timed out.
    #[serde(with = "timestamp")]
    pub pending_until: DateTime<Utc>,
}

/// One approver's approval of one request (the key names the approver).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRecord {
    /// SHA-256 (hex) of the request bytes the approver was shown.
    pub request_sha256: String,
    #[serde(with = "timestamp")]
    pub approved_at: DateTime<Utc>,
    /// OpenSSH SSHSIG (`ssh-keygen -Y sign -n jit-grant@v1`) of [`approval_message`].
    pub sig: String,
}

/// How a fleet request ended, as any host or approver may say: ends only take access away,
/// so they are accepted unsigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FleetEnd {
    Denied,
    Revoked,
    Cancelled,
    Completed,
}

impl FleetEnd {
    pub fn end(self) -> End {
        match self {
            FleetEnd::Denied => End::Denied,
            FleetEnd::Revoked => End::Revoked,
            FleetEnd::Cancelled => End::Cancelled,
            FleetEnd::Completed => End::Completed,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndRecord {
    pub end: FleetEnd,
    /// Who ended it (a user name on the writing host).
    pub by: String,
    #[serde(with = "timestamp")]
    pub at: DateTime<Utc>,
    #[serde(default)]
    pub note: Option<String>,
}

/// What a host did with a fleet grant, for `jitd show` on any host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AckState {
    Installed,
    Refused,
    Failed,
    Removed,
}

impl AckState {
    pub fn as_str(self) -> &'static str {
        match self {
            AckState::Installed => "installed",
            AckState::Refused => "refused",
            AckState::Failed => "failed",
            AckState::Removed => "removed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckRecord {
    pub state: AckState,
    #[serde(default)]
    pub why: Option<String>,
    #[serde(with = "timestamp")]
    pub at: DateTime<Utc>,
}

/// The text an approver signs: bound to the request's bytes, its id, the approver and the time,
/// so a signature copied to another request, another approver's key or another time is void.
pub fn approval_message(
    request_sha256: &str,
    id: &GrantId,
    approver: &str,
    approved_at: DateTime<Utc>,
) -> String {
    format!(
        "jit-approval v1\nrequest_sha256={request_sha256}\nid={id}\napprover={approver}\napproved_at={}\n",
        rfc3339(approved_at)
    )
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A request read from the store: its parsed form and the hash of the exact bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRequest {
    pub request: FleetRequest,
    pub bytes: Vec<u8>,
    pub sha256: String,
}

/// Reads a request record. `origin` and `id` come from its key: a record whose body names
/// another origin or id is refused (a copy under another key).
pub fn parse_request(origin: &str, id: &GrantId, bytes: &[u8]) -> Result<StoredRequest, String> {
    if bytes.len() > MAX_REQUEST_BYTES {
        return Err(format!(
            "request record of {} bytes (at most {MAX_REQUEST_BYTES})",
            bytes.len()
        ));
    }
    let request: FleetRequest =
        serde_json::from_slice(bytes).map_err(|e| format!("unreadable request record: {e}"))?;
    if request.v != VERSION {
        return Err(format!(
            "request record version {} (this jitd reads {VERSION})",
            request.v
        ));
    }
    if request.origin != origin || request.id != *id {
        return Err(format!(
            "request record under {origin}/{id} names {}/{}",
            request.origin, request.id
        ));
    }
    valid_name(&request.user).map_err(|e| format!("user {e}"))?;
    if request.hosts.is_empty() || request.hosts.len() > 64 {
        return Err("a request names 1 to 64 host patterns".into());
    }
    if request.pending_until <= request.requested_at || request.duration_secs == 0 {
        return Err("a request with an empty window".into());
    }
    if let Target::Sudo { command } = &request.target {
        if command.is_empty() || !command[0].starts_with('/') {
            return Err("a sudo request's command must start with an absolute path".into());
        }
    }
    Ok(StoredRequest {
        sha256: sha256_hex(bytes),
        request,
        bytes: bytes.to_vec(),
    })
}

pub fn parse_approval(bytes: &[u8]) -> Result<ApprovalRecord, String> {
    small(bytes)?;
    serde_json::from_slice(bytes).map_err(|e| format!("unreadable approval record: {e}"))
}

pub fn parse_end(bytes: &[u8]) -> Result<EndRecord, String> {
    small(bytes)?;
    serde_json::from_slice(bytes).map_err(|e| format!("unreadable end record: {e}"))
}

pub fn parse_ack(bytes: &[u8]) -> Result<AckRecord, String> {
    small(bytes)?;
    serde_json::from_slice(bytes).map_err(|e| format!("unreadable acknowledgement: {e}"))
}

fn small(bytes: &[u8]) -> Result<(), String> {
    if bytes.len() > MAX_SMALL_RECORD_BYTES {
        return Err(format!(
            "record of {} bytes (at most {MAX_SMALL_RECORD_BYTES})",
            bytes.len()
        ));
    }
    Ok(())
}

/// A user, host or approver name as it may appear in a key: no `/` (it would move the key into
/// another writer's prefix), nothing a log or a sudoers file would read specially.
pub fn valid_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with(['-', '.'])
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a valid name (1-64 of a-z A-Z 0-9 - _ . @, not starting with - or .)"
        ))
    }
}

/// What a key under `g/` is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GKey {
    Request { origin: String, id: GrantId },
    Approval { approver: String, id: GrantId },
    End { writer: String, id: GrantId },
}

impl GKey {
    pub fn id(&self) -> &GrantId {
        match self {
            GKey::Request { id, .. } | GKey::Approval { id, .. } | GKey::End { id, .. } => id,
        }
    }
}

/// The store's key names, under one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    /// `<prefix>/v1/`
    root: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Keys {
        Keys {
            root: format!("{}/v1/", prefix.trim_end_matches('/')),
        }
    }

    /// What hosts watch.
    pub fn grants(&self) -> String {
        format!("{}g/", self.root)
    }

    pub fn request(&self, origin: &str, id: &GrantId) -> String {
        format!("{}g/req/{origin}/{id}", self.root)
    }

    pub fn approval(&self, approver: &str, id: &GrantId) -> String {
        format!("{}g/ok/{approver}/{id}", self.root)
    }

    pub fn end(&self, writer: &str, id: &GrantId) -> String {
        format!("{}g/end/{writer}/{id}", self.root)
    }

    /// Every host's acknowledgement of `id`.
    pub fn acks_of(&self, id: &GrantId) -> String {
        format!("{}a/{id}/", self.root)
    }

    pub fn ack(&self, id: &GrantId, host: &str) -> String {
        format!("{}a/{id}/{host}", self.root)
    }

    /// Every host's presence.
    pub fn hosts(&self) -> String {
        format!("{}h/", self.root)
    }

    pub fn alive(&self, host: &str) -> String {
        format!("{}h/{host}/alive", self.root)
    }

    /// Reads a key under [`Keys::grants`]; `None` for anything else (ignored, never fatal: a
    /// newer jitd may write kinds this one does not know).
    pub fn parse_g(&self, key: &[u8]) -> Option<GKey> {
        let key = std::str::from_utf8(key).ok()?;
        let rest = key.strip_prefix(&self.grants())?;
        let mut parts = rest.split('/');
        let (kind, who, id) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || valid_name(who).is_err() {
            return None;
        }
        let id = GrantId::try_from(id.to_string()).ok()?;
        let who = who.to_string();
        match kind {
            "req" => Some(GKey::Request { origin: who, id }),
            "ok" => Some(GKey::Approval { approver: who, id }),
            "end" => Some(GKey::End { writer: who, id }),
            _ => None,
        }
    }

    /// The host named by an acknowledgement key under [`Keys::acks_of`].
    pub fn ack_host<'k>(&self, id: &GrantId, key: &'k [u8]) -> Option<&'k str> {
        let key = std::str::from_utf8(key).ok()?;
        let host = key.strip_prefix(&self.acks_of(id))?;
        valid_name(host).ok().map(|_| host)
    }

    /// The host named by a presence key.
    pub fn alive_host<'k>(&self, key: &'k [u8]) -> Option<&'k str> {
        let key = std::str::from_utf8(key).ok()?;
        let host = key.strip_prefix(&self.hosts())?.strip_suffix("/alive")?;
        valid_name(host).ok().map(|_| host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> GrantId {
        GrantId::try_from(s.to_string()).unwrap()
    }

    fn request_bytes(origin: &str, id: &str) -> Vec<u8> {
        format!(
            r#"{{"v":1,"id":"{id}","origin":"{origin}","user":"alice","target":{{"kind":"ssh"}},"hosts":["db-*"],"role":"db","reason":"r","ticket":null,"duration_secs":600,"requested_at":"2026-11-30T04:00:00Z","pending_until":"2026-11-30T05:00:00Z"}}"#
        )
        .into_bytes()
    }

    #[test]
    fn a_request_copied_under_another_key_is_refused() {
        let b = request_bytes("web-1", "aaaaaaaaaa");
        assert!(parse_request("web-1", &id("aaaaaaaaaa"), &b).is_ok());
        let e = parse_request("web-2", &id("aaaaaaaaaa"), &b).unwrap_err();
        assert!(e.contains("names web-1/aaaaaaaaaa"), "{e}");
        assert!(parse_request("web-1", &id("bbbbbbbbbb"), &b).is_err());
    }

    #[test]
    fn unknown_fields_and_huge_records_are_refused() {
        let mut b = request_bytes("web-1", "aaaaaaaaaa");
        b.pop();
        b.extend_from_slice(br#","sudo_options":"NOPASSWD"}"#);
        assert!(parse_request("web-1", &id("aaaaaaaaaa"), &b).is_err());
        let huge = vec![b' '; MAX_REQUEST_BYTES + 1];
        assert!(parse_request("web-1", &id("aaaaaaaaaa"), &huge)
            .unwrap_err()
            .contains("at most"));
        assert!(parse_approval(&vec![b' '; MAX_SMALL_RECORD_BYTES + 1]).is_err());
    }

    #[test]
    fn the_hash_is_of_the_bytes_as_stored() {
        let b = request_bytes("web-1", "aaaaaaaaaa");
        let r = parse_request("web-1", &id("aaaaaaaaaa"), &b).unwrap();
        let spaced = String::from_utf8(b.clone()).unwrap().replace(",\"", ", \"");
        let r2 = parse_request("web-1", &id("aaaaaaaaaa"), spaced.as_bytes()).unwrap();
        assert_eq!(r.request, r2.request);
        assert_ne!(
            r.sha256, r2.sha256,
            "the same fields in other bytes are another request"
        );
    }

    #[test]
    fn keys_cannot_name_another_writers_prefix() {
        let k = Keys::new("/jit");
        assert_eq!(k.grants(), "/jit/v1/g/");
        assert_eq!(
            k.parse_g(b"/jit/v1/g/ok/bob/aaaaaaaaaa"),
            Some(GKey::Approval {
                approver: "bob".into(),
                id: id("aaaaaaaaaa")
            })
        );
        for bad in [
            &b"/jit/v1/g/ok/bob/x/aaaaaaaaaa"[..],
            b"/jit/v1/g/ok/../aaaaaaaaaa",
            b"/jit/v1/g/ok/bob/AAAAAAAAAA",
            b"/jit/v1/g/zz/bob/aaaaaaaaaa",
            b"/jit/v1/g/ok//aaaaaaaaaa",
            b"/jitx/v1/g/ok/bob/aaaaaaaaaa",
        ] {
            assert_eq!(k.parse_g(bad), None, "{}", String::from_utf8_lossy(bad));
        }
        assert_eq!(k.alive_host(b"/jit/v1/h/db-1/alive"), Some("db-1"));
        assert_eq!(
            k.ack_host(&id("aaaaaaaaaa"), b"/jit/v1/a/aaaaaaaaaa/db-2"),
            Some("db-2")
        );
    }

    #[test]
    fn the_signed_message_binds_request_id_approver_and_time() {
        let t = "2026-11-30T04:01:00Z".parse().unwrap();
        let m = approval_message("ab12", &id("aaaaaaaaaa"), "bob", t);
        assert_eq!(
            m,
            "jit-approval v1\nrequest_sha256=ab12\nid=aaaaaaaaaa\napprover=bob\napproved_at=2026-11-30T04:01:00Z\n"
        );
    }
}
