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
