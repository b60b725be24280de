//! Writing a one-line notice to a session's terminal without ever blocking or acquiring it.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::PathBuf;

/// The device for a PAM_TTY-style name (`pts/3`, `/dev/pts/3`, `tty1`), or `None` for anything
/// else (`ssh`, `:0`, paths outside /dev/pts and /dev/tty*).
pub fn tty_device(tty: &str) -> Option<PathBuf> {
    let name = tty.strip_prefix("/dev/").unwrap_or(tty);
    let ok = if let Some(n) = name.strip_prefix("pts/") {
        !n.is_empty() && n.len() <= 10 && n.bytes().all(|b| b.is_ascii_digit())
    } else if let Some(n) = name.strip_prefix("tty") {
        !n.is_empty() && n.len() <= 16 && n.bytes().all(|b| b.is_ascii_alphanumeric())
    } else {
        false
    };
    ok.then(|| PathBuf::from("/dev").join(name))
}

/// What [`write_notice`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    Written,
    /// The terminal belongs to `owner` now, not to whom the notice is for: nothing was
    /// written (its user logged out and the device went to someone else's login).
    NotOwned {
        owner: u32,
    },
}

/// Writes `message` (control characters replaced) on its own line to the terminal `tty`, if
/// the device is owned by uid `owner` (as login and sshd hand a terminal to the user logged in
/// on it). The owner is checked on the opened descriptor, so the device checked is the one
/// written to.
pub fn write_notice(tty: &str, owner: u32, message: &str) -> io::Result<Notice> {
    let path = tty_device(tty)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a terminal name"))?;
    // O_NOCTTY: never become jitd's controlling terminal; O_NONBLOCK: a stalled terminal must
    // not stall the daemon; O_NOFOLLOW: only the device itself.
    let mut file = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&path)?;
    let meta = file.metadata()?;
    if !meta.file_type().is_char_device() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a character device",
        ));
    }
    if meta.uid() != owner {
        return Ok(Notice::NotOwned { owner: meta.uid() });
    }
    let clean: String = message
        .chars()
        .take(512)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    file.write_all(format!("\r\n[jit] {clean}\r\n").as_bytes())?;
    Ok(Notice::Written)
}
