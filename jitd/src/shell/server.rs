//! The Unix socket server. Each connection carries one request. Callers are identified by
//! SO_PEERCRED; connections are bounded in number (in total and per uid, with a share kept
//! free for root, i.e. the PAM module) and in time, so a slow or hostile client never delays
//! others.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use jit_proto::frame::{read_frame_bytes, write_frame, DeadlineReader, FrameError};
use jit_proto::peer::{peer_cred, PeerCred};
use jit_proto::{ClientMessage, ErrorCode, Request, Response, PROTOCOL_VERSION};

use crate::shell::identity;
use crate::shell::service::Service;

/// Time a client has to send its whole request.
const READ_DEADLINE: Duration = Duration::from_secs(5);
/// Time a client has to take the answer.
const WRITE_DEADLINE: Duration = Duration::from_secs(5);
/// Connections kept free for root when other users fill the server.
const ROOT_RESERVE: usize = 8;

/// Binds the socket: parent directory root-owned 0755, socket 0666 (any local user may ask;
/// authorisation is by peer credentials). A stale socket from a previous run is replaced;
/// anything else at the path is left alone and reported.
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        if !dir.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(dir)?;
            // The process umask is 077; users must be able to reach the socket.
            fs::set_permissions(dir, fs::Permissions::from_mode(0o755))?;
        }
        let meta = fs::metadata(dir)?;
        if meta.uid() != nix::unistd::geteuid().as_raw() || meta.mode() & 0o022 != 0 {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{} must be owned by jitd's user and writable by nobody else, or anyone could replace the socket",
                    dir.display()
                ),
            ));
        }
    }
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => fs::remove_file(path)?,
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{} exists and is not a socket; remove it or choose another `socket`",
                    path.display()
                ),
            ))
        }
        Err(_) => {}
    }
    let listener = UnixListener::bind(path)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o666))?;
    Ok(listener)
}

struct Limits {
    total: usize,
    per_uid: usize,
    open: Mutex<(usize, HashMap<u32, usize>)>,
}

/// Releases a connection slot when the connection ends, however it ends.
struct Slot<'a> {
    limits: &'a Limits,
    uid: u32,
}

impl Limits {
    fn acquire(&self, uid: u32) -> Option<Slot<'_>> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let per = open.1.get(&uid).copied().unwrap_or(0);
        let allowed = if uid == 0 {
            open.0 < self.total
        } else {
            open.0 < self.total.saturating_sub(ROOT_RESERVE) && per < self.per_uid
        };
        if !allowed {
            return None;
        }
        open.0 += 1;
        *open.1.entry(uid).or_default() += 1;
        Some(Slot { limits: self, uid })
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut open = self.limits.open.lock().unwrap_or_else(|e| e.into_inner());
        open.0 -= 1;
        if let Some(n) = open.1.get_mut(&self.uid) {
            *n -= 1;
            if *n == 0 {
                open.1.remove(&self.uid);
            }
        }
    }
}

pub fn serve(listener: UnixListener, service: Arc<Service>) -> io::Result<()> {
    let limits = Arc::new(Limits {
        total: service.config().max_connections,
        per_uid: service.config().max_connections_per_uid,
        open: Mutex::new((0, HashMap::new())),
    });
    let threads = Threads::new(Arc::new(move |(stream, cred): Connection| {
        match limits.acquire(cred.uid) {
            Some(_slot) => handle_connection(stream, cred, &service),
            None => refuse_busy(stream),
        }
    }));
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                eprintln!("jitd: accept failed: {e}");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let cred = match peer_cred(&stream) {
            Ok(c) => c,
            Err(_) => continue,
        };
        threads.dispatch((stream, cred));
    }
    Ok(())
}

type Connection = (UnixStream, PeerCred);
type Work = Arc<dyn Fn(Connection) + Send + Sync>;

/// How long a connection thread waits for the next connection before it exits.
const IDLE_THREAD_EXIT: Duration = Duration::from_secs(30);

/// Connection threads, reused: spawning a thread per connection (clone, stack mapping, exit)
/// cost more than answering a PAM check. Every connection still gets a thread of its own at
/// once — an idle one, or a new one when none is idle — so a slow client never delays another,
/// and the connection limits bound how many threads are busy.
struct Threads {
    work: Work,
    queue: mpsc::Sender<Connection>,
    waiting: Arc<Mutex<mpsc::Receiver<Connection>>>,
    /// Threads waiting for a connection that no queued connection has been promised to yet.
    idle: Arc<AtomicUsize>,
}

impl Threads {
    fn new(work: Work) -> Threads {
        let (queue, waiting) = mpsc::channel();
        Threads {
            work,
            queue,
            waiting: Arc::new(Mutex::new(waiting)),
            idle: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn dispatch(&self, connection: Connection) {
        // Promise the connection to an idle thread first, so it can never wait in the queue
        // for a thread that is about to exit.
        let connection = if take_one(&self.idle) {
            match self.queue.send(connection) {
                Ok(()) => return,
                Err(mpsc::SendError(c)) => c,
            }
        } else {
            connection
        };
        let (work, waiting, idle) = (
            Arc::clone(&self.work),
            Arc::clone(&self.waiting),
            Arc::clone(&self.idle),
        );
        let spawned = std::thread::Builder::new()
            .name("conn".into())
            .spawn(move || {
                work(connection);
                serve_queued(&work, &waiting, &idle);
            });
        if let Err(e) = spawned {
            eprintln!("jitd: cannot start a connection thread: {e}");
        }
    }
}

/// Takes one from `n` unless it is zero.
fn take_one(n: &AtomicUsize) -> bool {
    n.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1))
        .is_ok()
}

/// A connection thread's life after its first connection: wait for promised connections,
/// exit after [`IDLE_THREAD_EXIT`] without one.
fn serve_queued(work: &Work, waiting: &Mutex<mpsc::Receiver<Connection>>, idle: &AtomicUsize) {
    loop {
        idle.fetch_add(1, Ordering::SeqCst);
        loop {
            let next = waiting
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .recv_timeout(IDLE_THREAD_EXIT);
            match next {
                // The dispatcher took this thread's idle count when it queued the connection.
                Ok(connection) => {
                    work(connection);
                    break;
                }
                // Leave only if no queued connection counts on this thread.
                Err(mpsc::RecvTimeoutError::Timeout) if take_one(idle) => return,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
        }
    }
}

fn refuse_busy(mut stream: UnixStream) {
    let _ = stream.set_write_timeout(Some(Duration::from_millis(200)));
    let _ = write_frame(
        &mut stream,
        &Response::Error {
            code: ErrorCode::Busy,
            message: "jitd is at its connection limit; try again in a moment".into(),
        },
    );
}

fn error(code: ErrorCode, message: impl Into<String>) -> Response {
    Response::Error {
        code,
        message: message.into(),
    }
}

fn handle_connection(mut stream: UnixStream, cred: PeerCred, service: &Service) {
    let response = match read_frame_bytes(&mut DeadlineReader::new(
        &stream,
        Instant::now() + READ_DEADLINE,
    )) {
        Err(FrameError::Truncated) => return,
        Err(FrameError::Io(e))
            if matches!(
                e.kind(),
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
            ) =>
        {
            error(ErrorCode::BadRequest, "timed out waiting for the request")
        }
        Err(e) => error(ErrorCode::BadRequest, e.to_string()),
        Ok(body) => answer(&body, cred, service),
    };
    let _ = stream.set_write_timeout(Some(WRITE_DEADLINE));
    let _ = write_frame(&mut stream, &response);
}

fn answer(body: &[u8], cred: PeerCred, service: &Service) -> Response {
    // Look at the version before the shape, so an old or new client gets a clear answer.
    let version = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("v").and_then(|v| v.as_u64()));
    match version {
        None => return error(ErrorCode::BadRequest, "malformed request: expected a JSON object with a protocol version \"v\""),
        Some(v) if v != u64::from(PROTOCOL_VERSION) => {
            return error(
                ErrorCode::UnsupportedVersion,
                format!("protocol version {v} is not supported (jitd speaks {PROTOCOL_VERSION}); use matching jit tools"),
            )
        }
        Some(_) => {}
    }
    let msg: ClientMessage = match serde_json::from_slice(body) {
        Ok(m) => m,
        Err(e) => return error(ErrorCode::BadRequest, format!("malformed request: {e}")),
    };
    let actor = match &msg.request {
        Request::Check(_) | Request::OpenSession(_) | Request::CloseSession(_) => {
            identity::uid_only(cred.uid)
        }
        _ => match identity::actor_for_uid(cred.uid) {
            Ok(a) => a,
            Err(e) => return error(ErrorCode::Forbidden, e),
        },
    };
    service.handle(&actor, msg.request)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::Barrier;

    fn connection() -> Connection {
        let (ours, _theirs) = UnixStream::pair().unwrap();
        (
            ours,
            PeerCred {
                pid: 1,
                uid: 0,
                gid: 0,
            },
        )
    }

    /// Eight connections that all wait for each other finish only if each got a thread of its
    /// own at once; a later batch is served by the same threads, none new.
    #[test]
    fn every_connection_gets_its_own_thread_and_threads_are_reused() {
        let barrier = Arc::new(Barrier::new(8));
        let names = Arc::new(Mutex::new(HashSet::new()));
        let (done, finished) = mpsc::channel();
        let (b, n) = (Arc::clone(&barrier), Arc::clone(&names));
        let threads = Threads::new(Arc::new(move |_: Connection| {
            b.wait();
            n.lock().unwrap().insert(std::thread::current().id());
            done.send(()).unwrap();
        }));
        for round in 1..=2 {
            for _ in 0..8 {
                threads.dispatch(connection());
            }
            for _ in 0..8 {
                finished
                    .recv_timeout(Duration::from_secs(10))
                    .expect("a connection waited for another's thread");
            }
            assert_eq!(names.lock().unwrap().len(), 8, "round {round}");
            // Let every thread get back to waiting before the next round.
            let deadline = Instant::now() + Duration::from_secs(5);
            while threads.idle.load(Ordering::SeqCst) < 8 {
                assert!(Instant::now() < deadline, "threads did not become idle");
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}
