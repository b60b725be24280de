//! The files that hold the audit chain, and their names. `audit.log` is the file jitd appends
//! to. Rotating it renames it to `audit-<seq>.log`, named for the seq of its first record (20
//! digits, so `ls` lists the files in chain order), and a new `audit.log` continues the chain:
//! its first record's `prev` is the hash of the last record of the file before, and `seq` goes
//! on counting. This file lists and opens the files in chain order; audit_log.rs writes and
//! checks them.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Digits of the seq in a rotated file's name: any u64, zero-padded.
const SEQ_DIGITS: usize = 20;

/// One file of the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainFile {
    pub path: PathBuf,
    /// The seq its name says its first record has; `None` for the active `audit.log`.
    pub first_seq: Option<u64>,
}

/// The name `log` (`dir/audit.log`) takes when it is rotated and its first record is
/// `first_seq`: `dir/audit-<first_seq>.log`.
pub fn rotated_path(log: &Path, first_seq: u64) -> PathBuf {
    log.with_file_name(format!(
        "{}-{first_seq:0width$}.log",
        stem(log),
        width = SEQ_DIGITS
    ))
}

fn stem(log: &Path) -> &str {
    log.file_stem().and_then(|s| s.to_str()).unwrap_or("audit")
}

/// The seq in `name` if it is one of the rotated files of the log whose stem is `stem`.
fn rotated_seq(stem: &str, name: &str) -> Option<u64> {
    let digits = name
        .strip_prefix(stem)?
        .strip_prefix('-')?
        .strip_suffix(".log")?;
    if digits.len() != SEQ_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn dir_of(log: &Path) -> &Path {
    match log.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// The rotated files of `log`, oldest first. Other names (an operator's `audit-old.log.gz`)
/// are not the chain's and are left out.
pub fn rotated_files(log: &Path) -> io::Result<Vec<ChainFile>> {
    let stem = stem(log);
    let mut files = Vec::new();
    for entry in fs::read_dir(dir_of(log))? {
        let entry = entry?;
        let name = entry.file_name();
        if let Some(seq) = name.to_str().and_then(|n| rotated_seq(stem, n)) {
            files.push(ChainFile {
                path: entry.path(),
                first_seq: Some(seq),
            });
        }
    }
    files.sort_by_key(|f| f.first_seq);
    Ok(files)
}

/// Every file of the chain in order: the rotated files, then `log` itself if it exists (a crash
/// between renaming it and creating its successor leaves none).
pub fn chain_files(log: &Path) -> io::Result<Vec<ChainFile>> {
    let mut files = rotated_files(log)?;
    match fs::symlink_metadata(log) {
        Ok(_) => files.push(ChainFile {
            path: log.to_path_buf(),
            first_seq: None,
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    Ok(files)
}

/// The chain's files opened for reading, in order, never through a link: for readers beside a
/// running jitd (`jitd audit`). A rotation between listing and opening would hide the file it
/// renamed, so the directory is listed again once all are open, until the two listings agree.
/// No file at all is an error naming `log`.
pub fn open_chain(log: &Path) -> io::Result<Vec<(ChainFile, File)>> {
    const ATTEMPTS: usize = 5;
    'attempt: for _ in 0..ATTEMPTS {
        let listed = chain_files(log)?;
        if listed.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("cannot read {}: no such file", log.display()),
            ));
        }
        let mut opened = Vec::with_capacity(listed.len());
        for file in &listed {
            match OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&file.path)
            {
                Ok(f) => opened.push((file.clone(), f)),
                // Renamed since it was listed: list again.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue 'attempt,
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("cannot read {}: {e}", file.path.display()),
                    ))
                }
            }
        }
        if chain_files(log)? == listed {
            return Ok(opened);
        }
    }
    Err(io::Error::other(format!(
        "{} was rotated {ATTEMPTS} times while it was being opened: try again",
        log.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shell::audit::audit_log::tests::TempDir;

    #[test]
    fn rotated_files_are_named_for_their_first_record_and_listed_in_chain_order() {
        let dir = TempDir::new("names");
        let log = dir.0.join("audit.log");
        let name = rotated_path(&log, 1234);
        assert_eq!(name, dir.0.join("audit-00000000000000001234.log"));
        // Lexical order is chain order, as `ls` shows them.
        for seq in [100_000, 7, 99] {
            fs::write(rotated_path(&log, seq), "").unwrap();
        }
        // Not the chain's: left out.
        for other in [
            "audit-7.log",
            "audit-00000000000000000008.log.gz",
            "audit-0000000000000000000x.log",
            "other-00000000000000000009.log",
        ] {
            fs::write(dir.0.join(other), "").unwrap();
        }
        let seqs = |files: Vec<ChainFile>| files.iter().map(|f| f.first_seq).collect::<Vec<_>>();
        assert_eq!(
            seqs(chain_files(&log).unwrap()),
            [Some(7), Some(99), Some(100_000)]
        );
        fs::write(&log, "").unwrap();
        let files = chain_files(&log).unwrap();
        assert_eq!(files.last().unwrap().path, log);
        assert_eq!(seqs(files), [Some(7), Some(99), Some(100_000), None]);
        assert_eq!(open_chain(&log).unwrap().len(), 4);
    }

    #[test]
    fn no_file_at_all_is_an_error_naming_the_log() {
        let dir = TempDir::new("none");
        let err = open_chain(&dir.0.join("audit.log")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(err.to_string().contains("audit.log"), "{err}");
    }
}
