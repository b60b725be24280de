//! Test harness: real binaries, a real jitd on a private socket and state dir, real Unix
//! users and groups. Everything created is removed on drop, also when a test fails.
//! These tests need root (CI runs as root).

pub mod etcd;
pub mod http;
pub mod journal;
pub mod own_process;
pub mod pty;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

static BUILD: Once = Once::new();
static COUNTER: AtomicUsize = AtomicUsize::new(0);
/// useradd/groupadd lock /etc/passwd; concurrent tests take turns.
static USERDB: Mutex<()> = Mutex::new(());

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// Builds the workspace's binaries and the PAM module once per test process: `cargo test`
/// alone does not build other packages' binaries or a cdylib that tests only load by path.
/// jitd is built with its `failpoints` feature, so a test can crash it at a named step
/// (`JITD_FAILPOINT`, see [`Daemon::restart_through`]); without that variable it does nothing.
pub fn ensure_built() {
    BUILD.call_once(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        // jitd with its test hooks (`JITD_FAILPOINT`, `JITD_TEST_WALL_OFFSET`), which do
        // nothing unless their variable is set: one build serves every test, so no test
        // process relinks the binary another one runs (tests/run builds the same).
        let status = Command::new(cargo)
            .current_dir(workspace_root())
            .args([
                "build",
                "-q",
                "-p",
                "jitd",
                "-p",
                "jit-elevate",
                "-p",
                "pam_jit",
                "--features",
                "jitd/failpoints",
            ])
            .status()
            .expect("run cargo build");
        assert!(status.success(), "building the workspace failed");
    });
}

/// Path of a built binary (`jitd`, `jit-elevate`) or library.
pub fn bin(name: &str) -> PathBuf {
    ensure_built();
    target_dir().join("debug").join(name)
}

pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}x{}",
        std::process::id() % 100_000,
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// A directory removed on drop, readable by the test users (they reach the socket in it).
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        let path = std::env::temp_dir().join(unique(&format!("jit-{prefix}-")));
        fs::create_dir_all(&path).expect("create temp dir");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod temp dir");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A directory only root can change, `/usr/local/lib/jit-test-<unique>` (root:root 0755),
/// removed on drop: where a test puts a program jitd may grant. (A [`TempDir`] lies under the
/// world-writable /tmp, and jitd grants nothing there.)
pub struct RootDir(PathBuf);

impl RootDir {
    pub fn new() -> RootDir {
        let path = Path::new("/usr/local/lib").join(unique("jit-test-"));
        fs::create_dir_all(&path).expect("create root-owned dir");
        std::os::unix::fs::chown(&path, Some(0), Some(0)).expect("chown root-owned dir");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod dir");
        RootDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// A root-owned 0755 shell script `name` in this directory; returns its path.
    pub fn program(&self, name: &str, script: &str) -> String {
        let path = self.0.join(name);
        fs::write(&path, format!("#!/bin/sh\n{script}\n")).expect("write program");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod program");
        path.display().to_string()
    }
}

impl Default for RootDir {
    fn default() -> RootDir {
        RootDir::new()
    }
}

impl Drop for RootDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn run_quiet(cmd: &mut Command) -> bool {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// A real Unix user, deleted (with its home) on drop.
pub struct TestUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

impl TestUser {
    pub fn create(prefix: &str) -> TestUser {
        let name = unique(&format!("jt{prefix}"));
        Self::create_named(&name)
    }

    /// A user with exactly this name (e.g. `first.last`); the caller keeps it unique.
    pub fn create_named(name: &str) -> TestUser {
        let _lock = USERDB.lock().unwrap_or_else(|e| e.into_inner());
        let ok =
            run_quiet(Command::new("useradd").args(["--badname", "-m", "-s", "/bin/sh", name]))
                || run_quiet(Command::new("useradd").args(["-m", "-s", "/bin/sh", name]));
        assert!(ok, "useradd {name} failed");
        let out = Command::new("id")
            .args(["-u", name])
            .output()
            .expect("id -u");
        let uid = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("uid");
        let out = Command::new("id")
            .args(["-g", name])
            .output()
            .expect("id -g");
        let gid = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("gid");
        TestUser {
            name: name.to_string(),
            uid,
            gid,
        }
    }

    /// Renames the user (`usermod -l`) and its primary group (`groupmod -n`): same uid, new
    /// name, and the old name free for someone else. Dropping it deletes it by the new name.
    pub fn rename(&mut self, new: &str) {
        let _lock = USERDB.lock().unwrap_or_else(|e| e.into_inner());
        assert!(
            run_quiet(Command::new("usermod").args(["--badname", "-l", new, &self.name]))
                || run_quiet(Command::new("usermod").args(["-l", new, &self.name])),
            "usermod -l {new} {} failed",
            self.name
        );
        assert!(
            run_quiet(Command::new("groupmod").args(["-n", new, &self.name])),
            "groupmod -n {new} {} failed",
            self.name
        );
        self.name = new.to_string();
    }

    /// `program` run as this user.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        self.identity().command(program)
    }

    /// Who this user is, without ownership (for use from other threads).
    pub fn identity(&self) -> Identity {
        Identity {
            name: self.name.clone(),
            uid: self.uid,
            gid: self.gid,
        }
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _lock = USERDB.lock().unwrap_or_else(|e| e.into_inner());
        let _ = Command::new("pkill")
            .args(["-KILL", "-u", &self.name])
            .status();
        run_quiet(Command::new("userdel").args(["-r", "-f", &self.name]));
    }
}

/// A user's name and ids; does not delete the user.
#[derive(Clone, Debug)]
pub struct Identity {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

impl Identity {
    /// `program` run as this user (uid and primary gid; std drops supplementary groups).
    /// Signals sent to the child reach the program itself, unlike through runuser.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        use std::os::unix::process::CommandExt;
        let mut c = Command::new(program);
        c.uid(self.uid)
            .gid(self.gid)
            .env("USER", &self.name)
            .env("LOGNAME", &self.name);
        c
    }
}

/// A real Unix group, deleted on drop.
pub struct TestGroup {
    pub name: String,
}

impl TestGroup {
    pub fn create(prefix: &str) -> TestGroup {
        let name = unique(&format!("jg{prefix}"));
        let _lock = USERDB.lock().unwrap_or_else(|e| e.into_inner());
        assert!(
            run_quiet(Command::new("groupadd").arg(&name)),
            "groupadd {name} failed"
        );
        TestGroup { name }
    }

    /// A second group with `other`'s gid under another name (`groupadd -o`): to NSS a member
    /// of this one is in `other`'s gid, yet `other`'s own entry does not list them, as when
    /// the membership comes from another source (sssd, LDAP, systemd's userdb).
    pub fn create_sharing_gid(prefix: &str, other: &TestGroup) -> TestGroup {
        let name = unique(&format!("jg{prefix}"));
        let _lock = USERDB.lock().unwrap_or_else(|e| e.into_inner());
        let out = Command::new("getent")
            .args(["group", &other.name])
            .output()
            .expect("getent");
        let entry = String::from_utf8_lossy(&out.stdout);
        let gid = entry
            .split(':')
            .nth(2)
            .expect("getent group: a gid")
            .to_string();
        assert!(
            run_quiet(Command::new("groupadd").args(["-o", "-g", &gid, &name])),
            "groupadd -o -g {gid} {name} failed"
        );
        TestGroup { name }
    }

    /// Takes `user` out of the group (`gpasswd -d`).
    pub fn remove(&self, user: &TestUser) {
        let _lock = USERDB.lock().unwrap_or_else(|e| e.into_inner());
        assert!(
            run_quiet(Command::new("gpasswd").args(["-d", &user.name, &self.name])),
            "gpasswd -d {} {} failed",
            user.name,
            self.name
        );
    }

    pub fn add(&self, user: &TestUser) {
        let _lock = USERDB.lock().unwrap_or_else(|e| e.into_inner());
        assert!(
            run_quiet(Command::new("usermod").args(["-aG", &self.name, &user.name])),
            "usermod -aG {} {} failed",
            self.name,
            user.name
        );
    }
}

impl Drop for TestGroup {
    fn drop(&mut self) {
        let _lock = USERDB.lock().unwrap_or_else(|e| e.into_inner());
        run_quiet(Command::new("groupdel").arg(&self.name));
    }
}

/// A real jitd, running as root on a private socket and state directory.
pub struct Daemon {
    dir: TempDir,
    cgroup: String,
    child: Option<Child>,
    /// Runs jitd through this (e.g. `nsenter -t PID -m --` to share a test journald's mounts).
    wrapper: Vec<String>,
    /// Environment of the next start ([`Daemon::restart_with_env`]): failpoints, the test clock.
    env: Vec<(String, String)>,
    /// Held while this daemon owns the machine's /etc/sudoers.d (see `start_enforcing`).
    _sudoers_lock: Option<fs::File>,
}

/// Only one test daemon at a time may manage the real /etc/sudoers.d: each reconciles away
/// `jit_*` drop-ins it has no record of, which would include another test's. Reconcilers hold
/// this lock exclusively ([`lock_real_sudoers`]); tests that only add and remove their own
/// drop-ins hold it shared ([`share_real_sudoers`]), so they run alongside each other.
fn flock_real_sudoers(how: libc::c_int) -> fs::File {
    use std::os::fd::AsRawFd;
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open("/run/jit-tests-sudoers.lock")
        .expect("lock file");
    // SAFETY: flock on a descriptor we own; blocks until the holders let go.
    let rc = unsafe { libc::flock(f.as_raw_fd(), how) };
    assert_eq!(rc, 0, "flock");
    f
}

pub fn lock_real_sudoers() -> fs::File {
    flock_real_sudoers(libc::LOCK_EX)
}

pub fn share_real_sudoers() -> fs::File {
    flock_real_sudoers(libc::LOCK_SH)
}

impl Daemon {
    pub fn start() -> Daemon {
        Self::start_with("")
    }

    /// `extra` is appended to the generated config (approver_groups, durations, …).
    pub fn start_with(extra: &str) -> Daemon {
        Self::launch(extra, None, &[], |_| {})
    }

    /// A daemon started through `wrapper` after `prepare` ran on its directory (e.g. to mount
    /// a tiny tmpfs on `state`).
    pub fn start_custom(extra: &str, wrapper: &[&str], prepare: impl FnOnce(&Path)) -> Daemon {
        Self::launch(extra, None, wrapper, prepare)
    }

    /// A daemon whose process has `env` in its environment from its first start (a failpoint,
    /// the test clock); [`Daemon::restart_with_env`] changes it.
    pub fn start_with_env(extra: &str, env: &[(&str, &str)]) -> Daemon {
        let mut d = Self::launch_with(extra, None, &[], env, |_| {});
        d.spawn();
        d
    }

    /// A daemon with only the capabilities packaging/jitd.service leaves it
    /// (`CapabilityBoundingSet=CAP_KILL CAP_DAC_OVERRIDE CAP_CHOWN`): what works as root in a
    /// test must also work in the hardened unit (reading a setuid sudo's /proc/PID/exe, for
    /// one, does not).
    pub fn start_as_unit(extra: &str) -> Daemon {
        Self::start_custom(
            extra,
            &[
                "setpriv",
                "--bounding-set",
                "-all,+kill,+dac_override,+chown",
                "--",
            ],
            |_| {},
        )
    }

    /// A daemon that installs its drop-ins in the machine's real /etc/sudoers.d, so the real
    /// sudo obeys them. Such daemons run one at a time.
    pub fn start_enforcing(extra: &str) -> Daemon {
        let lock = lock_real_sudoers();
        Self::launch(extra, Some(lock), &[], |_| {})
    }

    /// A daemon's directory with its config and state directory, `prepare` run on it.
    fn setup(extra: &str, real_sudoers: bool, prepare: impl FnOnce(&Path)) -> (TempDir, String) {
        let dir = TempDir::new("jitd");
        let sudoers = match real_sudoers {
            true => PathBuf::from("/etc/sudoers.d"),
            false => dir.path().join("sudoers.d"),
        };
        // Each test daemon gets its own cgroup: a daemon ends the processes of every grant
        // cgroup it has no active grant for, which would include other tests'.
        let cgroup = unique("jit-test-");
        // Recordings of sudo grants (recorded by default) stay in the test's own directory.
        let sets_recordings = extra
            .lines()
            .any(|l| l.trim_start().starts_with("recordings_dir"));
        let recordings = match sets_recordings {
            true => String::new(),
            false => format!("recordings_dir = \"{}/recordings\"\n", dir.path().display()),
        };
        let config = format!(
            "socket = \"{0}/run/jitd.sock\"\nstate_dir = \"{0}/state\"\nsudoers_dir = \"{1}\"\ncgroup = \"{cgroup}\"\n{recordings}{extra}\n",
            dir.path().display(),
            sudoers.display()
        );
        fs::create_dir_all(&sudoers).expect("sudoers dir");
        fs::write(dir.path().join("jitd.toml"), config).expect("write config");
        fs::create_dir_all(dir.path().join("state")).expect("state dir");
        prepare(dir.path());
        (dir, cgroup)
    }

    /// Runs `jitd serve` on a directory `prepare` set up, expecting it to refuse to start;
    /// returns what it said and the directory.
    pub fn start_refused(extra: &str, prepare: impl FnOnce(&Path)) -> (Output, TempDir) {
        let (dir, cgroup) = Self::setup(extra, false, prepare);
        let out = serve_refused(&dir.path().join("jitd.toml"), &cgroup);
        (out, dir)
    }

    /// Stops jitd (SIGKILL) and starts it again on the same state, expecting it to refuse to
    /// start; returns what it said. [`Daemon::restart`] starts it for real afterwards.
    pub fn restart_refused(&mut self) -> Output {
        self.kill9();
        serve_refused(&self.config_path(), &self.cgroup)
    }

    fn launch(
        extra: &str,
        real_sudoers: Option<fs::File>,
        wrapper: &[&str],
        prepare: impl FnOnce(&Path),
    ) -> Daemon {
        let mut d = Self::launch_with(extra, real_sudoers, wrapper, &[], prepare);
        d.spawn();
        d
    }

    /// A daemon set up but not started yet.
    fn launch_with(
        extra: &str,
        real_sudoers: Option<fs::File>,
        wrapper: &[&str],
        env: &[(&str, &str)],
        prepare: impl FnOnce(&Path),
    ) -> Daemon {
        let (dir, cgroup) = Self::setup(extra, real_sudoers.is_some(), prepare);
        Daemon {
            dir,
            cgroup,
            child: None,
            wrapper: wrapper.iter().map(|s| s.to_string()).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            _sudoers_lock: real_sudoers,
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("run/jitd.sock")
    }

    /// Where this daemon's recorded grants' sessions go (unless its config says otherwise).
    pub fn recordings_dir(&self) -> PathBuf {
        self.dir().join("recordings")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("jitd.toml")
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("jitd.log")).unwrap_or_default()
    }

    /// Where request `id`'s record is stored: `requests/<id>.json` while live, else (history)
    /// `requests/ended/<day>/<id>.json`; the live path when there is neither.
    pub fn record_file(&self, id: &str) -> PathBuf {
        let requests = self.state_dir().join("requests");
        let live = requests.join(format!("{id}.json"));
        if live.exists() {
            return live;
        }
        fs::read_dir(requests.join("ended"))
            .into_iter()
            .flatten()
            .filter_map(|day| day.ok())
            .map(|day| day.path().join(format!("{id}.json")))
            .find(|f| f.exists())
            .unwrap_or(live)
    }

    /// Ids of every request in the state directory: live ones and history
    /// (`requests/ended/<day>/`).
    pub fn request_ids(&self) -> Vec<String> {
        let requests = self.state_dir().join("requests");
        let mut dirs = vec![requests.clone()];
        if let Ok(days) = fs::read_dir(requests.join("ended")) {
            dirs.extend(days.filter_map(|d| d.ok()).map(|d| d.path()));
        }
        dirs.iter()
            .filter_map(|dir| fs::read_dir(dir).ok())
            .flatten()
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                e.file_name()
                    .to_str()?
                    .strip_suffix(".json")
                    .map(String::from)
            })
            .collect()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    fn spawn(&mut self) {
        let listening = |log: String| log.matches("jitd: listening on").count();
        let before = listening(self.log());
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("jitd.log"))
            .expect("log file");
        let mut cmd = match self.wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(bin("jitd"));
                c
            }
            None => Command::new(bin("jitd")),
        };
        let child = cmd
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .arg("serve")
            .arg("--config")
            .arg(self.config_path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start jitd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        // The socket accepts connections (into its backlog) while jitd still loads and
        // reconciles; it says "listening" once it serves them.
        while UnixStream::connect(self.socket()).is_err() || listening(self.log()) <= before {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("jitd exited with {status} at start:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "jitd did not start:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `sig` to the daemon.
    /// Sends `sig`. For SIGSTOP, returns only once every thread of jitd is stopped: kill(2)
    /// returns before the stop takes effect, and until the thread picked for the signal runs,
    /// jitd's other threads keep answering (seen under load: a "stopped" jitd answered a check).
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.pid() as i32, sig) };
        if sig == libc::SIGSTOP {
            self.wait_until_stopped();
        }
    }

    fn wait_until_stopped(&self) {
        let tasks = PathBuf::from(format!("/proc/{}/task", self.pid()));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let states: Vec<String> = fs::read_dir(&tasks)
                .map(|d| {
                    d.filter_map(Result::ok)
                        .filter_map(|t| fs::read_to_string(t.path().join("stat")).ok())
                        // The state follows the parenthesised command name.
                        .filter_map(|st| st.rsplit_once(") ").map(|(_, r)| r[..1].to_string()))
                        .collect()
                })
                .unwrap_or_default();
            if !states.is_empty() && states.iter().all(|s| s == "T") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "jitd (pid {}) did not stop within 10 s after SIGSTOP: thread states {states:?}",
                self.pid()
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// SIGKILL and reap: the crash case.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts jitd again on the same state (after `kill9`).
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// Starts jitd again on the same state through another wrapper, kept for later restarts:
    /// `&["env", "JITD_FAILPOINT=name"]` makes it abort at that step, `&[]` runs it plainly.
    pub fn restart_through(&mut self, wrapper: &[&str]) {
        self.wrapper = wrapper.iter().map(|s| s.to_string()).collect();
        self.restart();
    }

    /// Starts jitd again on the same state with exactly `env` added to its environment (and
    /// whatever an earlier call added, gone): `JITD_FAILPOINT`, `JITD_TEST_WALL_OFFSET`.
    pub fn restart_with_env(&mut self, env: &[(&str, &str)]) {
        self.env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.restart();
    }

    /// Waits for jitd to exit by itself (a failpoint aborted it) and reaps it; panics if it
    /// is still running after `within`. Returns how it ended.
    pub fn wait_for_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        let child = self.child.as_mut().expect("jitd was started");
        loop {
            if let Some(status) = child.try_wait().expect("wait for jitd") {
                self.child = None;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "jitd did not exit within {within:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn cli(&self, program: &str, user: Option<&TestUser>, args: &[&str]) -> Output {
        let mut cmd = match user {
            None => Command::new(bin(program)),
            Some(u) => u.command(bin(program)),
        };
        cmd.arg("--socket")
            .arg(self.socket())
            .args(args)
            .stdin(Stdio::null());
        cmd.output().expect("run CLI")
    }

    /// `jitd ARGS` as root.
    pub fn jitd(&self, args: &[&str]) -> Output {
        self.cli("jitd", None, args)
    }

    pub fn jitd_as(&self, user: &TestUser, args: &[&str]) -> Output {
        self.cli("jitd", Some(user), args)
    }

    pub fn elevate_as(&self, user: &TestUser, args: &[&str]) -> Output {
        self.cli("jit-elevate", Some(user), args)
    }

    /// `jitd show ID --json` as root, parsed.
    pub fn show(&self, id: &str) -> serde_json::Value {
        let out = self.jitd(&["show", id, "--json"]);
        assert!(
            out.status.success(),
            "jitd show {id}: {}",
            text(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("show --json is JSON")
    }

    pub fn state_of(&self, id: &str) -> String {
        self.show(id)["state"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Waits for a pending request to appear (someone is asking) and returns its id.
    pub fn wait_for_pending(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let list: serde_json::Value =
                serde_json::from_str(&ok(self.jitd(&["list", "--json"]))).expect("list --json");
            let found = list
                .as_array()
                .and_then(|l| l.iter().find(|r| r["state"] == "pending"))
                .and_then(|r| r["id"].as_str().map(String::from));
            if let Some(id) = found {
                return id;
            }
            assert!(Instant::now() < deadline, "no pending request appeared");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Polls until request `id` is in `state`, or panics after `within`.
    pub fn wait_for_state(&self, id: &str, state: &str, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let now = self.state_of(id);
            if now == state {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "request {id} is {now}, expected {state} within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Runs `jitd serve --config CONFIG` and waits for it to exit, which it must do within 20 s
/// (it refuses to start); returns its stdout and stderr.
fn serve_refused(config: &Path, cgroup: &str) -> Output {
    let mut child = Command::new(bin("jitd"))
        .arg("serve")
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start jitd");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("wait for jitd").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("jitd output");
            remove_grant_cgroups(cgroup);
            panic!(
                "jitd started although it should have refused:\n{}{}",
                text(&out.stdout),
                text(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("jitd output");
    remove_grant_cgroups(cgroup);
    out
}

/// Removes a stopped jitd's (by now empty) grant cgroups and their parent, `cgroup` being the
/// daemon's `cgroup` setting.
pub fn remove_grant_cgroups(cgroup: &str) {
    for root in ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"] {
        let base = Path::new(root).join(cgroup);
        if let Ok(children) = fs::read_dir(&base) {
            for child in children.flatten().filter(|c| c.path().is_dir()) {
                let _ = fs::remove_dir(child.path());
            }
            let _ = fs::remove_dir(&base);
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
        remove_grant_cgroups(&self.cgroup);
        if self._sudoers_lock.is_some() {
            // Leave the machine's sudoers as we found it: remove this daemon's drop-ins.
            for id in self.request_ids() {
                let _ = fs::remove_file(format!("/etc/sudoers.d/jit_{id}"));
            }
        }
    }
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// stdout, trimmed.
pub fn stdout(out: &Output) -> String {
    text(&out.stdout).trim().to_string()
}

/// Asserts success and returns stdout trimmed.
pub fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "command failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    stdout(&out)
}

/// Asserts success and parses stdout as JSON.
pub fn json(out: Output) -> serde_json::Value {
    let text = ok(out);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

impl Daemon {
    /// Writes a policy drop-in next to the daemon's config (`jitd.toml.d/NAME`).
    pub fn write_drop_in(&self, name: &str, text: &str) {
        let dir = self.dir().join("jitd.toml.d");
        fs::create_dir_all(&dir).expect("drop-in dir");
        fs::write(dir.join(name), text).expect("write drop-in");
    }

    /// Polls the daemon's log until it contains `needle`, or panics after `within`.
    pub fn wait_for_log(&self, needle: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.log().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "the log lacks {needle:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

pub mod pam;
pub mod sshd;
