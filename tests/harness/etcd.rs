//! A real etcd cluster on loopback, started and stopped by the test that uses it: three
//! members ([`EtcdCluster::start`]) or one member with TLS, client certificates and etcd
//! users ([`EtcdCluster::start_tls`]). Ports are picked per cluster (and picked again if a
//! parallel test took one first), data and logs live in a temp dir, and dropping the
//! cluster kills every member and removes the dir, also when the test fails.

use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use crate::TempDir;

/// The etcd user and password of the TLS cluster's host, with role `jit-host`: read
/// `/jit/v1/g/`, read and write `/jit/v1/h/t1/`, nothing else.
pub const HOST_USER: &str = "host-t1";
pub const HOST_PASSWORD: &str = "host-t1-password";
const ROOT_PASSWORD: &str = "root-password";
/// How long a cluster may take to become healthy on a busy 2-core machine.
const HEALTHY_WITHIN: Duration = Duration::from_secs(60);
const START_ATTEMPTS: usize = 5;

/// Files of the TLS cluster's private CA.
#[derive(Debug, Clone)]
pub struct EtcdTls {
    pub ca: PathBuf,
    /// A client certificate without a CN (`/O=jit-host/OU=t1`): the gateway refuses any
    /// certificate with a CN.
    pub cert: PathBuf,
    pub key: PathBuf,
    /// A client certificate with a CN, which the gateway refuses.
    pub cn_cert: PathBuf,
    pub cn_key: PathBuf,
}

struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    child: Option<Child>,
}

pub struct EtcdCluster {
    dir: TempDir,
    token: String,
    members: Vec<Member>,
    tls: Option<EtcdTls>,
    /// Auth is enabled: etcdctl runs as root.
    auth: bool,
    /// The TLS cluster's CA and certificates (etcd reads them at each handshake).
    _pki: Option<TempDir>,
}

impl EtcdCluster {
    /// Three members, plain HTTP, no auth; returns when all three are healthy.
    pub fn start() -> EtcdCluster {
        Self::launch(3, None)
    }

    /// One member with TLS on its client port (`--client-cert-auth`, a private CA), and etcd
    /// authentication enabled: user root, and [`HOST_USER`] with a narrow role.
    /// `--auth-token-ttl 2`: an idle token expires after 2 s, so re-authentication is exercised.
    pub fn start_tls() -> EtcdCluster {
        let pki = TempDir::new("etcd-pki");
        let tls = make_pki(pki.path());
        let mut cluster = Self::launch(1, Some(tls));
        cluster._pki = Some(pki);
        for args in [
            &["user", "add", &format!("root:{ROOT_PASSWORD}")][..],
            &["user", "grant-role", "root", "root"],
            &["role", "add", "jit-host"],
            &[
                "role",
                "grant-permission",
                "jit-host",
                "--prefix=true",
                "read",
                "/jit/v1/g/",
            ],
            &[
                "role",
                "grant-permission",
                "jit-host",
                "--prefix=true",
                "readwrite",
                "/jit/v1/h/t1/",
            ],
            &["user", "add", &format!("{HOST_USER}:{HOST_PASSWORD}")],
            &["user", "grant-role", HOST_USER, "jit-host"],
            &["auth", "enable"],
        ] {
            cluster.etcdctl_ok(args);
        }
        cluster.auth = true;
        cluster
    }

    fn launch(n: usize, tls: Option<EtcdTls>) -> EtcdCluster {
        let mut last_failure = String::new();
        for _ in 0..START_ATTEMPTS {
            let ports = free_ports(2 * n);
            let mut cluster = EtcdCluster {
                dir: TempDir::new("etcd"),
                token: crate::unique("jit-etcd-"),
                members: (0..n)
                    .map(|i| Member {
                        name: format!("n{i}"),
                        client_port: ports[2 * i],
                        peer_port: ports[2 * i + 1],
                        child: None,
                    })
                    .collect(),
                tls: tls.clone(),
                auth: false,
                _pki: None,
            };
            for i in 0..n {
                cluster.spawn(i, "new");
            }
            match cluster.await_healthy(HEALTHY_WITHIN) {
                Ok(()) => return cluster,
                // Most likely a port taken by a parallel test between our check and etcd's
                // bind: the cluster is dropped (killed, removed) and started on new ports.
                Err(why) => last_failure = why,
            }
        }
        panic!("etcd did not start in {START_ATTEMPTS} attempts: {last_failure}");
    }

    /// Client URLs, member order.
    pub fn endpoints(&self) -> Vec<String> {
        (0..self.members.len()).map(|i| self.endpoint(i)).collect()
    }

    pub fn endpoint(&self, i: usize) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.members[i].client_port)
    }

    pub fn tls(&self) -> Option<&EtcdTls> {
        self.tls.as_ref()
    }

    /// SIGKILL member `i` and reap it: a crash.
    pub fn kill9(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM member `i` and wait for it to exit (SIGKILL after 20 s): a clean stop, in
    /// which a leader hands over leadership first.
    pub fn stop(&mut self, i: usize) {
        let Some(mut child) = self.members[i].child.take() else {
            return;
        };
        signal(&child, libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        while child.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts a stopped member again on its data dir (`--initial-cluster-state existing`).
    /// Returns without waiting: alone it has no quorum. See [`EtcdCluster::wait_healthy`].
    /// Call it from the test's own thread: a member dies with the thread that started it
    /// (PR_SET_PDEATHSIG), so nothing outlives a crashed test.
    pub fn start_member(&mut self, i: usize) {
        assert!(self.members[i].child.is_none(), "member {i} is running");
        self.spawn(i, "existing");
    }

    /// SIGSTOP member `i`: it is frozen, its connections stay open and silent (a partition).
    pub fn pause(&self, i: usize) {
        if let Some(child) = &self.members[i].child {
            signal(child, libc::SIGSTOP);
        }
    }

    pub fn resume(&self, i: usize) {
        if let Some(child) = &self.members[i].child {
            signal(child, libc::SIGCONT);
        }
    }

    /// Waits until every running member reports healthy (it has a leader and commits);
    /// panics after `HEALTHY_WITHIN`.
    pub fn wait_healthy(&self) {
        if let Err(why) = self.await_healthy(HEALTHY_WITHIN) {
            panic!("etcd did not become healthy: {why}");
        }
    }

    /// The index of the leader, as the members see it.
    pub fn leader(&self) -> usize {
        let deadline = Instant::now() + HEALTHY_WITHIN;
        loop {
            for i in self.running() {
                let out =
                    self.etcdctl_at(&[self.endpoint(i)], &["endpoint", "status", "-w", "json"]);
                if !out.status.success() {
                    continue;
                }
                let v: serde_json::Value = match serde_json::from_slice(&out.stdout) {
                    Ok(v) => v,
                    Err(_) => continue,
                };
                let status = &v[0]["Status"];
                if !status["leader"].is_null() && status["header"]["member_id"] == status["leader"]
                {
                    return i;
                }
            }
            assert!(Instant::now() < deadline, "no member is the leader");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Compacts the history up to the current revision (physically: the old revisions are
    /// gone once it returns); returns that revision.
    pub fn compact(&self) -> i64 {
        let out = self.etcdctl_ok(&["get", "/", "-w", "json", "--limit=1"]);
        let v: serde_json::Value = serde_json::from_str(&out).expect("etcdctl get -w json");
        let revision = v["header"]["revision"].as_i64().expect("a header revision");
        self.etcdctl_ok(&["compact", &revision.to_string(), "--physical"]);
        revision
    }

    /// etcdctl against the running members (as root when auth is on); asserts success and
    /// returns stdout.
    pub fn etcdctl_ok(&self, args: &[&str]) -> String {
        let endpoints: Vec<String> = self.running().map(|i| self.endpoint(i)).collect();
        let out = self.etcdctl_at(&endpoints, args);
        assert!(
            out.status.success(),
            "etcdctl {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn etcdctl_at(&self, endpoints: &[String], args: &[&str]) -> Output {
        let mut cmd = Command::new("etcdctl");
        cmd.env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", endpoints.join(",")))
            .arg("--command-timeout=5s")
            .arg("--dial-timeout=2s");
        if let Some(tls) = &self.tls {
            cmd.arg(format!("--cacert={}", tls.ca.display()))
                .arg(format!("--cert={}", tls.cert.display()))
                .arg(format!("--key={}", tls.key.display()));
        }
        if self.auth {
            cmd.arg(format!("--user=root:{ROOT_PASSWORD}"));
        }
        cmd.args(args).stdin(Stdio::null());
        cmd.output()
            .expect("run etcdctl (apt-get install etcd-client)")
    }

    fn running(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.members.len()).filter(|&i| self.members[i].child.is_some())
    }

    fn await_healthy(&self, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        loop {
            for (i, m) in self.members.iter().enumerate() {
                if m.child.is_none() {
                    continue;
                }
                // A member that exited (a port taken, a bad flag) will not become healthy.
                let exited = std::fs::read_to_string(format!(
                    "/proc/{}/stat",
                    m.child.as_ref().map(Child::id).unwrap_or(0)
                ))
                .map(|s| s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z')))
                .unwrap_or(true);
                if exited {
                    return Err(format!("member {i} exited:\n{}", self.log_tail(i)));
                }
            }
            let endpoints: Vec<String> = self.running().map(|i| self.endpoint(i)).collect();
            let out = self.etcdctl_at(&endpoints, &["endpoint", "health"]);
            if out.status.success() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "not healthy within {within:?}: {}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log_tail(&self, i: usize) -> String {
        let log =
            std::fs::read_to_string(self.dir.path().join(format!("n{i}.log"))).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(10)..].join("\n")
    }

    fn spawn(&mut self, i: usize, state: &str) {
        let dir = self.dir.path();
        let cluster: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect();
        let m = &self.members[i];
        let client = self.endpoint(i);
        let peer = format!("http://127.0.0.1:{}", m.peer_port);
        let mut cmd = Command::new("etcd");
        cmd.arg("--name")
            .arg(&m.name)
            .arg("--data-dir")
            .arg(dir.join(format!("{}.etcd", m.name)))
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &cluster.join(",")])
            .args(["--initial-cluster-token", &self.token])
            .args(["--initial-cluster-state", state])
            // docs/fleet.md: the flags fleet mode runs etcd with (progress every 1 s here,
            // so idle watches are heard from quickly).
            .arg("--pre-vote=true")
            .arg("--experimental-watch-progress-notify-interval=1s")
            .args(["--auto-compaction-mode", "periodic"])
            .args(["--auto-compaction-retention", "1h"])
            .args(["--logger", "zap"])
            .arg("--log-outputs")
            .arg(dir.join(format!("{}.log", m.name)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(tls) = &self.tls {
            let pki = tls.ca.parent().expect("pki dir");
            cmd.arg("--cert-file")
                .arg(pki.join("server.crt"))
                .arg("--key-file")
                .arg(pki.join("server.key"))
                .arg("--trusted-ca-file")
                .arg(&tls.ca)
                .arg("--client-cert-auth")
                .args(["--auth-token-ttl", "2"]);
        }
        // SAFETY: prctl is async-signal-safe; it only sets this child's parent-death signal,
        // so a test process that dies without running Drop takes its etcd members with it.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .expect("start etcd (apt-get install etcd-server)");
        self.members[i].child = Some(child);
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for m in &mut self.members {
            if let Some(mut child) = m.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

fn signal(child: &Child, sig: libc::c_int) {
    // SAFETY: kill(2) on the pid of a child we have not reaped yet.
    unsafe {
        libc::kill(child.id() as libc::pid_t, sig);
    }
}

/// `n` distinct ports below the kernel's ephemeral range (32768 and up), so outgoing
/// connections never take them, each free when checked. Another test may still take one
/// before etcd binds it: [`EtcdCluster::launch`] then starts over on new ports.
fn free_ports(n: usize) -> Vec<u16> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut state = nanos
        ^ (u64::from(std::process::id()) << 32)
        ^ SEQ
            .fetch_add(1, Ordering::SeqCst)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut ports = Vec::with_capacity(n);
    while ports.len() < n {
        // xorshift64*
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let r = state.wrapping_mul(0x2545_F491_4F6C_DD1D);
        let port = 20_000 + (r >> 33) as u16 % 12_000;
        if ports.contains(&port) || TcpListener::bind(("127.0.0.1", port)).is_err() {
            continue;
        }
        // Nothing listens there either (bind alone can succeed next to a listener on
        // another address).
        if TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(50))
            .is_ok()
        {
            continue;
        }
        ports.push(port);
    }
    ports
}

/// A private CA, a server certificate for 127.0.0.1, and two client certificates: one
/// without a CN (what the gateway accepts) and one with.
fn make_pki(dir: &Path) -> EtcdTls {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=jit-test-etcd-ca",
    ]);
    openssl(&ca);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n",
    )
    .expect("write server.ext");
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").expect("client.ext");
    for (name, subject, ext) in [
        ("server", "/CN=etcd-test", "server.ext"),
        ("client", "/O=jit-host/OU=t1", "client.ext"),
        ("cn-client", "/CN=host-t1", "client.ext"),
    ] {
        let key = format!("{name}.key");
        let csr = format!("{name}.csr");
        let crt = format!("{name}.crt");
        let mut req = vec!["req"];
        req.extend(ec);
        req.extend(["-keyout", &key, "-out", &csr, "-subj", subject]);
        openssl(&req);
        openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &crt,
            "-days",
            "2",
            "-extfile",
            ext,
        ]);
    }
    EtcdTls {
        ca: dir.join("ca.crt"),
        cert: dir.join("client.crt"),
        key: dir.join("client.key"),
        cn_cert: dir.join("cn-client.crt"),
        cn_key: dir.join("cn-client.key"),
    }
}
