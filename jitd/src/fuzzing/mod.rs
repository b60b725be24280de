//! What the fuzz targets (`fuzz/fuzz_targets/`) call, and nothing else. Compiled only into test
//! builds and cargo-fuzz builds (which pass `--cfg fuzzing`), so the product carries none of
//! it, and jitd's own modules stay private: each function here hands one of jitd's parsers
//! plain types.
//!
//! The properties the targets assert live in the targets. The one exception is the read-back
//! of a rendered sudoers rule (`sudoers_readback`): the real-sudo sample test beside it checks
//! that this oracle agrees with visudo and sudo, so it lives where that test can reach it.
//! Nothing in jitd imports this module (`layers.rs` checks).

pub mod fleet_store;
pub mod sudoers_case;
pub mod sudoers_readback;

#[cfg(test)]
mod real_sudo_tests;

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use jit_proto::{ClientMessage, Response, Target};

use crate::config::config_file::Config;
use crate::core::command_pattern::{CommandPattern, Specificity};
use crate::core::model::GrantId;
use crate::core::policy::{Ask, Requester};
use crate::core::timestamp;
use crate::shell::audit::audit_log::{self, LineReader};
use crate::shell::daemon::server;
use crate::shell::host::sudoers_rule::{self, ExactCommand, GrantFileId};

/// The daemon's reading of one frame's body: the request, or the error answer it sends.
pub fn decode_request(body: &[u8]) -> Result<ClientMessage, Response> {
    server::decode(body)
}

/// Loads `path` and the drop-ins beside it as `jitd serve` and `jitd check-config` do; when
/// that succeeds, asks the policy about each of `asks` at each of `nows`, as `jitd explain`
/// and a submission do (the loaded policy must answer, whatever the file said). Returns the
/// role names, or the error.
pub fn load_config(
    path: &Path,
    asks: &[(Target, Option<&str>)],
    nows: &[DateTime<Utc>],
) -> Result<Vec<String>, String> {
    let config = Config::load(path, true).map_err(|e| e.to_string())?;
    let groups = ["wheel".to_string(), "ops".to_string()];
    for ((target, role), &now) in asks.iter().flat_map(|a| nows.iter().map(move |n| (a, n))) {
        let ask = Ask {
            who: Requester {
                user: "alice",
                groups: &groups,
            },
            target,
            role: *role,
            duration: Some(Duration::from_secs(900)),
        };
        let _ = config.policy.explain(&ask, now);
        let _ = config.policy.decide(&ask, "a reason", Some("INC-1"), now);
    }
    let _ = config.policy.overlaps();
    Ok(config.policy.role_names())
}

/// A command pattern from a role's `commands`.
pub struct Pattern(CommandPattern);

/// How a command line matched a pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Matched {
    /// Word for word, no wildcard involved.
    Exact,
    /// Through a wildcard, or `ALL`.
    Wildcard,
}

impl Pattern {
    pub fn parse(text: &str) -> Result<Pattern, String> {
        CommandPattern::parse(text).map(Pattern)
    }

    pub fn is_all(&self) -> bool {
        self.0 == CommandPattern::All
    }

    /// The words of the pattern (program first); empty for `ALL`.
    pub fn words(&self) -> &[String] {
        match &self.0 {
            CommandPattern::All => &[],
            CommandPattern::Args(words) => words,
        }
    }

    pub fn matches(&self, argv: &[String]) -> Option<Matched> {
        // An exact line scores like an SSH role (the top class); anything looser below it.
        self.0.matches(argv).map(|s| {
            if s >= Specificity::SSH {
                Matched::Exact
            } else {
                Matched::Wildcard
            }
        })
    }
}

impl std::fmt::Display for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// The drop-in jitd would write for grant `id` of `uid` to run `argv`, or why it refuses.
pub fn render_rule(
    id: &str,
    uid: u32,
    argv: &[String],
    not_after: Option<DateTime<Utc>>,
) -> Result<String, String> {
    let id = GrantFileId::parse(id).map_err(|e| e.to_string())?;
    let command = ExactCommand::parse(argv).map_err(|e| e.to_string())?;
    Ok(sudoers_rule::render(&id, uid, &command, not_after, None))
}

/// One line as the audit log's reader returns it: its bytes and whether a newline ended it.
pub type RawLine = (Vec<u8>, bool);

/// Every line of `bytes` through the audit log's streaming reader, or its error.
pub fn read_lines(bytes: &[u8]) -> Result<Vec<RawLine>, String> {
    let mut reader = LineReader::new(Cursor::new(bytes));
    let mut lines = Vec::new();
    loop {
        match reader.next_line() {
            Ok(Some(line)) => lines.push((line.bytes.to_vec(), line.terminated)),
            Ok(None) => return Ok(lines),
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// `jitd audit verify` on the log at `path` (its head file beside it): the number of records
/// and the chain's last hash, or the line where the chain breaks.
pub fn verify(path: &Path) -> Result<(usize, String), (usize, String)> {
    verify_from(path).map(|(lines, hash, _)| (lines, hash))
}

/// [`verify`], with the first record present: a chain whose oldest records are gone (rotated
/// files moved away, or the start of the only file cut) verifies, and `jitd audit verify`
/// reports where it now starts for comparison with an archive.
pub fn verify_from(path: &Path) -> Result<(usize, String, u64), (usize, String)> {
    crate::shell::audit::audit_verify::verify(path)
        .map(|ok| (ok.lines, ok.head.hash, ok.first_seq))
        .map_err(|e| (e.line, e.what))
}

/// What the log at `path` approved for the grants `ids` since `since` (ids that are not grant
/// ids are left out, as no grant could have them).
pub fn approved_windows(
    path: &Path,
    ids: &[String],
    since: DateTime<Utc>,
) -> Result<BTreeMap<String, DateTime<Utc>>, String> {
    let wanted: Vec<GrantId> = ids
        .iter()
        .filter_map(|id| GrantId::try_from(id.clone()).ok())
        .collect();
    audit_log::approved_windows(path, &wanted, since)
        .map(|found| {
            found
                .into_iter()
                .map(|(id, t)| (id.as_str().to_string(), t))
                .collect()
        })
        .map_err(|e| e.to_string())
}

/// The hash the next record's `prev` holds for `line`.
pub fn line_hash(line: &[u8]) -> String {
    audit_log::line_hash(line)
}

/// The `prev` of a log's first record.
pub const GENESIS: &str = audit_log::GENESIS;

/// jitd's reading of a stored timestamp.
pub fn parse_timestamp(bytes: &[u8]) -> Option<DateTime<Utc>> {
    timestamp::parse(bytes)
}
