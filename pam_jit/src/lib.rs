//! `pam_jit.so`: lets sshd logins and sudo through only under an active jit grant.
//!
//! This file is the thin C boundary: each hook wraps the real PAM handle in [`LibPam`] and hands
//! it to the core ([`account`], [`session`]), which is generic over [`host::Host`] and
//! [`daemon::Daemon`] so every decision is unit-tested with a scripted host. `pam_hooks!` wraps
//! each hook in `catch_unwind` (a panic becomes PAM_ABORT, which fails the stack closed), and the
//! lints below keep panics out of this crate in the first place.
//!
//! The module starts no thread and no child; each call to jitd is bounded by a single deadline
//! for connect + write + read. A login that waits for approval (`wait=`) polls jitd, each
//! poll so bounded, for at most its wait.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// Tests may panic: that is how they fail.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod account;
mod args;
mod authenticate;
mod context;
mod daemon;
mod deny_message;
/// Public for the benchmark, which times these very lookups (bench/src/pam_cost.rs).
pub mod groups;
mod handle;
mod host;
mod kind;
mod log_line;
mod login_wait;
mod process;
mod reply;
mod session;
mod syslog;
mod waiting;

#[cfg(test)]
mod man_page_tests;
#[cfg(test)]
mod script;

use std::ffi::CStr;

use pam::constants::{PamFlag, PamResultCode};
use pam::module::{PamHandle, PamHooks};

use crate::daemon::SocketDaemon;
use crate::handle::LibPam;
use crate::waiting::ClientWatch;

struct PamJit;
pam::pam_hooks!(PamJit);

impl PamHooks for PamJit {
    fn acct_mgmt(pamh: &mut PamHandle, args: Vec<&CStr>, _flags: PamFlag) -> PamResultCode {
        account::check(
            &LibPam::new(pamh),
            &SocketDaemon,
            &ClientWatch::new(),
            &args,
        )
    }

    fn sm_authenticate(pamh: &mut PamHandle, args: Vec<&CStr>, _flags: PamFlag) -> PamResultCode {
        authenticate::authenticate(&LibPam::new(pamh), &args)
    }

    /// Nothing to set; sshd ends a login whose pam_setcred fails after keyboard-interactive,
    /// so an auth line of pam_jit must not return PAM_IGNORE here (a stack of nothing but
    /// ignores fails).
    fn sm_setcred(_pamh: &mut PamHandle, _args: Vec<&CStr>, _flags: PamFlag) -> PamResultCode {
        PamResultCode::PAM_SUCCESS
    }

    fn sm_open_session(pamh: &mut PamHandle, args: Vec<&CStr>, _flags: PamFlag) -> PamResultCode {
        session::open(
            &LibPam::new(pamh),
            &SocketDaemon,
            &args,
            process::Origin::current(),
        )
    }

    fn sm_close_session(pamh: &mut PamHandle, args: Vec<&CStr>, _flags: PamFlag) -> PamResultCode {
        session::close(
            &LibPam::new(pamh),
            &SocketDaemon,
            &args,
            process::Origin::current(),
        )
    }
}
