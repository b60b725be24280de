//! The audit log's reader and verifier, on arbitrary bytes and on chains built from the input.
//!
//! The first byte picks what the rest is:
//!
//! 0. raw bytes, written as `audit.log`: the line reader gives back exactly those bytes, line
//!    by line; `verify` and `approved_windows` never panic, and `verify` accepts only a log of
//!    whole lines, one record per line.
//! 1. a recipe for a valid chain (records whose user-controlled fields — user, command,
//!    reason, ticket, message, extra values — come from the input) plus a tampering: `verify`
//!    accepts the chain as written and refuses it after any edit, deletion, insertion, swap or
//!    cut it can see (an edit of the head along with the log is out of its reach by design;
//!    records cut from the start verify, with the chain's new first record reported, as when
//!    rotated files are moved away);
//!    `approved_windows`, which scans lines without parsing them, agrees with a reference that
//!    parses every record — so no text a user controls can forge an approval.
//! 2. a timestamp: jitd's fast parser agrees with chrono's RFC 3339 parser.
#![no_main]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use chrono::{DateTime, Duration, SecondsFormat, TimeZone, Utc};
use jitd::fuzzing as jit;
use libfuzzer_sys::fuzz_target;
use serde::Serialize;

fn scratch() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = scratch_base();
        let dir = base.join(format!("jit-fuzz-audit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        dir
    })
}

/// Where the scratch directory goes: `JIT_FUZZ_SCRATCH` (run-smoke and run-long point it at a
/// directory they remove afterwards: libFuzzer exits without running destructors), else tmpfs.
fn scratch_base() -> PathBuf {
    match std::env::var_os("JIT_FUZZ_SCRATCH") {
        Some(dir) => PathBuf::from(dir),
        None if std::path::Path::new("/dev/shm").is_dir() => PathBuf::from("/dev/shm"),
        None => std::env::temp_dir(),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => raw(rest),
        1 => chain(rest),
        _ => timestamp(rest),
    }
});

fn write_log(log: &[u8], head: Option<&[u8]>) -> PathBuf {
    let path = scratch().join("audit.log");
    std::fs::write(&path, log).unwrap();
    let head_path = scratch().join("audit.head");
    match head {
        Some(h) => std::fs::write(&head_path, h).unwrap(),
        None => {
            let _ = std::fs::remove_file(&head_path);
        }
    }
    path
}

fn raw(data: &[u8]) {
    let lines = jit::read_lines(data).expect("lines far shorter than the limit read");
    let mut again = Vec::new();
    for (bytes, terminated) in &lines {
        assert!(!bytes.contains(&b'\n'));
        again.extend_from_slice(bytes);
        if *terminated {
            again.push(b'\n');
        }
    }
    assert_eq!(again, data);
    assert!(
        lines.iter().rev().skip(1).all(|(_, t)| *t),
        "only the last line may be cut"
    );

    // The head is a fixed-size line; let the input's start play it half the time.
    let head = (data.first().is_some_and(|b| b & 1 == 1)).then(|| &data[..data.len().min(86)]);
    let path = write_log(data, head);
    if let Ok((records, _)) = jit::verify(&path) {
        assert_eq!(records, lines.len());
        assert!(lines.iter().all(|(_, t)| *t));
    }
    let ids = ["aaaaaaaaaa".to_string(), "0123456789".to_string()];
    let _ = jit::approved_windows(&path, &ids, Utc.timestamp_opt(0, 0).unwrap());
}

/// The fields of a record in the order jitd writes them (`AuditRecord`).
#[derive(Serialize)]
struct Record<'a> {
    seq: u64,
    time: String,
    event: &'a str,
    message_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    command: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    extra: BTreeMap<&'a str, &'a str>,
    message: String,
    prev: String,
}

const EVENTS: [&str; 8] = [
    "approved",
    "extended",
    "break_glass",
    "requested",
    "denied",
    "revoked",
    "expired",
    "session_opened",
];
const IDS: [&str; 4] = ["aaaaaaaaaa", "bbbbbbbbbb", "0123456789", "not-an-id"];
/// jitd's own `extra` keys: upper case, never a record field's name.
const EXTRA_KEYS: [&str; 4] = ["PID", "SERVICE", "RHOST", "TORN_BYTES"];

/// Reads the input a byte or a string at a time, then zeros / empty strings.
struct Recipe<'a>(&'a [u8]);

impl<'a> Recipe<'a> {
    fn byte(&mut self) -> u8 {
        let (b, rest) = self.0.split_first().unwrap_or((&0, &[]));
        self.0 = rest;
        *b
    }

    /// Up to `byte()` bytes of text, invalid UTF-8 replaced.
    fn text(&mut self) -> String {
        let n = (self.byte() as usize).min(self.0.len());
        let (t, rest) = self.0.split_at(n);
        self.0 = rest;
        String::from_utf8_lossy(t).into_owned()
    }
}

struct Written {
    time: DateTime<Utc>,
    event: &'static str,
    request_id: Option<&'static str>,
    expires: Option<String>,
}

fn chain(data: &[u8]) {
    let mut r = Recipe(data);
    let count = 1 + r.byte() as usize % 12;
    let pad = match r.byte() {
        // Now and then records long enough that a log of 12 spans two 64 KiB blocks, so that
        // approved_windows' backwards block reading is exercised (and not so long that they
        // slow every other input down).
        b if b >= 0xf8 => 6_000,
        _ => 0,
    };
    let base = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
    let mut time = base;
    let mut prev = jit::GENESIS.to_string();
    let mut lines: Vec<Vec<u8>> = Vec::new();
    let mut written = Vec::new();
    for seq in 1..=count as u64 {
        // Mostly forwards, sometimes back: the clock may be stepped.
        time += Duration::milliseconds(i64::from(r.byte() as i8) * 997);
        let event = EVENTS[r.byte() as usize % EVENTS.len()];
        let request_id = match r.byte() % 5 {
            4 => None,
            k => Some(IDS[k as usize]),
        };
        let expires = match r.byte() % 4 {
            0 => None,
            1 => Some(r.text()),
            k => Some(
                (time + Duration::seconds(i64::from(r.byte()) * 60 * i64::from(k)))
                    .to_rfc3339_opts(SecondsFormat::Millis, true),
            ),
        };
        let (user, command, reason) = (r.text(), r.text(), r.text());
        let extra_value = r.text();
        let mut extra = BTreeMap::new();
        if !extra_value.is_empty() {
            extra.insert(
                EXTRA_KEYS[extra_value.len() % EXTRA_KEYS.len()],
                &*extra_value,
            );
        }
        let record = Record {
            seq,
            time: time.to_rfc3339_opts(SecondsFormat::Millis, true),
            event,
            message_id: "0123456789abcdef0123456789abcdef",
            request_id,
            user: Some(&user),
            command: (!command.is_empty()).then_some(&*command),
            reason: Some(&reason),
            expires: expires.clone(),
            extra,
            message: format!("{}{}", r.text(), "m".repeat(pad)),
            prev: prev.clone(),
        };
        let line = serde_json::to_vec(&record).unwrap();
        prev = jit::line_hash(&line);
        lines.push(line);
        written.push(Written {
            time,
            event,
            request_id,
            expires,
        });
    }
    let head = format!("{count:020} {prev}\n");
    let join = |lines: &[Vec<u8>]| -> Vec<u8> {
        lines
            .iter()
            .flat_map(|l| l.iter().chain(b"\n"))
            .copied()
            .collect()
    };
    let log = join(&lines);

    let path = write_log(&log, Some(head.as_bytes()));
    assert_eq!(jit::verify(&path), Ok((count, prev.clone())));

    let since = base + Duration::seconds(i64::from(r.byte() as i8) * 30);
    let ids: Vec<String> = IDS.iter().map(|s| s.to_string()).collect();
    let got = jit::approved_windows(&path, &ids, since).expect("a readable log");
    assert_eq!(got, reference_windows(&written, since), "since {since}");

    // One tampering the chain or the head must show.
    let k = r.byte() as usize % count;
    let mut bad = lines.clone();
    let mut bad_head = Some(head.clone().into_bytes());
    match r.byte() % 7 {
        0 => {
            let at = r.byte() as usize % bad[k].len();
            bad[k][at] ^= r.byte().max(1);
        }
        1 => {
            bad.remove(k);
        }
        2 => bad.insert(k, bad[k].clone()),
        3 if count > 1 => bad.swap(k, (k + 1) % count),
        4 => {
            bad.pop();
        }
        5 => bad_head = None,
        _ => {
            // A torn final line: the newline never made it.
            let mut torn = join(&bad);
            torn.pop();
            let path = write_log(&torn, bad_head.as_deref());
            assert!(jit::verify(&path).is_err(), "a torn last line passed");
            return;
        }
    }
    if bad == lines && bad_head.is_some() {
        return; // e.g. a swap of one record with itself
    }
    let path = write_log(&join(&bad), bad_head.as_deref());
    match jit::verify_from(&path) {
        Err(_) => {}
        // Records cut from the start are indistinguishable from rotated files moved away:
        // verify reports where the chain now starts (jitd audit verify says so), which is
        // what an archive or a forwarded JIT_AUDIT_HASH is checked against.
        Ok((_, _, first)) if first > 1 => assert_eq!(k, 0, "a cut start reported at {first}"),
        Ok(_) => panic!("tampering went unseen"),
    }
}

/// What approved_windows must find, by parsing every record: newest first, stop at the first
/// record older than `since`; the newest approving record of each id with a readable expiry.
fn reference_windows(written: &[Written], since: DateTime<Utc>) -> BTreeMap<String, DateTime<Utc>> {
    let mut found = BTreeMap::new();
    for w in written.iter().rev() {
        if w.time < since {
            break;
        }
        if !matches!(w.event, "approved" | "extended" | "break_glass") {
            continue;
        }
        let Some(id) = w.request_id.filter(|id| id.len() == 10) else {
            continue;
        };
        if found.contains_key(id) {
            continue;
        }
        if let Some(t) = w
            .expires
            .as_deref()
            .and_then(|e| jit::parse_timestamp(e.as_bytes()))
        {
            found.insert(id.to_string(), t);
        }
    }
    found
}

fn timestamp(data: &[u8]) {
    let ours = jit::parse_timestamp(data);
    let chrono = std::str::from_utf8(data)
        .ok()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc));
    assert_eq!(ours, chrono, "{:?}", String::from_utf8_lossy(data));
}
