//! Process handles that cannot be confused by PID reuse: a pidfd refers to one process for its
//! whole life, so a signal sent through it never reaches a later process with the same number.

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

pub struct PidFd {
    fd: OwnedFd,
    pid: u32,
}

impl PidFd {
    /// Opens a handle on `pid`. Pair it with [`start_ticks`] read *after* opening to be sure the
    /// handle is on the process you meant: if the number was reused before the open, the start
    /// time differs; if after, the handle is on the (dead) original and signals fail with ESRCH.
    pub fn open(pid: u32) -> io::Result<PidFd> {
        let raw_pid = libc::pid_t::try_from(pid).map_err(|_| io::ErrorKind::InvalidInput)?;
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1; no memory is
        // passed.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, raw_pid, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = i32::try_from(fd).map_err(|_| io::ErrorKind::InvalidData)?;
        // SAFETY: the kernel just returned this fd to us and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(PidFd { fd, pid })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Sends `signal`; ESRCH (already exited) is reported as `Ok(false)`.
    pub fn signal(&self, signal: i32) -> io::Result<bool> {
        // SAFETY: pidfd_send_signal with a valid pidfd, a null siginfo (the kernel fills in a
        // kill()-like one) and flags 0; no memory is passed.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.fd.as_raw_fd(),
                signal,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if rc == 0 {
            return Ok(true);
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::ESRCH) {
            Ok(false)
        } else {
            Err(err)
        }
    }

    /// True once the process has exited (a zombie counts as exited).
    pub fn has_exited(&self) -> bool {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, count 1, timeout 0: poll only writes `revents`.
        let rc = unsafe { libc::poll(&mut pfd, 1, 0) };
        rc > 0 && pfd.revents & (libc::POLLIN | libc::POLLHUP) != 0
    }
}

/// The fields of `/proc/<pid>/stat` jitd uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    pub ppid: u32,
    /// Start time in clock ticks since boot: with the pid, identifies one process.
    pub start_ticks: u64,
    /// Exited, not yet reaped by its parent.
    pub zombie: bool,
}

pub fn proc_stat(pid: u32) -> Option<ProcStat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces or ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): ppid is field 4, starttime field 22.
    Some(ProcStat {
        ppid: fields.get(1)?.parse().ok()?,
        start_ticks: fields.get(19)?.parse().ok()?,
        zombie: fields.first() == Some(&"Z"),
    })
}

/// The start time of `pid` (see [`ProcStat::start_ticks`]); the daemon records it when a
/// session registers so a later end cannot hit a reused pid.
pub fn start_ticks(pid: u32) -> Option<u64> {
    proc_stat(pid).map(|s| s.start_ticks)
}
