//! How the module reaches jitd: one request, one response, one deadline.

use std::path::Path;
use std::time::Duration;

use jit_proto::{Client, ClientError, Request, Response};

/// The longest a report may hold up a login or sudo: it is sent, never waited on.
pub const REPORT_TIMEOUT: Duration = Duration::from_millis(100);

pub trait Daemon {
    fn ask(
        &self,
        socket: &Path,
        timeout: Duration,
        request: Request,
    ) -> Result<Response, ClientError>;
    /// Tells jitd something without waiting for its answer; a failure is the caller's to log.
    fn report(&self, socket: &Path, request: Request) -> Result<(), ClientError>;
}

/// The real daemon behind its Unix socket. [`Client`] refuses a peer that is not uid 0 and
/// keeps connect + write + read within `timeout`.
pub struct SocketDaemon;

impl Daemon for SocketDaemon {
    fn ask(
        &self,
        socket: &Path,
        timeout: Duration,
        request: Request,
    ) -> Result<Response, ClientError> {
        Client::new(socket, timeout).call(request)
    }

    fn report(&self, socket: &Path, request: Request) -> Result<(), ClientError> {
        Client::new(socket, REPORT_TIMEOUT).send(request)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    /// sudo keeps SIGPIPE's default action (terminate). A daemon that dies between accept and
    /// our write must not kill sudo: std's UnixStream writes with MSG_NOSIGNAL, which this
    /// test pins down, so the module needs no signal handling of its own.
    #[test]
    fn writing_to_a_vanished_daemon_fails_instead_of_killing_the_host() {
        // SAFETY: changes this test process's disposition; restored below. If a write raised
        // SIGPIPE, this test binary would die here.
        let previous = unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
        let (mut ours, theirs) = UnixStream::pair().unwrap();
        drop(theirs);
        let result = ours.write_all(b"hello");
        // SAFETY: restores the disposition saved above.
        unsafe { libc::signal(libc::SIGPIPE, previous) };
        assert_eq!(result.unwrap_err().kind(), std::io::ErrorKind::BrokenPipe);
    }
}
