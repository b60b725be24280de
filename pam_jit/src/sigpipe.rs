//! Keeps SIGPIPE from killing the host process while the module writes to jitd's socket.
//!
//! Writing to a socket whose peer has gone raises SIGPIPE, and sudo does not ignore it. The
//! module must not change the process-wide disposition (the host may rely on it), so it blocks
//! the signal in the calling thread only, swallows one that became pending because of us, and
//! restores the mask: the technique libcurl and OpenSSL use.

pub struct SigpipeBlocked {
    old_mask: libc::sigset_t,
    was_pending: bool,
    active: bool,
}

impl SigpipeBlocked {
    pub fn new() -> Self {
        // SAFETY: sigset_t is plain old data; sigemptyset initialises it before use.
        let mut pipe_only: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: as above; filled by pthread_sigmask below.
        let mut old_mask: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: valid pointers to local sigsets; these calls only touch this thread's mask.
        let active = unsafe {
            libc::sigemptyset(&mut pipe_only) == 0
                && libc::sigaddset(&mut pipe_only, libc::SIGPIPE) == 0
                && libc::pthread_sigmask(libc::SIG_BLOCK, &pipe_only, &mut old_mask) == 0
        };
        SigpipeBlocked {
            old_mask,
            was_pending: active && pending(),
            active,
        }
    }
}

impl Default for SigpipeBlocked {
    fn default() -> Self {
        Self::new()
    }
}

fn pending() -> bool {
    // SAFETY: sigset_t is plain old data, filled by sigpending.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer to a local sigset.
    unsafe { libc::sigpending(&mut set) == 0 && libc::sigismember(&set, libc::SIGPIPE) == 1 }
}

impl Drop for SigpipeBlocked {
    fn drop(&mut self) {
        if !self.active {
            return;
        }
        if !self.was_pending && pending() {
            // SAFETY: sigset_t values initialised by sigemptyset/sigaddset; a zero timeout makes
            // sigtimedwait return at once, consuming only the SIGPIPE we caused.
            unsafe {
                let mut pipe_only: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut pipe_only);
                libc::sigaddset(&mut pipe_only, libc::SIGPIPE);
                let zero = libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                };
                libc::sigtimedwait(&pipe_only, std::ptr::null_mut(), &zero);
            }
        }
        // SAFETY: restores the mask saved in `new`; only this thread's mask changes.
        unsafe {
            libc::pthread_sigmask(libc::SIG_SETMASK, &self.old_mask, std::ptr::null_mut());
        }
    }
}
