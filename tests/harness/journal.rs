//! A real systemd-journald in its own mount namespace, with private tmpfs on /run and
//! /var/log: it neither sees nor changes the machine's journal. Its socket and files are
//! reached through /proc/PID/root; a process started with [`PrivateJournald::enter`] shares
//! its mounts and so logs into it. Killed on drop.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub struct PrivateJournald {
    child: Child,
}

impl PrivateJournald {
    /// Starts journald and returns once it said it is ready (`READY=1` on a notify socket
    /// of our own, as systemd would hear it). Waiting for the socket file is not enough: until
    /// the private tmpfs is mounted, `/proc/PID/root/run/...` is the machine's own /run, where
    /// a stale socket of an earlier journald answers "connection refused".
    pub fn start() -> PrivateJournald {
        static STARTED: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "jit-test-journald-{}-{}",
            std::process::id(),
            STARTED.fetch_add(1, Ordering::Relaxed)
        );
        // An abstract socket: it lives in the network namespace, so journald reaches it
        // from its private mount namespace.
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).expect("abstract name");
        let ready = UnixDatagram::bind_addr(&addr).expect("bind the notify socket");
        let child = Command::new("unshare")
            .args(["-m", "--propagation", "private", "--", "/bin/sh", "-c"])
            .arg(
                "mount -t tmpfs jit-test /run && mount -t tmpfs jit-test /var/log && \
                 exec /lib/systemd/systemd-journald",
            )
            .env("NOTIFY_SOCKET", format!("@{name}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start systemd-journald (needs root and util-linux unshare)");
        let journald = PrivateJournald { child };
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut buf = [0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "systemd-journald (pid {}) did not send READY=1 within 20 s",
                journald.pid()
            );
            ready.set_read_timeout(Some(left)).expect("set a timeout");
            if let Ok(n) = ready.recv(&mut buf) {
                if String::from_utf8_lossy(&buf[..n])
                    .lines()
                    .any(|l| l == "READY=1")
                {
                    break;
                }
            }
        }
        assert!(
            journald.socket().exists(),
            "journald is ready but its socket is missing"
        );
        journald
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A command prefix that runs a program inside this journald's mount namespace.
    pub fn enter(&self) -> Vec<String> {
        vec![
            "nsenter".into(),
            "-t".into(),
            self.pid().to_string(),
            "-m".into(),
            "--".into(),
        ]
    }

    pub fn root(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root", self.child.id()))
    }

    pub fn socket(&self) -> PathBuf {
        self.root().join("run/systemd/journal/socket")
    }

    /// `journalctl -o json` with `matches` (e.g. `MESSAGE_ID=…`), as parsed entries, waiting
    /// up to 15 s for at least `want` of them (the wait ends as soon as they are there).
    pub fn query(&self, matches: &[String], want: usize) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let out = Command::new("journalctl")
                .arg("-D")
                .arg(self.root().join("run/log/journal"))
                .args(["-o", "json", "--no-pager"])
                .args(matches)
                .output()
                .expect("run journalctl");
            let entries: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect();
            if entries.len() >= want || Instant::now() > deadline {
                return entries;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for PrivateJournald {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
