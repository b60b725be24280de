//! A blocking client with one deadline for connect + write + read together, which refuses to
//! trust a peer that is not root.

use std::fmt;
use std::io;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::frame::{read_frame, write_frame, DeadlineReader, FrameError};
use crate::message::{ClientMessage, Request, Response};
use crate::peer::peer_cred;

#[derive(Debug)]
pub enum ClientError {
    /// No daemon is listening at the path (not running, or wrong `--socket`).
    NotRunning(PathBuf, io::Error),
    /// The deadline passed before the answer arrived.
    TimedOut(Duration),
    /// The socket is served by a process that is not root: its answer is not trusted.
    UntrustedPeer(u32),
    Protocol(FrameError),
    Io(io::Error),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::NotRunning(p, e) => write!(
                f,
                "cannot reach jitd at {}: {e} (is jitd running? see `systemctl status jitd`, or pass --socket)",
                p.display()
            ),
            ClientError::TimedOut(d) => {
                write!(f, "jitd did not answer within {} ms", d.as_millis())
            }
            ClientError::UntrustedPeer(uid) => write!(
                f,
                "the socket is served by uid {uid}, not root: refusing to trust its answer"
            ),
            ClientError::Protocol(e) => write!(f, "protocol error talking to jitd: {e}"),
            ClientError::Io(e) => write!(f, "error talking to jitd: {e}"),
        }
    }
}

impl std::error::Error for ClientError {}

pub struct Client {
    path: PathBuf,
    timeout: Duration,
    require_root_peer: bool,
}

impl Client {
    pub fn new(path: impl AsRef<Path>, timeout: Duration) -> Self {
        Client {
            path: path.as_ref().to_path_buf(),
            timeout,
            require_root_peer: true,
        }
    }

    /// Only for tests of the daemon run unprivileged; every shipped caller keeps the check.
    pub fn allow_non_root_peer(mut self) -> Self {
        self.require_root_peer = false;
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sends one request and waits for its response, all within the client's timeout.
    pub fn call(&self, request: Request) -> Result<Response, ClientError> {
        let deadline = Instant::now() + self.timeout;
        let mut stream = self.connect(deadline)?;
        let cred = peer_cred(&stream).map_err(ClientError::Io)?;
        if self.require_root_peer && cred.uid != 0 {
            return Err(ClientError::UntrustedPeer(cred.uid));
        }
        stream
            .set_write_timeout(Some(self.remaining(deadline)?))
            .map_err(ClientError::Io)?;
        write_frame(&mut stream, &ClientMessage::new(request)).map_err(|e| self.frame_err(e))?;
        // read_frame may read several times; each read is re-armed with what is left, so a
        // peer that trickles bytes cannot stretch the single deadline.
        let mut reader = DeadlineReader::new(&stream, deadline);
        read_frame(&mut reader).map_err(|e| self.frame_err(e))
    }

    /// Sends one request without waiting for its answer (a report nobody must wait on): the
    /// connect and the write stay within the client's timeout, and the answer is never read.
    pub fn send(&self, request: Request) -> Result<(), ClientError> {
        let deadline = Instant::now() + self.timeout;
        let mut stream = self.connect(deadline)?;
        let cred = peer_cred(&stream).map_err(ClientError::Io)?;
        if self.require_root_peer && cred.uid != 0 {
            return Err(ClientError::UntrustedPeer(cred.uid));
        }
        stream
            .set_write_timeout(Some(self.remaining(deadline)?))
            .map_err(ClientError::Io)?;
        write_frame(&mut stream, &ClientMessage::new(request)).map_err(|e| self.frame_err(e))
    }

    fn remaining(&self, deadline: Instant) -> Result<Duration, ClientError> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(ClientError::TimedOut(self.timeout))
        } else {
            Ok(left)
        }
    }

    fn frame_err(&self, e: FrameError) -> ClientError {
        match e {
            FrameError::Io(ref io)
                if matches!(
                    io.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                ClientError::TimedOut(self.timeout)
            }
            other => ClientError::Protocol(other),
        }
    }

    /// Connects without ever blocking past the deadline: a stopped daemon whose listen backlog
    /// is full makes a blocking connect hang, so connect non-blocking and retry on EAGAIN.
    fn connect(&self, deadline: Instant) -> Result<UnixStream, ClientError> {
        loop {
            match connect_nonblocking(&self.path) {
                Ok(s) => {
                    s.set_nonblocking(false).map_err(ClientError::Io)?;
                    return Ok(s);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if Instant::now() >= deadline {
                        return Err(ClientError::TimedOut(self.timeout));
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(e) => return Err(ClientError::NotRunning(self.path.clone(), e)),
            }
        }
    }
}

fn connect_nonblocking(path: &Path) -> io::Result<UnixStream> {
    use std::os::fd::FromRawFd;
    use std::os::unix::ffi::OsStrExt;

    let bytes = path.as_os_str().as_bytes();
    // SAFETY: sockaddr_un is plain old data; all-zero is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    if bytes.len() >= addr.sun_path.len() || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "socket path too long or contains NUL",
        ));
    }
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (dst, src) in addr.sun_path.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    // SAFETY: plain socket(2) call; the result is checked before use.
    let fd = unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh socket we own; UnixStream takes ownership and closes it on drop.
    let stream = unsafe { UnixStream::from_raw_fd(fd) };
    let len = (std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1) as libc::socklen_t;
    // SAFETY: `addr` is an initialised sockaddr_un and `len` does not exceed its size.
    let rc = unsafe { libc::connect(fd, (&addr as *const libc::sockaddr_un).cast(), len) };
    if rc != 0 {
        let err = io::Error::last_os_error();
        // A Unix stream connect either completes or fails at once; EAGAIN means the backlog
        // is full, which the caller retries until its deadline.
        return Err(err);
    }
    Ok(stream)
}
