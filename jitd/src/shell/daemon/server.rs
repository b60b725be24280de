//! The Unix socket server. Each connection carries one request. Callers are identified by
//! SO_PEERCRED; connections are bounded in number (in total and per uid, with a share kept
//! free for root, i.e. the PAM module) and in time, so a slow or hostile client never delays
//! others.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jit_proto::frame::{read_frame_bytes, write_frame, DeadlineReader, FrameError};
use jit_proto::peer::{peer_cred, PeerCred};
use jit_proto::{ClientMessage, ErrorCode, Request, Response, MAX_FRAME_BYTES, PROTOCOL_VERSION};

use crate::shell::atomic_file::untrusted_owner_or_mode;
use crate::shell::daemon::identity;
use crate::shell::daemon::rate_limit::{too_many, RateLimiter};
use crate::shell::daemon::service::Service;

/// Time a client has to send its whole request.
const READ_DEADLINE: Duration = Duration::from_secs(5);
/// How long a rate-limited request waits before its refusal.
const TARPIT: Duration = Duration::from_millis(200);
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
        if let Some(problem) = untrusted_owner_or_mode(&meta) {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{} {problem}: it must be owned by jitd's user and writable by nobody else, or anyone could replace the socket",
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
    let limits = Limits {
        total: service.config().max_connections,
        per_uid: service.config().max_connections_per_uid,
        open: Mutex::new((0, HashMap::new())),
    };
    let rate = RateLimiter::default();
    let acceptors = Arc::new(Acceptors {
        listener,
        work: Box::new(
            move |(stream, cred): Connection| match limits.acquire(cred.uid) {
                Some(_slot) => handle_connection(stream, cred, &service, &rate),
                None => refuse_busy(stream),
            },
        ),
        waiting: AtomicUsize::new(0),
    });
    acceptors.run(Lifetime::Permanent);
    Ok(())
}

type Connection = (UnixStream, PeerCred);
type Work = Box<dyn Fn(Connection) + Send + Sync>;

/// Threads kept waiting in accept() once a burst is over; more than this exit.
const MAX_WAITING: usize = 16;

/// Threads that each accept a connection and serve it themselves. Handing an accepted
/// connection to another thread cost one more thread wake-up per request, which on a small
/// (virtual) machine was a good share of a PAM check. A thread that takes the last waiting
/// place starts another before it serves, so one thread is always accepting and a slow client
/// never delays another; the connection limits bound how many threads are busy at once.
struct Acceptors {
    listener: UnixListener,
    work: Work,
    /// Threads in (or on their way into) accept().
    waiting: AtomicUsize,
}

#[derive(Clone, Copy, PartialEq)]
enum Lifetime {
    /// The thread that called `serve`: it never leaves, so the server never stops.
    Permanent,
    /// Leaves after a connection when enough others are waiting.
    Spare,
}

impl Acceptors {
    fn run(self: &Arc<Self>, lifetime: Lifetime) {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        loop {
            let stream = match self.listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    eprintln!("jitd: accept failed: {e}");
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
            };
            if self.waiting.fetch_sub(1, Ordering::SeqCst) == 1 {
                self.spawn();
            }
            if let Ok(cred) = peer_cred(&stream) {
                (self.work)((stream, cred));
            }
            let back = match lifetime {
                Lifetime::Permanent => {
                    self.waiting.fetch_add(1, Ordering::SeqCst);
                    true
                }
                Lifetime::Spare => self
                    .waiting
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                        (n < MAX_WAITING).then_some(n + 1)
                    })
                    .is_ok(),
            };
            if !back {
                return;
            }
        }
    }

    fn spawn(self: &Arc<Self>) {
        let me = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("conn".into())
            .spawn(move || me.run(Lifetime::Spare));
        if let Err(e) = spawned {
            // The connection in hand is still served; its thread accepts again afterwards.
            eprintln!("jitd: cannot start a connection thread: {e}");
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

fn handle_connection(
    mut stream: UnixStream,
    cred: PeerCred,
    service: &Service,
    rate: &RateLimiter,
) {
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
        Ok(body) => answer(&body, cred, service, rate),
    };
    let _ = stream.set_write_timeout(Some(WRITE_DEADLINE));
    if let Err(FrameError::TooLarge(n)) = write_frame(&mut stream, &response) {
        // Never silence: the caller hears that the answer did not fit.
        let _ = write_frame(
            &mut stream,
            &error(
                ErrorCode::Internal,
                format!("the answer ({n} bytes) is larger than one frame ({MAX_FRAME_BYTES} bytes); this is a jitd bug, please report it"),
            ),
        );
    }
}

/// Reads one frame's body as a request, or the error answer a client gets for it. Whatever a
/// peer sends reaches this (the fuzz target `frame` feeds it arbitrary bytes).
pub fn decode(body: &[u8]) -> Result<ClientMessage, Response> {
    // Every PAM check comes through here: a request of this version is read once. Only one
    // that does not read, or names another version, is read again below for a clear answer
    // (parsing into a `Value` first, every time, was a third of the decoding's cost).
    if let Ok(msg) = serde_json::from_slice::<ClientMessage>(body) {
        if msg.v == PROTOCOL_VERSION {
            return Ok(msg);
        }
    }
    // Look at the version before the shape, so an old or new client gets a clear answer.
    let version = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("v").and_then(|v| v.as_u64()));
    match version {
        None => return Err(error(ErrorCode::BadRequest, "malformed request: expected a JSON object with a protocol version \"v\"")),
        Some(v) if v != u64::from(PROTOCOL_VERSION) => {
            return Err(error(
                ErrorCode::UnsupportedVersion,
                format!("protocol version {v} is not supported (jitd speaks {PROTOCOL_VERSION}); use matching jit tools"),
            ))
        }
        Some(_) => {}
    }
    serde_json::from_slice(body)
        .map_err(|e| error(ErrorCode::BadRequest, format!("malformed request: {e}")))
}

fn answer(body: &[u8], cred: PeerCred, service: &Service, rate: &RateLimiter) -> Response {
    let msg = match decode(body) {
        Ok(m) => m,
        Err(refusal) => return refusal,
    };
    if cred.uid != 0 && changes_state(&msg.request) {
        if let Err(wait) = rate.take(cred.uid, Instant::now()) {
            // The refusal itself is slowed down: a client looping on it would otherwise spin
            // at full speed, taking the CPU that everyone's checks need. Only this
            // connection's thread waits (and one user holds at most max_connections_per_uid).
            std::thread::sleep(TARPIT);
            return error(ErrorCode::Busy, too_many(wait));
        }
    }
    let actor = match &msg.request {
        Request::Check(_)
        | Request::OpenSession(_)
        | Request::CloseSession(_)
        | Request::Passed(_)
        | Request::LoginWait(_)
        | Request::LoginStatus { .. }
        | Request::LoginAbandon { .. } => identity::uid_only(cred.uid),
        _ => match identity::actor_for_uid(cred.uid) {
            Ok(a) => a,
            Err(e) => return error(ErrorCode::Forbidden, e),
        },
    };
    service.handle(&actor, cred.pid, msg.request)
}

/// Requests that make jitd write (a record, the audit log): what a user could flood with.
fn changes_state(request: &Request) -> bool {
    match request {
        Request::Submit(_)
        | Request::Grant { .. }
        | Request::Approve { .. }
        | Request::Deny { .. }
        | Request::Revoke { .. }
        | Request::Cancel { .. }
        | Request::Done { .. }
        | Request::Extend { .. }
        | Request::Review { .. }
        | Request::Passed(_)
        | Request::LoginWait(_)
        | Request::LoginAbandon { .. }
        | Request::FleetApprove { .. }
        | Request::FleetGc { .. }
        | Request::Reload => true,
        // A waiting login's poll only reads: never rate limited as a change, whoever asks.
        Request::Check(_)
        | Request::LoginStatus { .. }
        | Request::OpenSession(_)
        | Request::CloseSession(_)
        | Request::Show { .. }
        | Request::Metrics
        | Request::FleetStatus
        | Request::Replay { .. }
        | Request::List { .. } => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::{mpsc, Barrier};

    /// The version is looked at whichever way a body is read: this version's request is
    /// decoded, another version's gets its own answer even when its shape is one jitd knows,
    /// and a body that is not a request says so.
    #[test]
    fn requests_are_decoded_and_other_versions_told_apart_from_garbage() {
        let ours = serde_json::to_vec(&ClientMessage::new(Request::Metrics)).unwrap();
        assert_eq!(decode(&ours).unwrap().request, Request::Metrics);
        let mut theirs: serde_json::Value = serde_json::from_slice(&ours).unwrap();
        theirs["v"] = serde_json::json!(PROTOCOL_VERSION + 1);
        let code = |body: &[u8]| match decode(body) {
            Err(Response::Error { code, .. }) => code,
            other => panic!("{}: {other:?}", String::from_utf8_lossy(body)),
        };
        assert_eq!(
            code(&serde_json::to_vec(&theirs).unwrap()),
            ErrorCode::UnsupportedVersion
        );
        theirs["v"] = serde_json::json!(u64::from(u32::MAX) + 1);
        assert_eq!(
            code(&serde_json::to_vec(&theirs).unwrap()),
            ErrorCode::UnsupportedVersion
        );
        assert_eq!(code(b"{\"op\":\"metrics\"}"), ErrorCode::BadRequest);
        assert_eq!(code(b"not json"), ErrorCode::BadRequest);
        let mut unknown: serde_json::Value = serde_json::from_slice(&ours).unwrap();
        unknown["op"] = serde_json::json!("no_such_request");
        assert_eq!(
            code(&serde_json::to_vec(&unknown).unwrap()),
            ErrorCode::BadRequest
        );
    }

    /// Whoever can write the socket's directory can put their own socket in jitd's place and
    /// answer pam_jit (which trusts only a root peer, but the CLIs' users would be misled):
    /// such a directory is refused, as is one owned by someone else.
    #[test]
    fn a_socket_directory_others_can_write_or_own_is_refused() {
        let dir = std::env::temp_dir().join(format!("jitd-sockdir-test-{}", std::process::id()));
        for (mode, owner, says) in [
            (0o777, 0, "writable by others"),
            (0o775, 0, "writable by its group"),
            (0o755, 65534, "owned by uid 65534"),
        ] {
            fs::create_dir_all(&dir).unwrap();
            fs::set_permissions(&dir, fs::Permissions::from_mode(mode)).unwrap();
            std::os::unix::fs::chown(&dir, Some(owner), None).unwrap();
            let err = bind(&dir.join("s.sock")).unwrap_err();
            fs::remove_dir_all(&dir).unwrap();
            let text = err.to_string();
            assert!(
                text.contains(says) && text.contains("replace the socket"),
                "{text}"
            );
        }
    }

    /// Eight connections whose requests all wait for each other finish only if each got a
    /// thread of its own at once; a second batch is served by the threads of the first.
    #[test]
    fn every_connection_gets_its_own_thread_and_threads_are_reused() {
        let dir = std::env::temp_dir().join(format!("jitd-server-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        let _ = fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        let barrier = Arc::new(Barrier::new(8));
        let names = Arc::new(Mutex::new(HashSet::new()));
        let (done, finished) = mpsc::channel();
        let (b, n) = (Arc::clone(&barrier), Arc::clone(&names));
        let done = Mutex::new(done);
        let acceptors = Arc::new(Acceptors {
            listener,
            work: Box::new(move |_: Connection| {
                b.wait();
                n.lock().unwrap().insert(std::thread::current().id());
                done.lock().unwrap().send(()).unwrap();
            }),
            waiting: AtomicUsize::new(0),
        });
        let a = Arc::clone(&acceptors);
        std::thread::spawn(move || a.run(Lifetime::Permanent));
        for round in 1..=2 {
            let clients: Vec<UnixStream> = (0..8)
                .map(|_| UnixStream::connect(&path).unwrap())
                .collect();
            for _ in 0..8 {
                finished
                    .recv_timeout(Duration::from_secs(10))
                    .expect("a connection waited for another's thread");
            }
            drop(clients);
            let threads = names.lock().unwrap().len();
            assert!(
                (8..=9).contains(&threads),
                "round {round}: {threads} threads served 8 connections each round"
            );
            // Let every thread get back to accept() before the next round: the eight that
            // served, and the spare the last of them started.
            let deadline = Instant::now() + Duration::from_secs(5);
            while acceptors.waiting.load(Ordering::SeqCst) < 9 {
                assert!(
                    Instant::now() < deadline,
                    "threads did not return to accept"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        let _ = fs::remove_dir_all(&dir);
    }
}
