//! A pseudo-terminal pair for tests that check what jit writes to a user's terminal.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Opens a pty: (master, slave, slave device path such as `/dev/pts/3`). The test reads from
/// the master what was written to the slave; keep the slave open as a logged-in shell would.
pub fn open_pty() -> (OwnedFd, OwnedFd, String) {
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: openpty writes two fds into the given ints; name, termios and winsize may be null.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: openpty succeeded, so both fds are open and owned by nobody else.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let name =
        std::fs::read_link(format!("/proc/self/fd/{}", slave.as_raw_fd())).expect("pty name");
    (master, slave, name.to_string_lossy().into_owned())
}

/// Reads what the terminal shows into `seen` until it contains `needle`; false if `within`
/// passed first or the terminal closed (every process on it exited).
pub fn read_until(
    master: &OwnedFd,
    seen: &mut String,
    needle: &str,
    within: std::time::Duration,
) -> bool {
    let deadline = std::time::Instant::now() + within;
    while !seen.contains(needle) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return false;
        }
        let mut pfd = libc::pollfd {
            fd: master.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = libc::c_int::try_from(left.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: one pollfd we own, count 1; poll only writes `revents`.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        if rc <= 0 {
            continue;
        }
        let mut buf = [0u8; 4096];
        // SAFETY: reads at most buf.len() bytes into a buffer we own.
        let n = unsafe { libc::read(master.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            // EIO: the slave side is closed everywhere.
            return seen.contains(needle);
        }
        seen.push_str(&String::from_utf8_lossy(&buf[..n as usize]));
    }
    true
}

/// Types `text` on the terminal.
pub fn type_text(master: &OwnedFd, text: &str) {
    // SAFETY: writes from a buffer we own, of its length.
    let n = unsafe { libc::write(master.as_raw_fd(), text.as_ptr().cast(), text.len()) };
    assert_eq!(n, text.len() as isize, "write to the pty");
}
