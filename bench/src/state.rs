//! Writes a jitd state directory directly: many active grants as `requests/<id>.json` (the
//! serde JSON of jitd's `core::model::Request`) and an audit log with a valid hash chain plus
//! its `audit.head`, including the approval of every grant (jitd sets aside, at startup, an
//! active grant the audit log has no approval for). Creating 100,000 grants through the CLI
//! would take many minutes (each is fsync'ed and audited); jitd loads these files exactly as it
//! loads its own.

use std::fs;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;
use sha2::{Digest, Sha256};

/// One active grant to write.
pub struct Grant {
    pub id: String,
    pub user: String,
    pub uid: u32,
    /// The sudo command line; `None` for an SSH grant (no drop-in).
    pub command: Option<Vec<String>>,
    pub approved_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A valid, unique request id for grant number `n` (10 characters of `[a-z0-9]`).
pub fn id(prefix: char, n: usize) -> String {
    let mut digits = Vec::new();
    let mut v = n;
    loop {
        digits.push(b"0123456789abcdefghijklmnopqrstuvwxyz"[v % 36] as char);
        v /= 36;
        if v == 0 {
            break;
        }
    }
    let body: String = digits.iter().rev().collect();
    format!("{prefix}{body:0>9}")
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// The JSON jitd stores for an active grant created by `jitd grant` as root.
pub fn request_json(g: &Grant) -> serde_json::Value {
    let target = match &g.command {
        Some(cmd) => json!({ "kind": "sudo", "command": cmd }),
        None => json!({ "kind": "ssh" }),
    };
    json!({
        "id": g.id,
        "uid": g.uid,
        "user": g.user,
        "target": target,
        "duration_secs": (g.expires_at - g.approved_at).num_seconds().max(1),
        "reason": "benchmark",
        "ticket": null,
        "role": null,
        "approvals_required": 1,
        "approver_groups": [],
        "requested_at": time(g.approved_at),
        "phase": {
            "phase": "active",
            "window": { "approved_at": time(g.approved_at), "expires_at": time(g.expires_at) }
        },
        "decisions": [{
            "action": "approve", "by": "root", "by_uid": 0,
            "at": time(g.approved_at), "note": "granted directly"
        }],
        "sessions": [],
        "failure": null
    })
}

pub fn write_requests(state_dir: &Path, grants: impl IntoIterator<Item = Grant>) -> io::Result<()> {
    let dir = state_dir.join("requests");
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)?;
    for g in grants {
        let bytes = serde_json::to_vec_pretty(&request_json(&g))?;
        fs::write(dir.join(format!("{}.json", g.id)), bytes)?;
    }
    Ok(())
}

/// Writes `n` requests that expired long ago (between `oldest` and 30 days before `newest`) as
/// jitd files its history, `requests/ended/<day>/<id>.json`: what a busy host accumulates over
/// a year, all of it past the default `retention`.
pub fn write_history(
    state_dir: &Path,
    n: usize,
    oldest: DateTime<Utc>,
    newest: DateTime<Utc>,
) -> io::Result<()> {
    let ended = state_dir.join("requests").join("ended");
    let span = (newest - oldest).num_seconds().max(1);
    let mut made = std::collections::HashSet::new();
    for i in 0..n {
        let at = oldest + chrono::Duration::seconds((i as i64 * 7919) % span);
        let approved = at - chrono::Duration::minutes(15);
        let mut record = request_json(&Grant {
            id: id('h', i),
            user: format!("bh{:05}", i % 50_000),
            uid: 200_000 + (i % 50_000) as u32,
            command: Some(vec![
                "/usr/bin/systemctl".into(),
                "restart".into(),
                "nginx".into(),
            ]),
            approved_at: approved,
            expires_at: at,
        });
        record["phase"] = json!({
            "phase": "ended", "end": "expired", "at": time(at),
            "window": { "approved_at": time(approved), "expires_at": time(at) }
        });
        let day = ended.join(at.format("%Y-%m-%d").to_string());
        if made.insert(day.clone()) {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&day)?;
        }
        fs::write(
            day.join(format!("{}.json", id('h', i))),
            serde_json::to_vec_pretty(&record)?,
        )?;
    }
    Ok(())
}

fn line_hash(line: &str) -> String {
    Sha256::digest(line.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Appends to the audit log in `state_dir` (a new one if there is none) the `approved` record
/// jitd writes when it opens each grant's window, continuing the chain from `audit.head`.
pub fn append_approvals<'a>(
    state_dir: &Path,
    grants: impl IntoIterator<Item = &'a Grant>,
) -> io::Result<()> {
    let head_path = state_dir.join("audit.head");
    let (mut seq, mut prev) = match fs::read_to_string(&head_path) {
        Ok(head) => {
            let (seq, hash) = head
                .trim_end()
                .split_once(' ')
                .ok_or_else(|| io::Error::other("audit.head is malformed"))?;
            (
                seq.parse::<u64>().map_err(io::Error::other)?,
                hash.to_string(),
            )
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => (0, "0".repeat(64)),
        Err(e) => return Err(e),
    };
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(state_dir.join("audit.log"))?;
    let mut out = BufWriter::with_capacity(1 << 20, log);
    for g in grants {
        seq += 1;
        let command = match &g.command {
            Some(argv) => argv.join(" "),
            None => "ssh".into(),
        };
        write_approval(
            &mut out,
            seq,
            &mut prev,
            g.approved_at,
            &g.id,
            &g.user,
            &command,
            g.expires_at,
        )?;
    }
    out.flush()?;
    fs::write(head_path, format!("{seq:020} {prev}\n"))
}

/// One `approved` record in jitd's audit-log form, chained to `prev`: writes the line and
/// moves `prev` to its hash.
#[allow(clippy::too_many_arguments)]
fn write_approval(
    out: &mut impl Write,
    seq: u64,
    prev: &mut String,
    at: DateTime<Utc>,
    id: &str,
    user: &str,
    command: &str,
    expires: DateTime<Utc>,
) -> io::Result<()> {
    let line = serde_json::to_string(&json!({
        "seq": seq,
        "time": at.to_rfc3339_opts(SecondsFormat::Millis, true),
        "event": "approved",
        "message_id": "6a1b0f2e8c7d4e31a9f05b3c2d1e0f02",
        "request_id": id,
        "user": user,
        "approver": "root",
        "command": command,
        "reason": "benchmark",
        "expires": expires.to_rfc3339_opts(SecondsFormat::Secs, true),
        "message": format!("root granted {command} to {user}"),
        "prev": prev,
    }))?;
    out.write_all(line.as_bytes())?;
    out.write_all(b"\n")?;
    *prev = line_hash(&line);
    Ok(())
}

/// Writes `audit.log` with `records` chained records and the matching `audit.head`.
pub fn write_audit_log(state_dir: &Path, records: u64) -> io::Result<()> {
    let mut out = BufWriter::with_capacity(1 << 20, fs::File::create(state_dir.join("audit.log"))?);
    let mut prev = "0".repeat(64);
    let start = Utc::now() - chrono::Duration::days(365);
    for seq in 1..=records {
        let at = start + chrono::Duration::milliseconds(seq as i64 * 20);
        let id = id('a', seq as usize);
        write_approval(
            &mut out,
            seq,
            &mut prev,
            at,
            &id,
            &format!("user{}", seq % 5000),
            "/usr/bin/systemctl restart nginx",
            at + chrono::Duration::minutes(15),
        )?;
    }
    out.flush()?;
    let head = format!("{records:020} {prev}\n");
    fs::write(state_dir.join("audit.head"), head)
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_unique_and_well_formed() {
        let a = super::id('b', 0);
        let b = super::id('b', 35);
        let c = super::id('b', 36);
        assert_eq!(a.len(), 10);
        assert!(a != b && b != c);
        assert!(c
            .bytes()
            .all(|x| x.is_ascii_lowercase() || x.is_ascii_digit()));
    }
}
