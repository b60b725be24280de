//! A real OpenSSH server whose PAM service is a test service guarded by pam_jit, and a real
//! ssh client logging in with a key, optionally from another network namespace.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::TcpListener;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::pam::{module_path, PlacedFile};
use crate::{unique, TempDir, TestUser};

/// Two network namespaces joined by a veth pair: the server side holds 10.201.0.1, the client
/// side 10.201.0.2. Both addresses exist only inside these namespaces. Deleted on drop.
pub struct NetnsPair {
    pub server_ns: String,
    pub client_ns: String,
}

impl NetnsPair {
    pub const SERVER_ADDR: &'static str = "10.201.0.1";
    pub const CLIENT_ADDR: &'static str = "10.201.0.2";

    pub fn create() -> NetnsPair {
        let tag = unique("");
        let pair = NetnsPair {
            server_ns: format!("jitpam-s{tag}"),
            client_ns: format!("jitpam-c{tag}"),
        };
        // Interface names are limited to 15 bytes.
        let (veth_s, veth_c) = (format!("jvs{tag}"), format!("jvc{tag}"));
        let s = pair.server_ns.as_str();
        let c = pair.client_ns.as_str();
        let server_cidr = format!("{}/24", Self::SERVER_ADDR);
        let client_cidr = format!("{}/24", Self::CLIENT_ADDR);
        for args in [
            vec!["netns", "add", s],
            vec!["netns", "add", c],
            vec![
                "link", "add", &veth_s, "netns", s, "type", "veth", "peer", "name", &veth_c,
                "netns", c,
            ],
            vec!["-n", s, "addr", "add", &server_cidr, "dev", &veth_s],
            vec!["-n", c, "addr", "add", &client_cidr, "dev", &veth_c],
            vec!["-n", s, "link", "set", "lo", "up"],
            vec!["-n", s, "link", "set", &veth_s, "up"],
            vec!["-n", c, "link", "set", &veth_c, "up"],
        ] {
            let out = Command::new("ip").args(&args).output().unwrap();
            assert!(out.status.success(), "ip {args:?}: {out:?}");
        }
        pair
    }
}

impl Drop for NetnsPair {
    fn drop(&mut self) {
        // Deleting a namespace destroys the veth end inside it, and with it the pair.
        for ns in [&self.server_ns, &self.client_ns] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// How a test sshd is set up beyond the defaults ([`Sshd::start_with`]).
#[derive(Debug, Clone, Default)]
pub struct SshdSetup {
    /// More arguments for pam_jit's lines, e.g. `wait=30s`.
    pub pam_args: String,
    /// keyboard-interactive through PAM, with pam_jit as the auth stack (which lets it through
    /// only after the key), after the key: `AuthenticationMethods publickey,keyboard-interactive`.
    pub keyboard_interactive: bool,
    /// Other `AuthenticationMethods` for a keyboard-interactive sshd (`any`: either method
    /// alone, as a misconfigured server would have it).
    pub authentication_methods: Option<&'static str>,
    /// sshd's `LoginGraceTime` in seconds (its default is 120).
    pub login_grace_secs: Option<u32>,
}

/// sshd started through a symlink named after a test PAM service, so libpam reads
/// `/etc/pam.d/<service>`: pam_jit (kind=ssh) for account and session, after pam_loginuid as
/// on Debian (so the session has an audit session id), and pam_deny for auth.
/// Public-key login only, for its users, on its own port and host key. Killed on drop.
pub struct Sshd {
    dir: TempDir,
    child: Child,
    pub service: String,
    pub addr: String,
    pub port: u16,
    _pam: PlacedFile,
}

impl Sshd {
    /// Listens on 127.0.0.1, or on [`NetnsPair::SERVER_ADDR`] inside `netns`.
    pub fn start(user: &TestUser, jitd_socket: &Path, netns: Option<&NetnsPair>) -> Sshd {
        Self::start_with(&[user], jitd_socket, netns, &SshdSetup::default())
    }

    /// An sshd for `users` (the first names the PAM service), set up as `setup` says.
    pub fn start_with(
        users: &[&TestUser],
        jitd_socket: &Path,
        netns: Option<&NetnsPair>,
        setup: &SshdSetup,
    ) -> Sshd {
        // sshd refuses to start without its privilege separation directory.
        std::fs::create_dir_all("/run/sshd").unwrap();
        let dir = TempDir::new("sshd");
        let service = format!("jit-test-sshd-{}", users[0].name);
        let module = module_path();
        let jit = format!(
            "{m} socket={s} kind=ssh {a}",
            m = module.display(),
            s = jitd_socket.display(),
            a = setup.pam_args
        );
        let auth = match setup.keyboard_interactive {
            true => jit.clone(),
            false => "pam_deny.so".into(),
        };
        let pam = PlacedFile::write(
            format!("/etc/pam.d/{service}"),
            &format!(
                "auth required {auth}\n\
                 account required {jit}\n\
                 session required pam_loginuid.so\n\
                 session required {jit}\n"
            ),
            0o644,
        );
        keygen(&dir.path().join("host_key"));
        keygen(&dir.path().join("client_key"));
        let keys = dir.path().join("authorized_keys");
        std::fs::create_dir(&keys).unwrap();
        for user in users {
            std::fs::copy(dir.path().join("client_key.pub"), keys.join(&user.name)).unwrap();
        }
        let allowed: Vec<&str> = users.iter().map(|u| u.name.as_str()).collect();
        let mut extra = String::new();
        if setup.keyboard_interactive {
            let methods = setup
                .authentication_methods
                .unwrap_or("publickey,keyboard-interactive");
            extra.push_str(&format!(
                "KbdInteractiveAuthentication yes\nAuthenticationMethods {methods}\n"
            ));
        } else {
            extra.push_str("KbdInteractiveAuthentication no\n");
        }
        if let Some(secs) = setup.login_grace_secs {
            extra.push_str(&format!("LoginGraceTime {secs}\n"));
        }
        // sshd drops to the user to read keys when StrictModes is off; let it in.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();

        // A port picked free here may be taken by someone else before sshd binds it: then
        // sshd exits saying so, and it is started again on another port.
        let mut attempts = 0;
        loop {
            attempts += 1;
            let (addr, port) = match netns {
                Some(_) => (NetnsPair::SERVER_ADDR.to_string(), 2222),
                None => ("127.0.0.1".to_string(), free_port()),
            };
            let config = dir.path().join("sshd_config");
            std::fs::write(
                &config,
                format!(
                    "Port {port}\nListenAddress {addr}\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
                     UsePAM yes\nPubkeyAuthentication yes\nPasswordAuthentication no\n\
                     {extra}AuthorizedKeysFile {d}/authorized_keys/%u\n\
                     StrictModes no\nAllowUsers {u}\nPermitRootLogin no\nLogLevel VERBOSE\n\
                     MaxStartups 100\n",
                    d = dir.path().display(),
                    u = allowed.join(" ")
                ),
            )
            .unwrap();
            let log_path = dir.path().join("sshd.log");
            let _ = std::fs::remove_file(&log_path);
            let program = dir.path().join(&service);
            if !program.exists() {
                std::os::unix::fs::symlink("/usr/sbin/sshd", &program).unwrap();
            }
            let mut cmd = match netns {
                Some(pair) => {
                    let mut c = Command::new("ip");
                    c.args(["netns", "exec", &pair.server_ns]).arg(&program);
                    c
                }
                None => Command::new(&program),
            };
            let mut child = cmd
                .arg("-D")
                .arg("-f")
                .arg(&config)
                .arg("-E")
                .arg(&log_path)
                .stdin(Stdio::null())
                .spawn()
                .expect("start sshd");
            let deadline = Instant::now() + Duration::from_secs(20);
            let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
            loop {
                if log().contains("Server listening") {
                    return Sshd {
                        dir,
                        child,
                        service,
                        addr,
                        port,
                        _pam: pam,
                    };
                }
                if let Ok(Some(status)) = child.try_wait() {
                    let said = log();
                    assert!(
                        said.contains("Address already in use") && attempts < 5,
                        "sshd exited ({status}) before listening on {addr}:{port} \
                         (attempt {attempts}): {said}"
                    );
                    break;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "sshd did not listen on {addr}:{port} within 20 s: {}",
                        log()
                    );
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    /// An ssh client command logging in as `user` with the test key and running `remote`.
    pub fn ssh(&self, user: &TestUser, netns: Option<&NetnsPair>, remote: &[&str]) -> Command {
        let mut cmd = match netns {
            Some(pair) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", &pair.client_ns, "ssh"]);
                c
            }
            None => Command::new("ssh"),
        };
        cmd.args(["-F", "/dev/null", "-i"])
            .arg(self.dir.path().join("client_key"))
            .args([
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=10",
                "-o",
                "LogLevel=ERROR",
                "-p",
            ])
            .arg(self.port.to_string())
            .arg(format!("{}@{}", user.name, self.addr))
            .args(remote)
            .stdin(Stdio::null());
        cmd
    }

    /// An ssh client on a new pseudo-terminal (its controlling terminal, where ssh asks
    /// keyboard-interactive questions), logging in as `user` with the test key and trying
    /// keyboard-interactive after it, with more `options` (`-o …`), showing what ssh shows a
    /// user by default (LogLevel INFO). Returns the client and the terminal's master side.
    pub fn ssh_on_pty(
        &self,
        user: &TestUser,
        options: &[&str],
        remote: &[&str],
    ) -> (Child, OwnedFd) {
        use std::os::unix::process::CommandExt;
        let (master, slave, _) = crate::pty::open_pty();
        let mut cmd = Command::new("ssh");
        cmd.args(["-F", "/dev/null", "-i"])
            .arg(self.dir.path().join("client_key"))
            .args([
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "PreferredAuthentications=publickey,keyboard-interactive",
                "-o",
                "NumberOfPasswordPrompts=1",
                "-o",
                "ConnectTimeout=10",
                "-o",
                "LogLevel=INFO",
            ])
            .args(options)
            .arg("-p")
            .arg(self.port.to_string())
            .arg(format!("{}@{}", user.name, self.addr))
            .args(remote);
        cmd.stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave.try_clone().unwrap()));
        // SAFETY: between fork and exec only async-signal-safe calls: setsid and ioctl. The
        // closure runs after stdio is set up, so fd 0 is the terminal's slave side.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("start ssh on a pty");
        drop(slave);
        (child, master)
    }

    pub fn login(&self, user: &TestUser, netns: Option<&NetnsPair>) -> Output {
        self.ssh(user, netns, &["echo", "logged-in"])
            .output()
            .unwrap()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        // Under `ip netns exec` the child is sshd itself (ip execs it).
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn keygen(path: &PathBuf) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "ssh-keygen: {out:?}");
}

/// A port free on 127.0.0.1 right now (sshd binds it a moment later).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
