//! Driving the real pam_jit.so through the real libpam, and the stand-ins for jitd that the
//! real daemon cannot play (a peer answering garbage, a peer that is not root).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jit_proto::frame::{read_frame, write_frame};
use jit_proto::{ClientMessage, Request, RequestView, Response};

use crate::{ok, Daemon, TempDir};

// ---------------------------------------------------------------------------------------------
// The module under test

/// Absolute path of the freshly built `libpam_jit.so` (built once per test binary: `cargo
/// test` does not rebuild a cdylib that a test only loads by path).
pub fn module_path() -> PathBuf {
    let path = crate::bin("libpam_jit.so");
    assert!(path.exists(), "{} was not built", path.display());
    path
}

// ---------------------------------------------------------------------------------------------
// libpam, in process

pub const PAM_SUCCESS: c_int = 0;
pub const PAM_PERM_DENIED: c_int = 6;
pub const PAM_SESSION_ERR: c_int = 14;
const PAM_TTY: c_int = 3;
const PAM_RHOST: c_int = 4;
const PAM_RUSER: c_int = 8;

#[repr(C)]
struct PamMessage {
    msg_style: c_int,
    msg: *const c_char,
}

#[repr(C)]
struct PamResponse {
    resp: *mut c_char,
    resp_retcode: c_int,
}

#[repr(C)]
struct PamConv {
    conv: extern "C" fn(c_int, *mut *const PamMessage, *mut *mut PamResponse, *mut c_void) -> c_int,
    appdata_ptr: *mut c_void,
}

#[repr(C)]
struct PamHandleT {
    _private: [u8; 0],
}

#[link(name = "pam")]
extern "C" {
    fn pam_start_confdir(
        service: *const c_char,
        user: *const c_char,
        conv: *const PamConv,
        confdir: *const c_char,
        pamh: *mut *mut PamHandleT,
    ) -> c_int;
    fn pam_set_item(pamh: *mut PamHandleT, item_type: c_int, item: *const c_void) -> c_int;
    fn pam_acct_mgmt(pamh: *mut PamHandleT, flags: c_int) -> c_int;
    fn pam_open_session(pamh: *mut PamHandleT, flags: c_int) -> c_int;
    fn pam_close_session(pamh: *mut PamHandleT, flags: c_int) -> c_int;
    fn pam_end(pamh: *mut PamHandleT, status: c_int) -> c_int;
}

/// Records every message the module sends; answers with empty responses.
extern "C" fn record_conversation(
    num_msg: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    appdata: *mut c_void,
) -> c_int {
    let result = std::panic::catch_unwind(|| {
        let n = usize::try_from(num_msg).unwrap_or(0);
        // SAFETY: appdata is the Mutex<Vec<String>> owned by the Pam that registered this
        // conversation, alive until pam_end.
        let sink = unsafe { &*(appdata as *const Mutex<Vec<String>>) };
        for i in 0..n {
            // SAFETY: libpam passes `num_msg` valid message pointers (Linux-PAM layout).
            let text = unsafe { CStr::from_ptr((**msg.add(i)).msg) };
            sink.lock()
                .unwrap()
                .push(text.to_string_lossy().into_owned());
        }
        // SAFETY: calloc'd array of `n` empty responses; libpam (the module) frees it.
        let array = unsafe { libc::calloc(n.max(1), std::mem::size_of::<PamResponse>()) };
        // SAFETY: resp is a valid out pointer given by libpam.
        unsafe { *resp = array.cast() };
    });
    if result.is_ok() {
        PAM_SUCCESS
    } else {
        19 // PAM_CONV_ERR
    }
}

/// A PAM transaction on a service from a private config directory.
pub struct Pam {
    handle: *mut PamHandleT,
    messages: Box<Mutex<Vec<String>>>,
    _conv: Box<PamConv>,
    _items: Vec<CString>,
}

impl Pam {
    pub fn start(confdir: &Path, service: &str, user: &str) -> Pam {
        let messages: Box<Mutex<Vec<String>>> = Box::default();
        let conv = Box::new(PamConv {
            conv: record_conversation,
            appdata_ptr: (&*messages as *const Mutex<Vec<String>>) as *mut c_void,
        });
        let service = CString::new(service).unwrap();
        let user = CString::new(user).unwrap();
        let dir = CString::new(confdir.to_str().unwrap()).unwrap();
        let mut handle = std::ptr::null_mut();
        // SAFETY: all strings are valid for the call (libpam copies them); `conv` is boxed and
        // kept alive in the returned Pam until pam_end.
        let rc = unsafe {
            pam_start_confdir(
                service.as_ptr(),
                user.as_ptr(),
                &*conv,
                dir.as_ptr(),
                &mut handle,
            )
        };
        assert_eq!(rc, PAM_SUCCESS, "pam_start_confdir");
        Pam {
            handle,
            messages,
            _conv: conv,
            _items: Vec::new(),
        }
    }

    fn set(&mut self, item: c_int, value: &str) {
        let value = CString::new(value).unwrap();
        // SAFETY: handle is live; libpam copies the string.
        let rc = unsafe { pam_set_item(self.handle, item, value.as_ptr().cast()) };
        assert_eq!(rc, PAM_SUCCESS, "pam_set_item");
        self._items.push(value);
    }

    pub fn rhost(mut self, v: &str) -> Pam {
        self.set(PAM_RHOST, v);
        self
    }

    pub fn ruser(mut self, v: &str) -> Pam {
        self.set(PAM_RUSER, v);
        self
    }

    pub fn tty(mut self, v: &str) -> Pam {
        self.set(PAM_TTY, v);
        self
    }

    pub fn acct_mgmt(&mut self) -> c_int {
        // SAFETY: handle is live for the life of self.
        unsafe { pam_acct_mgmt(self.handle, 0) }
    }

    pub fn open_session(&mut self) -> c_int {
        // SAFETY: handle is live for the life of self.
        unsafe { pam_open_session(self.handle, 0) }
    }

    pub fn close_session(&mut self) -> c_int {
        // SAFETY: handle is live for the life of self.
        unsafe { pam_close_session(self.handle, 0) }
    }

    /// Lines the module showed the user.
    pub fn messages(&self) -> Vec<String> {
        self.messages.lock().unwrap().clone()
    }
}

impl Drop for Pam {
    fn drop(&mut self) {
        // SAFETY: handle came from pam_start_confdir and is ended exactly once.
        unsafe { pam_end(self.handle, PAM_SUCCESS) };
    }
}

/// A private PAM config directory holding one service whose account and session stacks are
/// pam_jit alone, with `args`.
pub struct ServiceDir {
    dir: TempDir,
}

impl ServiceDir {
    pub fn new(service: &str, args: &str) -> ServiceDir {
        let dir = TempDir::new("pamconf");
        let module = module_path();
        let text = format!(
            "account required {m} {args}\nsession required {m} {args}\n",
            m = module.display()
        );
        std::fs::write(dir.path().join(service), text).unwrap();
        ServiceDir { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Runs `f` and returns its result with how long it took.
pub fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed())
}

// ---------------------------------------------------------------------------------------------
// Stand-ins for jitd

/// A root listener in this test process that answers every request with `answer(request)` and
/// records what it was asked.
pub struct FakeJitd {
    dir: TempDir,
    seen: Arc<Mutex<Vec<Request>>>,
    done: Arc<AtomicBool>,
}

impl FakeJitd {
    pub fn answering(answer: fn(&Request) -> Response) -> FakeJitd {
        Self::serving(move |stream, seen| {
            let Ok(msg) = read_frame::<_, ClientMessage>(stream) else {
                return;
            };
            let reply = answer(&msg.request);
            seen.lock().unwrap().push(msg.request);
            let _ = write_frame(stream, &reply);
        })
    }

    /// Answers every connection with these raw bytes, after reading the request.
    pub fn raw(bytes: &'static [u8]) -> FakeJitd {
        Self::serving(move |stream, _| {
            let _: Result<ClientMessage, _> = read_frame(stream);
            let _ = stream.write_all(bytes);
        })
    }

    fn serving(
        serve: impl Fn(&mut std::os::unix::net::UnixStream, &Mutex<Vec<Request>>) + Send + 'static,
    ) -> FakeJitd {
        let dir = TempDir::new("fake");
        let listener = UnixListener::bind(dir.path().join("jitd.sock")).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let done = Arc::new(AtomicBool::new(false));
        let (record, finished) = (seen.clone(), done.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if finished.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(mut stream) = stream else { return };
                serve(&mut stream, &record);
            }
        });
        FakeJitd { dir, seen, done }
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("jitd.sock")
    }

    pub fn requests(&self) -> Vec<Request> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for FakeJitd {
    fn drop(&mut self) {
        // Wake the accept loop so the thread ends and the listener closes.
        self.done.store(true, Ordering::SeqCst);
        let _ = std::os::unix::net::UnixStream::connect(self.socket());
    }
}

/// A listener in a separate process (python3), run as `run_as` (None: root). It answers every
/// request with an `allowed` frame, so a test that still sees a denial proves the module
/// checked who the peer is, not what it said.
pub struct PeerProcess {
    dir: TempDir,
    child: Child,
}

const PEER_PY: &str = r#"
import socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1]); s.listen(16)
print("ready", flush=True)
body = b'{"status":"allowed","grant_id":"from-an-impostor"}'
while True:
    c, _ = s.accept()
    try:
        n = struct.unpack(">I", c.recv(4))[0]
        c.recv(n)
        c.sendall(struct.pack(">I", len(body)) + body)
    except Exception:
        pass
    c.close()
"#;

impl PeerProcess {
    pub fn start(run_as: Option<&str>) -> PeerProcess {
        let dir = TempDir::new("peer");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let sock = dir.path().join("jitd.sock");
        let mut cmd = match run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--", "/usr/bin/python3"]);
                c
            }
            None => Command::new("/usr/bin/python3"),
        };
        let mut child = cmd
            .args(["-c", PEER_PY])
            .arg(&sock)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start python3 peer");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "python3 peer did not start");
        PeerProcess { dir, child }
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("jitd.sock")
    }
}

impl Drop for PeerProcess {
    fn drop(&mut self) {
        signal_tree(self.child.id(), libc::SIGKILL);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Signals `pid` and its direct children (runuser forks the real program).
fn signal_tree(pid: u32, sig: c_int) {
    let children =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    for child in children
        .split_whitespace()
        .filter_map(|c| c.parse::<i32>().ok())
    {
        // SAFETY: kill(2) on a pid we started (or its child); harmless if it is gone.
        unsafe { libc::kill(child, sig) };
    }
    // SAFETY: as above.
    unsafe { libc::kill(pid as i32, sig) };
}

// ---------------------------------------------------------------------------------------------
// The real jitd, and files in global places

/// `jitd grant USER --for DUR --reason test WHAT...` as root; returns the new grant's id.
pub fn grant(jitd: &Daemon, user: &str, duration: &str, what: &[&str]) -> String {
    let mut args = vec!["grant", user, "--for", duration, "--reason", "test"];
    args.extend_from_slice(what);
    ok(jitd.jitd(&args))
}

pub fn revoke(jitd: &Daemon, id: &str) {
    ok(jitd.jitd(&["revoke", id, "--reason", "test over"]));
}

/// Polls `jitd show ID --json` until `pred` holds on the request, or panics after `within`.
pub fn wait_for_view(
    jitd: &Daemon,
    id: &str,
    within: Duration,
    pred: impl Fn(&RequestView) -> bool,
) -> RequestView {
    let deadline = Instant::now() + within;
    loop {
        let view: RequestView = serde_json::from_value(jitd.show(id)).unwrap();
        if pred(&view) {
            return view;
        }
        assert!(Instant::now() < deadline, "gave up waiting on {view:#?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A file this test placed somewhere global (/etc/pam.d, /etc/sudoers.d); removed on drop.
pub struct PlacedFile(pub PathBuf);

impl PlacedFile {
    /// Appears whole, with its final mode, in one rename: sudo's `#includedir` and every
    /// jitd's `visudo -c` (other tests' daemons run it on the real configuration) must never
    /// see it half-written or with a mode sudo calls unsafe. The temp name has a dot, which
    /// `#includedir` skips.
    pub fn write(path: impl Into<PathBuf>, text: &str, mode: u32) -> PlacedFile {
        let path = path.into();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let temp = path.with_file_name(format!(".{name}.placing"));
        std::fs::write(&temp, text).unwrap();
        std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(mode)).unwrap();
        std::fs::rename(&temp, &path).unwrap();
        PlacedFile(path)
    }
}

impl Drop for PlacedFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

// ---------------------------------------------------------------------------------------------
// syslog

const SYSLOG_PY: &str = r#"
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("/dev/log")
out = open(sys.argv[1], "a")
open(sys.argv[1] + ".ready", "w").close()
while True:
    out.write(json.dumps(s.recv(65536).decode("utf-8", "replace")) + "\n")
    out.flush()
"#;

const SYSLOG_SH: &str = r#"
mount -t tmpfs -o mode=755 tmpfs /dev && mknod -m 666 /dev/null c 1 3 || exit 97
log="$1"; shift
/usr/bin/python3 -c "$SYSLOG_PY" "$log" &
listener=$!
i=0; while [ ! -e "$log.ready" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done
pamtester "$@"
rc=$?
sleep 0.2
kill $listener
exit $rc
"#;

/// Runs `pamtester ARGS` in a private mount namespace whose /dev/log is a socket this test
/// reads (the machine has no syslog daemon, and the real /dev/log is left alone). Returns
/// pamtester's output and the raw syslog datagrams (`<PRI>... message`).
pub fn pamtester_with_syslog(args: &[&str]) -> (std::process::Output, Vec<String>) {
    let dir = TempDir::new("syslog");
    let log = dir.path().join("syslog.jsonl");
    let out = Command::new("unshare")
        .args([
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            SYSLOG_SH,
            "sh",
        ])
        .arg(&log)
        .args(args)
        .env("SYSLOG_PY", SYSLOG_PY)
        .stdin(Stdio::null())
        .output()
        .expect("run unshare");
    assert_ne!(
        out.status.code(),
        Some(97),
        "cannot set up a private /dev: {out:?}"
    );
    let lines = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<String>(l).unwrap())
        .collect();
    (out, lines)
}
