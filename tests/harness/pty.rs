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

/// A terminal as a logged-in user has it: a pty of a given size, its master read by the test
/// (non-blocking), its slave handed to the program under test.
pub struct Terminal {
    master: OwnedFd,
    slave: OwnedFd,
    /// `pts/N`, as utmp names it.
    pub line: String,
}

impl Terminal {
    /// A `columns` × `rows` terminal.
    pub fn open(columns: u16, rows: u16) -> Terminal {
        let (master, slave, path) = open_pty();
        let size = libc::winsize {
            ws_row: rows,
            ws_col: columns,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads a valid winsize through the pointer; the fd is ours.
        let rc = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &size) };
        assert_eq!(rc, 0, "TIOCSWINSZ: {}", std::io::Error::last_os_error());
        // SAFETY: fcntl on our own descriptor.
        unsafe { libc::fcntl(master.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
        Terminal {
            master,
            slave,
            line: path.trim_start_matches("/dev/").to_string(),
        }
    }

    /// The terminal's device becomes `uid`'s, as login makes it.
    pub fn owned_by(self, uid: u32) -> Terminal {
        std::os::unix::fs::chown(format!("/dev/{}", self.line), Some(uid), None)
            .expect("chown the pty");
        self
    }

    /// The slave side, for a child's stdin, stdout or stderr.
    pub fn stdio(&self) -> std::process::Stdio {
        std::process::Stdio::from(self.slave.try_clone().expect("dup the pty"))
    }

    /// What reached the terminal within `within`, stopping early once `until` shows up.
    pub fn read(&self, within: std::time::Duration, until: &str) -> String {
        let deadline = std::time::Instant::now() + within;
        let mut seen = Vec::new();
        while std::time::Instant::now() < deadline {
            let mut buf = [0u8; 1024];
            // SAFETY: reading into our own buffer from our own descriptor.
            let n =
                unsafe { libc::read(self.master.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n > 0 {
                seen.extend_from_slice(&buf[..n as usize]);
                if !until.is_empty() && String::from_utf8_lossy(&seen).contains(until) {
                    break;
                }
            } else {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        String::from_utf8_lossy(&seen).into_owned()
    }
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
