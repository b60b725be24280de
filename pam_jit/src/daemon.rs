//! How the module reaches jitd: one request, one response, one deadline.

use std::path::Path;
use std::time::Duration;

use jit_proto::{Client, ClientError, Request, Response};

use crate::sigpipe::SigpipeBlocked;

pub trait Daemon {
    fn ask(
        &self,
        socket: &Path,
        timeout: Duration,
        request: Request,
    ) -> Result<Response, ClientError>;
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
        // A daemon that dies between accept and our write would raise SIGPIPE, whose default
        // action kills the host (sudo, sshd's session process); block it for the call.
        let _guard = SigpipeBlocked::new();
        Client::new(socket, timeout).call(request)
    }
}
