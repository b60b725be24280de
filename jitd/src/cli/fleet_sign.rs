//! The approver's signature of a fleet approval: through ssh-agent or with a key file (ssh-keygen -Y sign).
//!
//! This runs in the approver's own `jitd approve` process, never in the daemon: the key is the
//! approver's, so no host (and no root on any host) can sign in their name. Two sources:
//! - the approver's ssh-agent, spoken to directly over `SSH_AUTH_SOCK` (so an agent forwarded
//!   into an SSH session works, and a FIDO key in the agent asks for its touch itself);
//! - a key file, signed by `ssh-keygen -Y sign`, which asks for the passphrase or the touch on
//!   the terminal (it opens /dev/tty itself).
//!
//! Either way the result is checked here before it is returned: an agent that answers with
//! the wrong key, an RSA-SHA1 signature or garbage is caught on the approver's screen rather
//! than later in every host's audit log.

// Wired into `jitd approve` and the fleet sync by the rest of fleet mode; until then only the
// tests call it.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::core::fleet::sshsig::{
    self, put_string, HashAlg, PublicKey, Reader, SigError, Signature, NAMESPACE,
};

/// Where the approver's key is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// The ssh-agent at `SSH_AUTH_SOCK`.
    Agent,
    /// A private key file (or a public key whose private half is in the agent), as
    /// `ssh-keygen -Y sign -f FILE` takes it.
    File(PathBuf),
}

/// The largest ssh-agent message read: a list of many RSA keys fits easily.
const MAX_AGENT_FRAME: usize = 256 * 1024;
/// Listing keys is immediate; signing may wait for a FIDO touch or an ssh-askpass
/// confirmation (`ssh-add -c`), which takes a person seconds.
const AGENT_LIST_TIMEOUT: Duration = Duration::from_secs(10);
const AGENT_SIGN_TIMEOUT: Duration = Duration::from_secs(120);
/// ssh-keygen may wait for a passphrase typed by a person.
const KEYGEN_TIMEOUT: Duration = Duration::from_secs(300);
/// The most of ssh-keygen's stderr kept for an error message.
const MAX_STDERR: usize = 4096;

// ssh-agent protocol (draft-miller-ssh-agent).
const AGENT_FAILURE: u8 = 5;
const AGENTC_REQUEST_IDENTITIES: u8 = 11;
const AGENT_IDENTITIES_ANSWER: u8 = 12;
const AGENTC_SIGN_REQUEST: u8 = 13;
const AGENT_SIGN_RESPONSE: u8 = 14;
const AGENT_RSA_SHA2_512: u32 = 4;

/// Why no signature was made, worded for the approver at the terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignError {
    /// `SSH_AUTH_SOCK` is not set.
    NoAgent,
    /// The agent's socket could not be reached or broke off.
    Agent { socket: PathBuf, why: String },
    /// The agent has keys, but none is wanted (listed for the approver). `offered` are their
    /// fingerprints.
    NoWantedKey { offered: Vec<String> },
    /// The agent declined to sign (a FIDO touch timed out, a confirmation was refused).
    AgentRefused { fingerprint: String },
    /// ssh-keygen is not installed (or not runnable).
    KeygenMissing(String),
    /// ssh-keygen ran and failed; its stderr.
    KeygenFailed { key: PathBuf, stderr: String },
    /// The key file's key is not wanted (not listed for the approver).
    KeyNotWanted { key: PathBuf, fingerprint: String },
    /// What came back is not a valid signature of the message.
    BadResult(SigError),
}

impl std::fmt::Display for SignError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SignError::NoAgent => write!(
                f,
                "no ssh-agent: SSH_AUTH_SOCK is not set. Start one (eval $(ssh-agent); ssh-add), \
                 forward yours (ssh -A), or sign with a key file: --key FILE"
            ),
            SignError::Agent { socket, why } => write!(
                f,
                "cannot use the ssh-agent at {}: {why}. Check SSH_AUTH_SOCK, or sign with a key \
                 file: --key FILE",
                socket.display()
            ),
            SignError::NoWantedKey { offered } if offered.is_empty() => write!(
                f,
                "your ssh-agent holds no key: add the key listed in allowed_signers for you \
                 with ssh-add, or use --key FILE"
            ),
            SignError::NoWantedKey { offered } => write!(
                f,
                "no key in your ssh-agent is listed in allowed_signers for you (it holds {}): \
                 add the listed key with ssh-add, or use --key FILE",
                offered.join(", ")
            ),
            SignError::AgentRefused { fingerprint } => write!(
                f,
                "your ssh-agent refused to sign with {fingerprint} (a FIDO key not touched in \
                 time, or a confirmation declined): try again"
            ),
            SignError::KeygenMissing(why) => write!(
                f,
                "cannot run ssh-keygen ({why}): install openssh-client, or sign through your \
                 ssh-agent"
            ),
            SignError::KeygenFailed { key, stderr } => write!(
                f,
                "ssh-keygen -Y sign -f {} failed: {}",
                key.display(),
                stderr.trim()
            ),
            SignError::KeyNotWanted { key, fingerprint } => write!(
                f,
                "the key {} ({fingerprint}) is not listed in allowed_signers for you: use the \
                 key listed there, or ask an administrator to list this one",
                key.display()
            ),
            SignError::BadResult(e) => write!(f, "the signature made is not valid: {e}"),
        }
    }
}

impl std::error::Error for SignError {}

impl SignError {
    /// The message with the file and the approver named, as `jitd approve` shows it.
    pub fn describe(&self, allowed_signers: &Path, approver: &str) -> String {
        let listed = "allowed_signers for you";
        let named = format!("{} for {approver}", allowed_signers.display());
        self.to_string().replace(listed, &named)
    }
}

/// Signs `message` in the [`NAMESPACE`] with the approver's key from `source`; `wanted` says
/// which keys count (the caller passes "listed in allowed_signers for me"). Returns the
/// armoured SSHSIG.
pub fn sign(
    message: &[u8],
    source: &KeySource,
    wanted: &dyn Fn(&PublicKey) -> bool,
) -> Result<String, SignError> {
    let socket = std::env::var_os("SSH_AUTH_SOCK")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from);
    sign_with(message, source, wanted, socket.as_deref())
}

/// [`sign`] with the agent's socket given (`None`: no agent), so tests need not share one
/// process-wide environment variable.
pub(crate) fn sign_with(
    message: &[u8],
    source: &KeySource,
    wanted: &dyn Fn(&PublicKey) -> bool,
    agent_socket: Option<&Path>,
) -> Result<String, SignError> {
    let signature = match source {
        KeySource::Agent => {
            let socket = agent_socket.ok_or(SignError::NoAgent)?;
            sign_with_agent(socket, message, wanted)?
        }
        KeySource::File(key) => {
            // Before asking for a passphrase or a touch, when the public half is at hand.
            if let Some(public) = public_key_beside(key) {
                if !wanted(&public) {
                    return Err(SignError::KeyNotWanted {
                        key: key.clone(),
                        fingerprint: public.fingerprint(),
                    });
                }
            }
            let signature = sign_with_keygen(key, message)?;
            if !wanted(signature.key()) {
                return Err(SignError::KeyNotWanted {
                    key: key.clone(),
                    fingerprint: signature.key().fingerprint(),
                });
            }
            signature
        }
    };
    signature
        .verify(NAMESPACE, message)
        .map_err(SignError::BadResult)?;
    Ok(signature.armor())
}

fn sign_with_agent(
    socket: &Path,
    message: &[u8],
    wanted: &dyn Fn(&PublicKey) -> bool,
) -> Result<Signature, SignError> {
    let agent_err = |why: String| SignError::Agent {
        socket: socket.to_path_buf(),
        why,
    };
    let mut agent = AgentConnection::connect(socket).map_err(agent_err)?;

    let reply = agent
        .request(&[AGENTC_REQUEST_IDENTITIES], AGENT_LIST_TIMEOUT)
        .map_err(agent_err)?;
    let keys = parse_identities(&reply).map_err(agent_err)?;
    let offered: Vec<String> = keys.iter().map(|k| k.fingerprint()).collect();
    let key = keys
        .into_iter()
        .find(|k| wanted(k))
        .ok_or(SignError::NoWantedKey { offered })?;

    // RSA keys sign with SHA-512: without the flag an agent signs with SHA-1 (ssh-rsa),
    // which hosts refuse.
    let flags = if key.is_rsa() { AGENT_RSA_SHA2_512 } else { 0 };
    let data = sshsig::signed_data(NAMESPACE, HashAlg::Sha512, message);
    let sig = agent_sign(&mut agent, socket, &key, &data, flags)?;
    Ok(Signature::from_parts(key, NAMESPACE, HashAlg::Sha512, sig))
}

/// One SIGN_REQUEST: the SSH signature blob the agent returns for `data`.
fn agent_sign(
    agent: &mut AgentConnection,
    socket: &Path,
    key: &PublicKey,
    data: &[u8],
    flags: u32,
) -> Result<Vec<u8>, SignError> {
    let agent_err = |why: String| SignError::Agent {
        socket: socket.to_path_buf(),
        why,
    };
    let mut request = vec![AGENTC_SIGN_REQUEST];
    put_string(&mut request, key.blob());
    put_string(&mut request, data);
    request.extend_from_slice(&flags.to_be_bytes());
    let reply = agent
        .request(&request, AGENT_SIGN_TIMEOUT)
        .map_err(agent_err)?;
    let mut r = Reader::new(&reply);
    let kind = r.u8("reply").map_err(|e| agent_err(e.to_string()))?;
    match kind {
        AGENT_SIGN_RESPONSE => {
            let sig = r
                .string("signature")
                .map_err(|e| agent_err(format!("bad sign response: {e}")))?;
            Ok(sig.to_vec())
        }
        AGENT_FAILURE => Err(SignError::AgentRefused {
            fingerprint: key.fingerprint(),
        }),
        other => Err(agent_err(format!(
            "unexpected reply {other} to a sign request"
        ))),
    }
}

/// A test's way to get what no honest signer makes: an RSA key's SHA-1 (`ssh-rsa`) SSHSIG,
/// from a real agent asked without the SHA-2 flag.
#[cfg(test)]
pub(crate) fn agent_rsa_sha1_signature(
    socket: &Path,
    key: &PublicKey,
    message: &[u8],
) -> Result<Signature, SignError> {
    let mut agent = AgentConnection::connect(socket).map_err(|why| SignError::Agent {
        socket: socket.to_path_buf(),
        why,
    })?;
    let data = sshsig::signed_data(NAMESPACE, HashAlg::Sha512, message);
    let sig = agent_sign(&mut agent, socket, key, &data, 0)?;
    Ok(Signature::from_parts(
        key.clone(),
        NAMESPACE,
        HashAlg::Sha512,
        sig,
    ))
}

/// The keys an agent lists, skipping those this verifier cannot use (DSA, certificates…): a
/// host could not check a signature made with them anyway.
fn parse_identities(reply: &[u8]) -> Result<Vec<PublicKey>, String> {
    let mut r = Reader::new(reply);
    let kind = r.u8("reply").map_err(|e| e.to_string())?;
    if kind == AGENT_FAILURE {
        return Err("it refused to list its keys (is it locked? ssh-add -X)".into());
    }
    if kind != AGENT_IDENTITIES_ANSWER {
        return Err(format!("unexpected reply {kind} to a key listing"));
    }
    let count = r.u32("key count").map_err(|e| e.to_string())?;
    let mut keys = Vec::new();
    for _ in 0..count {
        let blob = r.string("key").map_err(|e| e.to_string())?;
        r.string("comment").map_err(|e| e.to_string())?;
        if let Ok(key) = PublicKey::from_blob(blob) {
            keys.push(key);
        }
    }
    r.finish("key list").map_err(|e| e.to_string())?;
    Ok(keys)
}

/// One connection to an ssh-agent, each read bounded in size and time.
struct AgentConnection {
    stream: UnixStream,
}

impl AgentConnection {
    fn connect(socket: &Path) -> Result<AgentConnection, String> {
        let stream = UnixStream::connect(socket).map_err(|e| e.to_string())?;
        Ok(AgentConnection { stream })
    }

    /// Sends one message and reads the one reply (its body, type byte first).
    fn request(&mut self, body: &[u8], timeout: Duration) -> Result<Vec<u8>, String> {
        let deadline = Instant::now() + timeout;
        let mut frame = Vec::with_capacity(body.len() + 4);
        put_string(&mut frame, body);
        self.stream
            .set_write_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        self.stream.write_all(&frame).map_err(|e| e.to_string())?;
        let mut len = [0u8; 4];
        self.read_exact(&mut len, deadline)?;
        let len = u32::from_be_bytes(len) as usize;
        if len == 0 || len > MAX_AGENT_FRAME {
            return Err(format!(
                "it sent a message of {len} bytes (at most {MAX_AGENT_FRAME} are read)"
            ));
        }
        let mut reply = vec![0u8; len];
        self.read_exact(&mut reply, deadline)?;
        Ok(reply)
    }

    /// Fills `buf` before `deadline`, however the agent spreads its bytes.
    fn read_exact(&mut self, buf: &mut [u8], deadline: Instant) -> Result<(), String> {
        let mut filled = 0;
        while filled < buf.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err("it did not answer in time".into());
            }
            self.stream
                .set_read_timeout(Some(left))
                .map_err(|e| e.to_string())?;
            match self.stream.read(&mut buf[filled..]) {
                Ok(0) => return Err("it closed the connection".into()),
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err("it did not answer in time".into())
                }
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(())
    }
}

/// The public key of a key file: the file itself if it is one (`-f id.pub`, the private half
/// in the agent), else `FILE.pub` beside it. `None` when there is none to read; the signature's
/// own key is checked afterwards in any case.
fn public_key_beside(key: &Path) -> Option<PublicKey> {
    // Only files named .pub are read: never the private key's bytes.
    let path = if key.extension().is_some_and(|e| e == "pub") {
        key.to_path_buf()
    } else {
        let mut p = key.as_os_str().to_owned();
        p.push(".pub");
        PathBuf::from(p)
    };
    let file = std::fs::File::open(path).ok()?;
    let mut text = String::new();
    file.take(sshsig::MAX_ARMORED_BYTES as u64)
        .read_to_string(&mut text)
        .ok()?;
    PublicKey::parse_openssh(text.lines().next()?).ok()
}

/// `ssh-keygen -Y sign -n jit-grant@v1 -f KEY`, message on stdin, armour on stdout. Its
/// stderr is passed through live (it may say "Confirm user presence for key …") and kept for
/// the error.
fn sign_with_keygen(key: &Path, message: &[u8]) -> Result<Signature, SignError> {
    let mut child = Command::new("ssh-keygen")
        .args(["-Y", "sign", "-n", NAMESPACE, "-f"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| SignError::KeygenMissing(e.to_string()))?;
    let failed = |stderr: String| SignError::KeygenFailed {
        key: key.to_path_buf(),
        stderr,
    };

    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| failed("no stdin".into()))?;
    let message = message.to_vec();
    // A thread, so a message larger than the pipe cannot deadlock against a full stdout.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&message);
    });
    let mut stdout = child
        .stdout
        .take()
        .ok_or_else(|| failed("no stdout".into()))?;
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = (&mut stdout)
            .take(sshsig::MAX_ARMORED_BYTES as u64 + 1)
            .read_to_end(&mut out);
        out
    });
    let mut stderr = child
        .stderr
        .take()
        .ok_or_else(|| failed("no stderr".into()))?;
    let errors = std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut buf = [0u8; 1024];
        while let Ok(n) = stderr.read(&mut buf) {
            if n == 0 {
                break;
            }
            let _ = std::io::stderr().write_all(&buf[..n]);
            let room = MAX_STDERR.saturating_sub(kept.len());
            kept.extend_from_slice(&buf[..n.min(room)]);
        }
        String::from_utf8_lossy(&kept).into_owned()
    });

    let deadline = Instant::now() + KEYGEN_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(failed(format!(
                    "it did not finish within {} s",
                    KEYGEN_TIMEOUT.as_secs()
                )));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(failed(e.to_string())),
        }
    };
    let _ = writer.join();
    let out = reader.join().unwrap_or_default();
    let err_text = errors.join().unwrap_or_default();
    if !status.success() {
        return Err(failed(if err_text.trim().is_empty() {
            format!("it exited with {status}")
        } else {
            err_text
        }));
    }
    let text = String::from_utf8(out).map_err(|_| failed("its output is not text".into()))?;
    Signature::parse_armored(&text).map_err(SignError::BadResult)
}

#[cfg(test)]
mod tests {
    //! The agent's answers are read with bounds: a broken or hostile agent (a forwarded socket
    //! on a shared host) gets an error, never a huge allocation or a hang. These speak as the
    //! agent from a socket of their own; the real ssh-agent is in shell/fleet/real_ssh_tests.rs.

    use super::*;
    use std::os::unix::net::UnixListener;

    /// An "agent" that reads one request and answers `reply` (raw bytes, length included).
    fn fake_agent(tag: &str, reply: Vec<u8>) -> (PathBuf, std::thread::JoinHandle<()>) {
        let path =
            std::env::temp_dir().join(format!("jitd-fakeagent-{tag}-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        let handle = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut len = [0u8; 4];
            conn.read_exact(&mut len).unwrap();
            let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
            conn.read_exact(&mut body).unwrap();
            let _ = conn.write_all(&reply);
        });
        (path, handle)
    }

    fn sign_at(path: &Path) -> SignError {
        let e = sign_with(b"m", &KeySource::Agent, &|_| true, Some(path)).unwrap_err();
        let _ = std::fs::remove_file(path);
        e
    }

    #[test]
    fn an_agent_announcing_a_huge_message_is_refused_before_reading_it() {
        let (path, agent) = fake_agent("huge", vec![0xff, 0xff, 0xff, 0xff, 12]);
        let e = sign_at(&path);
        agent.join().unwrap();
        assert!(
            e.to_string().contains("4294967295 bytes (at most 262144"),
            "{e}"
        );
    }

    #[test]
    fn an_agent_claiming_billions_of_keys_is_refused_when_they_are_missing() {
        let mut body = vec![AGENT_IDENTITIES_ANSWER];
        body.extend_from_slice(&u32::MAX.to_be_bytes());
        let mut reply = Vec::new();
        put_string(&mut reply, &body);
        let (path, agent) = fake_agent("count", reply);
        let e = sign_at(&path);
        agent.join().unwrap();
        assert!(matches!(e, SignError::Agent { .. }), "{e}");
        assert!(e.to_string().contains("cut short"), "{e}");
    }

    #[test]
    fn an_agent_that_hangs_up_is_an_error_that_names_its_socket() {
        let (path, agent) = fake_agent("eof", Vec::new());
        let e = sign_at(&path);
        agent.join().unwrap();
        assert!(e.to_string().contains("closed the connection"), "{e}");
        assert!(e.to_string().contains(&path.display().to_string()), "{e}");
    }
}
