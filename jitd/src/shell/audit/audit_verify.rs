//! `jitd audit verify`: walks the chain once, across every file that holds it (the rotated
//! `audit-<seq>.log` files in order, then `audit.log`), and checks it against `audit.head`.
//!
//! Detects an edited, deleted, inserted, reordered or duplicated record in any file; a rotated
//! file deleted, renamed, emptied or cut short; a torn final line; and (through the head) whole
//! lines cut from the end. What it cannot detect, it reports so that it can be checked against
//! a copy kept elsewhere: the chain's end (a log rewritten from scratch with the head rewritten
//! to match) and, when the oldest files were moved away, where the chain now starts.

use std::fmt;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use crate::shell::audit::audit_files::{self, ChainFile};
use crate::shell::audit::audit_log::{
    head_path, line_hash, read_head, AuditRecord, ChainHead, LineReader, GENESIS,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyOk {
    /// Number of intact records.
    pub lines: usize,
    /// The chain's end: keep a copy elsewhere to detect a wholesale rewrite later.
    pub head: ChainHead,
    /// The first record present: 1, or later when the oldest rotated files were moved away
    /// (0 for an empty log).
    pub first_seq: u64,
    /// That record's `prev`: the hash of record `first_seq - 1` ([`GENESIS`] for record 1),
    /// to compare with an archive or with a forwarded event's `JIT_AUDIT_HASH`.
    pub first_prev: String,
    /// How many files hold the chain.
    pub files: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyError {
    /// The file where the chain breaks.
    pub file: PathBuf,
    /// First line (from 1) of `file` where the chain breaks; for a log cut short, the first
    /// missing one; 0 when the log could not be read at all.
    pub line: usize,
    pub what: String,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} line {}: {}",
            self.file.display(),
            self.line,
            self.what
        )
    }
}

fn name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into(),
    )
}

/// The record before the one being checked, and where it was.
struct Previous {
    head: ChainHead,
    file: PathBuf,
}

/// Verifies the chain whose active file is `path` (`state_dir/audit.log`), streaming every
/// file once. See the module's documentation for what it detects.
pub fn verify(path: &Path) -> Result<VerifyOk, VerifyError> {
    let files = audit_files::open_chain(path).map_err(|e| VerifyError {
        file: path.to_path_buf(),
        line: 0,
        what: e.to_string(),
    })?;
    let mut previous: Option<Previous> = None;
    let mut before_last: Option<ChainHead> = None;
    let mut first: Option<(u64, String)> = None;
    // The last file read and its number of lines: where a missing end is reported.
    let mut last_file = path.to_path_buf();
    let mut last_lines = 0;
    for (file, handle) in &files {
        let lines = verify_file(file, handle, &mut previous, &mut before_last, &mut first)?;
        last_file = file.path.clone();
        last_lines = lines;
    }
    let head = previous.map_or_else(ChainHead::genesis, |p| p.head);
    let (first_seq, first_prev) = first.unwrap_or((0, GENESIS.to_string()));
    let lines = match head.seq {
        0 => 0,
        end => usize::try_from(end - first_seq + 1).unwrap_or(usize::MAX),
    };
    let ok = VerifyOk {
        lines,
        head: head.clone(),
        first_seq,
        first_prev,
        files: files.len(),
    };
    let fail = |line: usize, what: String| VerifyError {
        file: last_file.clone(),
        line,
        what,
    };
    let hpath = head_path(path);
    let stored = read_head(&hpath).map_err(|e| fail(last_lines + 1, e.to_string()))?;
    match stored {
        Some(h) if h == head => Ok(ok),
        // The daemon stopped between writing the last record and updating the head.
        Some(h) if Some(&h) == before_last.as_ref() && h.seq + 1 == head.seq => Ok(ok),
        None if head.seq == 0 => Ok(ok),
        None => Err(fail(
            last_lines + 1,
            format!(
                "{} is missing: cannot tell whether records were cut from the end",
                hpath.display()
            ),
        )),
        Some(h) if h.seq > head.seq => Err(fail(
            last_lines + 1,
            format!(
                "the log ends at record {} but {} says record {} was written: records were cut \
                 from the end",
                head.seq,
                hpath.display(),
                h.seq
            ),
        )),
        Some(h) if h.seq == head.seq => Err(fail(
            last_lines,
            format!(
                "the last record's hash differs from {}: it was edited",
                hpath.display()
            ),
        )),
        Some(h) => Err(fail(
            last_lines.saturating_sub(usize::try_from(head.seq - h.seq).unwrap_or(0)) + 1,
            format!(
                "{} ends at record {}: later records were not written by jitd (or the head was \
                 edited)",
                hpath.display(),
                h.seq
            ),
        )),
    }
}

/// Checks one file's records against the chain so far; returns its number of lines.
fn verify_file(
    file: &ChainFile,
    handle: &std::fs::File,
    previous: &mut Option<Previous>,
    before_last: &mut Option<ChainHead>,
    first: &mut Option<(u64, String)>,
) -> Result<usize, VerifyError> {
    let fail = |line: usize, what: String| VerifyError {
        file: file.path.clone(),
        line,
        what,
    };
    let mut reader = LineReader::new(BufReader::with_capacity(1 << 16, handle));
    let mut lines = 0;
    loop {
        let raw = match reader.next_line() {
            Ok(Some(raw)) => raw,
            Ok(None) => break,
            Err(e) => return Err(fail(lines + 1, e.to_string())),
        };
        let n = raw.number;
        lines = n;
        if !raw.terminated {
            return Err(fail(
                n,
                "incomplete final line (no newline): the log was cut or a write was torn".into(),
            ));
        }
        let record: AuditRecord = serde_json::from_slice(raw.bytes)
            .map_err(|e| fail(n, format!("not a valid audit record: {e}")))?;
        if let (1, Some(named)) = (n, file.first_seq) {
            if record.seq != named {
                return Err(fail(
                    n,
                    format!(
                        "the file is named for record {named} but begins with record {}: it \
                         was renamed, or records were cut from its start",
                        record.seq
                    ),
                ));
            }
        }
        match previous.as_ref() {
            None => {
                // The first record present. Record 1 starts the chain from GENESIS; a later
                // one means the oldest files were moved away, and its `prev` is what an archive
                // or a forwarded copy must confirm (`jitd audit verify` reports it).
                if record.seq == 0 {
                    return Err(fail(n, "seq 0: records count from 1".into()));
                }
                if record.seq == 1 && record.prev != GENESIS {
                    return Err(fail(
                        n,
                        "the first record does not start the chain: records before it were \
                         deleted, or it was edited"
                            .into(),
                    ));
                }
                *first = Some((record.seq, record.prev.clone()));
            }
            Some(p) => check_link(&record, n, p).map_err(|what| fail(n, what))?,
        }
        let head = ChainHead {
            seq: record.seq,
            hash: line_hash(raw.bytes),
        };
        *before_last = previous
            .replace(Previous {
                head,
                file: file.path.clone(),
            })
            .map(|p| p.head);
    }
    if lines == 0 && file.first_seq.is_some() {
        return Err(fail(
            1,
            "a rotated file holds no records: jitd never rotates an empty file, so it was \
             emptied"
                .into(),
        ));
    }
    Ok(lines)
}

/// Whether `record`, on line `n` of its file, follows `previous` in the chain; if not, what
/// the break means.
fn check_link(record: &AuditRecord, n: usize, previous: &Previous) -> Result<(), String> {
    let expected = previous.head.seq + 1;
    // The first record of a file continues the last one of the file before.
    let across = (n == 1).then(|| name(&previous.file));
    if record.seq > expected {
        let missing = format!("record(s) {expected}..{}", record.seq - 1);
        return Err(match across {
            Some(before) => format!(
                "seq {} where {expected} was expected: {missing} are missing after {before}: \
                 a rotated file was deleted, or records were cut from the end of {before}",
                record.seq
            ),
            None => format!(
                "seq {} where {expected} was expected: {missing} were deleted",
                record.seq
            ),
        });
    }
    if record.seq < expected {
        return Err(format!(
            "seq {} where {expected} was expected: a record was inserted, duplicated or moved",
            record.seq
        ));
    }
    if record.prev != previous.head.hash {
        return Err(match across {
            Some(before) => format!(
                "prev does not match the hash of record {} at the end of {before}: that record \
                 was edited, or this line was",
                previous.head.seq
            ),
            None => format!(
                "prev does not match the hash of line {}: line {} was edited, or this line was \
                 inserted or edited",
                n - 1,
                n - 1
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shell::audit::audit_files::rotated_path;
    use crate::shell::audit::audit_log::tests::{
        bad_line, lines, log_with, rotated_log_with, write_lines,
    };
    use std::fs;

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

    /// What verify says about a broken chain, which must be in `file` at `line`.
    fn broken_at(path: &Path, file: &Path, line: usize) -> String {
        let e = verify(path).expect_err("tampering went unnoticed");
        eprintln!("{e}");
        assert_eq!((e.file.as_path(), e.line), (file, line), "{e}");
        e.what
    }

    #[test]
    fn a_rotated_chain_verifies_across_its_files() {
        let (_dir, path) = rotated_log_with(10, 3, "v-rotated");
        let ok = verify(&path).unwrap();
        assert_eq!(
            (ok.lines, ok.files, ok.first_seq, ok.head.seq),
            (10, 4, 1, 10)
        );
        assert_eq!(ok.first_prev, GENESIS);
    }

    #[test]
    fn a_deleted_middle_file_is_named() {
        let (_dir, path) = rotated_log_with(10, 3, "v-delete-file");
        fs::remove_file(rotated_path(&path, 4)).unwrap();
        let what = broken_at(&path, &rotated_path(&path, 7), 1);
        assert!(
            what.contains("record(s) 4..6 are missing after audit-00000000000000000001.log")
                && what.contains("a rotated file was deleted"),
            "{what}"
        );
    }

    #[test]
    fn a_middle_file_cut_short_is_named() {
        let (_dir, path) = rotated_log_with(10, 3, "v-cut-file");
        let middle = rotated_path(&path, 4);
        let mut l = lines(&middle);
        l.pop();
        write_lines(&middle, &l);
        let what = broken_at(&path, &rotated_path(&path, 7), 1);
        assert!(what.contains("record(s) 6..6 are missing"), "{what}");
        // Cut in the middle of a line instead: that file's last line is named.
        let text = fs::read(&middle).unwrap();
        fs::write(&middle, &text[..text.len() - 5]).unwrap();
        let what = broken_at(&path, &middle, 2);
        assert!(what.contains("incomplete final line"), "{what}");
    }

    #[test]
    fn rotated_files_swapped_by_renaming_are_named() {
        let (dir, path) = rotated_log_with(10, 3, "v-swap");
        let (a, b) = (rotated_path(&path, 1), rotated_path(&path, 4));
        let spare = dir.0.join("spare");
        fs::rename(&a, &spare).unwrap();
        fs::rename(&b, &a).unwrap();
        fs::rename(&spare, &b).unwrap();
        let what = broken_at(&path, &a, 1);
        assert!(
            what.contains("named for record 1 but begins with record 4"),
            "{what}"
        );
    }

    #[test]
    fn an_edited_record_in_an_old_file_is_found_in_that_file_or_the_next() {
        let (_dir, path) = rotated_log_with(10, 3, "v-edit-old");
        let oldest = rotated_path(&path, 1);
        let original = lines(&oldest);
        let mut l = original.clone();
        l[1] = l[1].replace("\"bob\"", "\"mallory\"");
        write_lines(&oldest, &l);
        broken_at(&path, &oldest, 3);
        // The file's last record: the next file's first record says so.
        let mut l = original;
        l[2] = l[2].replace("\"bob\"", "\"mallory\"");
        write_lines(&oldest, &l);
        let what = broken_at(&path, &rotated_path(&path, 4), 1);
        assert!(
            what.contains("record 3 at the end of audit-00000000000000000001.log"),
            "{what}"
        );
    }

    #[test]
    fn an_emptied_rotated_file_is_named() {
        let (_dir, path) = rotated_log_with(10, 3, "v-empty");
        let middle = rotated_path(&path, 4);
        fs::write(&middle, "").unwrap();
        let what = broken_at(&path, &middle, 1);
        assert!(what.contains("holds no records"), "{what}");
    }

    #[test]
    fn a_record_added_to_the_end_of_a_rotated_file_is_named() {
        let (_dir, path) = rotated_log_with(10, 3, "v-append-old");
        let oldest = rotated_path(&path, 1);
        let mut l = lines(&oldest);
        // Even with the right seq and prev it is one record too many.
        let mut forged: AuditRecord = serde_json::from_str(&l[2]).unwrap();
        forged.seq = 4;
        forged.prev = line_hash(l[2].as_bytes());
        forged.approver = Some("mallory".into());
        l.push(forged.to_line());
        write_lines(&oldest, &l);
        let what = broken_at(&path, &rotated_path(&path, 4), 1);
        assert!(what.contains("inserted, duplicated or moved"), "{what}");
    }

    #[test]
    fn with_the_oldest_files_moved_away_verify_says_where_the_chain_starts() {
        let (_dir, path) = rotated_log_with(10, 3, "v-archived");
        let oldest = rotated_path(&path, 1);
        let last_of_oldest = lines(&oldest).pop().unwrap();
        fs::remove_file(&oldest).unwrap();
        let ok = verify(&path).unwrap();
        assert_eq!((ok.first_seq, ok.lines, ok.files), (4, 7, 3));
        // What an archive or a forwarded JIT_AUDIT_HASH of record 3 must show.
        assert_eq!(ok.first_prev, line_hash(last_of_oldest.as_bytes()));
        // Its first record edited: nothing before it to check it against, but the next
        // record's prev still catches it.
        let next = rotated_path(&path, 4);
        let mut l = lines(&next);
        l[0] = l[0].replace("\"bob\"", "\"mallory\"");
        write_lines(&next, &l);
        broken_at(&path, &next, 2);
    }

    #[test]
    fn after_a_crash_between_renaming_and_creating_audit_log_the_chain_verifies() {
        let (_dir, path) = rotated_log_with(8, 3, "v-no-active");
        // What a crash right after the rename leaves: no audit.log, the head at record 8.
        fs::rename(&path, rotated_path(&path, 7)).unwrap();
        let ok = verify(&path).unwrap();
        assert_eq!((ok.lines, ok.files), (8, 3));
        // And the end is still checked against the head, now in the rotated file.
        let newest = rotated_path(&path, 7);
        let mut l = lines(&newest);
        l.pop();
        write_lines(&newest, &l);
        let what = broken_at(&path, &newest, 2);
        assert!(what.contains("cut from the end"), "{what}");
    }
}
