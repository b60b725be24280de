//! A tiny real HTTP/1.1 server on 127.0.0.1 for webhook tests: it records every request and
//! answers as told (a status, or hanging until it is dropped). Only loopback, only for tests.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How the server answers one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    Status(u16),
    /// Read the request, then say nothing until the server is dropped (at most two minutes).
    Hang,
}

#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }
}

struct Shared {
    requests: Mutex<Vec<Recorded>>,
    plan: Mutex<VecDeque<Reply>>,
    otherwise: Mutex<Reply>,
    stopped: AtomicBool,
}

pub struct HttpServer {
    port: u16,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
    /// Holds `url`, the file a notifier names with `url_file` (root's, mode 600).
    secrets: crate::TempDir,
}

impl HttpServer {
    /// Listens on an ephemeral port of 127.0.0.1 and answers 200 until told otherwise.
    pub fn start() -> HttpServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().expect("local addr").port();
        let shared = Arc::new(Shared {
            requests: Mutex::new(Vec::new()),
            plan: Mutex::new(VecDeque::new()),
            otherwise: Mutex::new(Reply::Status(200)),
            stopped: AtomicBool::new(false),
        });
        let s = Arc::clone(&shared);
        let acceptor = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.stopped.load(Ordering::SeqCst) {
                    return;
                }
                if let Ok(conn) = conn {
                    let s = Arc::clone(&s);
                    std::thread::spawn(move || serve(conn, &s));
                }
            }
        });
        let secrets = crate::TempDir::new("webhook-url");
        let server = HttpServer {
            port,
            shared,
            acceptor: Some(acceptor),
            secrets,
        };
        let file = server.url_file();
        std::fs::write(&file, format!("{}\n", server.url())).expect("write url_file");
        std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .expect("chmod url_file");
        server
    }

    /// A root-only file holding [`HttpServer::url`], as an administrator keeps a webhook URL
    /// (`url_file`): its path stands for a secret, and jitd refuses it inline in a config
    /// file others can read.
    pub fn url_file(&self) -> std::path::PathBuf {
        self.secrets.path().join("url")
    }

    /// The URL to configure, with a path that stands for a secret webhook path.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hooks/T0/B0/path-secret", self.port)
    }

    /// The next requests get these answers, in order; then the standing answer.
    pub fn answer_next(&self, replies: &[Reply]) {
        self.shared.plan.lock().unwrap().extend(replies);
    }

    /// The standing answer.
    pub fn answer_always(&self, reply: Reply) {
        *self.shared.otherwise.lock().unwrap() = reply;
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// Waits up to `within` for requests whose JSON body matches `pick`, and returns them once
    /// there are `n`; panics otherwise.
    pub fn wait_for(
        &self,
        n: usize,
        within: Duration,
        pick: impl Fn(&serde_json::Value) -> bool,
    ) -> Vec<Recorded> {
        let deadline = Instant::now() + within;
        loop {
            let found: Vec<Recorded> = self
                .requests()
                .into_iter()
                .filter(|r| serde_json::from_slice(&r.body).is_ok_and(|v| pick(&v)))
                .collect();
            if found.len() >= n {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "expected {n} matching webhook request(s) within {within:?}; got {:?}",
                self.requests()
                    .iter()
                    .map(|r| String::from_utf8_lossy(&r.body).into_owned())
                    .collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        // Wake the acceptor so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
    }
}

fn serve(conn: TcpStream, shared: &Shared) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let Ok(read_half) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
        .min(1 << 20);
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    shared.requests.lock().unwrap().push(Recorded {
        method,
        path,
        headers,
        body,
    });
    let reply = shared
        .plan
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or(*shared.otherwise.lock().unwrap());
    match reply {
        Reply::Status(code) => {
            let mut conn = conn;
            let _ = write!(
                conn,
                "HTTP/1.1 {code} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
            );
        }
        Reply::Hang => {
            let until = Instant::now() + Duration::from_secs(120);
            while !shared.stopped.load(Ordering::SeqCst) && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}
