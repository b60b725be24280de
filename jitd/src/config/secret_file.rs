//! Files that hold a secret named by jitd.toml: a notifier's `url_file` (a Slack or Discord
//! webhook URL is its own credential) and `token_file` (a bearer token). jitd.toml itself is
//! world-readable so that approvers can run `jitd explain`; the secrets live beside it in files
//! only root can read.
//!
//! A secret file must be a regular file owned by root that neither group nor others may read or
//! write (`chown root:root F; chmod 600 F`), reached without a symbolic link as its last
//! component, in directories only root can change ([`root_only`](super::root_only)). Group
//! read is refused even for group root: `ls -l` cannot tell a group bit from an ACL mask, and
//! "root only" is easier to check by eye than "root and group root". It holds one value of
//! printable characters without spaces (surrounding whitespace, such as `echo`'s newline, is
//! trimmed). The value is never put in an error message.

use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use crate::config::root_only;

/// The longest secret read: a token or URL is far shorter, and nothing larger is read.
pub const MAX_SECRET_BYTES: u64 = 4096;

/// Opens `path` (named by jitd.toml's `key`) after checking that it is root's alone, in
/// directories only root can change.
fn open_private(key: &str, path: &Path) -> Result<std::fs::File, String> {
    let shown = path.display();
    let fix = format!("chown root:root {shown}; chmod 600 {shown}");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                format!("{key} {shown} is a symbolic link: name the file itself")
            } else {
                format!("cannot read {key} {shown}: {e}")
            }
        })?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot read {key} {shown}: {e}"))?;
    if !meta.is_file() || meta.uid() != 0 || meta.mode() & 0o066 != 0 {
        return Err(format!(
            "{key} {shown} must be a regular file owned by root that neither group nor others \
             can read or write (mode {:04o}, owner uid {}): {fix}",
            meta.mode() & 0o7777,
            meta.uid()
        ));
    }
    root_only::check(path).map_err(|e| {
        format!("{key} {shown}: {e}, so someone other than root could replace it: keep it in a directory only root can change, such as /etc/jit")
    })?;
    Ok(file)
}

/// Checks that `path` (a private key, named by `key`) is root's alone as [`read`] requires,
/// without reading it: its contents are for the TLS library.
pub fn check_private(key: &str, path: &Path) -> Result<(), String> {
    open_private(key, path).map(|_| ())
}

/// Reads the secret in `path`, which jitd.toml names with `key` (`url_file`, `token_file`);
/// `what` says what it must hold ("one token", "one URL"), for the error.
pub fn read(key: &str, what: &str, path: &Path) -> Result<String, String> {
    let shown = path.display();
    let mut file = open_private(key, path)?;
    let mut text = String::new();
    (&mut file)
        .take(MAX_SECRET_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read {key} {shown}: {e}"))?;
    let value = text.trim();
    if text.len() as u64 > MAX_SECRET_BYTES
        || value.is_empty()
        || !value.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(format!(
            "{key} {shown} must hold {what}: 1 to {MAX_SECRET_BYTES} printable characters without spaces"
        ));
    }
    Ok(value.to_string())
}
