//! A real systemd-journald in its own mount namespace, with private tmpfs on /run and
//! /var/log: it neither sees nor changes the machine's journal. Its socket and files are
//! reached through /proc/PID/root; a process started with [`PrivateJournald::enter`] shares
//! its mounts and so logs into it. Killed on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct PrivateJournald {
    child: Child,
}

impl PrivateJournald {
    pub fn start() -> PrivateJournald {
        let child = Command::new("unshare")
            .args(["-m", "--propagation", "private", "--", "/bin/sh", "-c"])
            .arg(
                "mount -t tmpfs jit-test /run && mount -t tmpfs jit-test /var/log && \
                 exec /lib/systemd/systemd-journald",
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start systemd-journald (needs root and util-linux unshare)");
        let journald = PrivateJournald { child };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !journald.socket().exists() {
            assert!(
                Instant::now() < deadline,
                "journald did not create its socket"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
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
    /// up to 5 s for at least `want` of them.
    pub fn query(&self, matches: &[String], want: usize) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(5);
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
