//! A release-built jitd on a private socket, state dir and sudoers dir, with state written
//! before it starts. (The test harness's `Daemon` runs the debug build, whose timings say
//! nothing about the product.)

use std::fs;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jit_proto::{Client, GrantKind, PamContext, Request, Response};
use jit_tests::{unique, TempDir};

/// `target/release/NAME` (or under `CARGO_TARGET_DIR`).
pub fn release(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| jit_tests::workspace_root().join("target"));
    let path = target.join("release").join(name);
    assert!(
        path.exists(),
        "{} is missing: run bench/run, which builds the release binaries",
        path.display()
    );
    path
}

pub struct BenchDaemon {
    dir: TempDir,
    cgroup: String,
    child: Child,
    /// From spawn until the first check was answered: state loaded, host reconciled, serving.
    pub cold_start: Duration,
}

impl BenchDaemon {
    /// `prepare(state_dir, sudoers_dir)` runs before jitd starts; `extra` is appended to the
    /// configuration.
    pub fn start(extra: &str, prepare: impl FnOnce(&Path, &Path)) -> BenchDaemon {
        let dir = TempDir::new("bench");
        let state = dir.path().join("state");
        let sudoers = dir.path().join("sudoers.d");
        fs::create_dir_all(&state).expect("state dir");
        fs::create_dir_all(&sudoers).expect("sudoers dir");
        let cgroup = unique("jit-bench-");
        fs::write(
            dir.path().join("jitd.toml"),
            format!(
                "socket = \"{0}/run/jitd.sock\"\nstate_dir = \"{1}\"\nsudoers_dir = \"{2}\"\ncgroup = \"{cgroup}\"\n{extra}\n",
                dir.path().display(),
                state.display(),
                sudoers.display()
            ),
        )
        .expect("config");
        prepare(&state, &sudoers);
        // What `prepare` wrote (up to a million files) is flushed before the clock starts:
        // otherwise its writeback competes with the start being timed, and the larger the
        // state, the more (it made a long history look 1.2× slower to start than none).
        let synced = Command::new("sync").status().expect("run sync");
        assert!(synced.success(), "sync failed: {synced}");
        let log = fs::File::create(dir.path().join("jitd.log")).expect("log");
        let start = Instant::now();
        let child = Command::new(release("jitd"))
            .arg("serve")
            .arg("--config")
            .arg(dir.path().join("jitd.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start jitd");
        let mut d = BenchDaemon {
            dir,
            cgroup,
            child,
            cold_start: Duration::ZERO,
        };
        d.wait_serving(start);
        d
    }

    fn wait_serving(&mut self, start: Instant) {
        let socket = self.socket();
        let probe = Request::Check(context("root", GrantKind::Ssh));
        loop {
            if UnixStream::connect(&socket).is_ok() {
                if let Ok(Response::Allowed { .. } | Response::Denied { .. }) =
                    Client::new(&socket, Duration::from_secs(120)).call(probe.clone())
                {
                    self.cold_start = start.elapsed();
                    return;
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("jitd exited with {status} at start:\n{}", self.log());
            }
            assert!(
                start.elapsed() < Duration::from_secs(300),
                "jitd did not start:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("run/jitd.sock")
    }

    pub fn sudoers_dir(&self) -> PathBuf {
        self.dir.path().join("sudoers.d")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("jitd.log")).unwrap_or_default()
    }

    /// `jitd ARGS` (release CLI) as root against this daemon.
    pub fn jitd(&self, args: &[&str]) -> std::process::Output {
        Command::new(release("jitd"))
            .arg("--socket")
            .arg(self.socket())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run jitd CLI")
    }

    /// CPU time all of jitd's threads have run, from /proc/PID/task/*/schedstat.
    pub fn cpu_time(&self) -> Duration {
        let tasks = fs::read_dir(format!("/proc/{}/task", self.pid()));
        let ns: u64 = tasks
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|t| fs::read_to_string(t.path().join("schedstat")).ok())
            .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            .sum();
        Duration::from_nanos(ns)
    }

    /// Resident and peak resident memory in MiB, from /proc/PID/status.
    pub fn memory_mib(&self) -> (f64, f64) {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
                .map_or(f64::NAN, |kb| kb / 1024.0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }
}

impl Drop for BenchDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        jit_tests::remove_grant_cgroups(&self.cgroup);
    }
}

/// What pam_jit sends for `user` on a service of `kind`.
pub fn context(user: &str, kind: GrantKind) -> PamContext {
    PamContext {
        user: user.into(),
        kind,
        service: match kind {
            GrantKind::Ssh => "sshd".into(),
            GrantKind::Sudo => "sudo".into(),
        },
        tty: None,
        rhost: None,
        ruser: None,
    }
}
