//! Fleet signatures against the real OpenSSH tools of this host: keys made by ssh-keygen,
//! signatures made by `ssh-keygen -Y sign` checked by `allowed_signers::check`, and
//! signatures made by `fleet_sign` (through a real `ssh-agent`, or a key file) checked by
//! `ssh-keygen -Y verify`. Both directions, so jit and OpenSSH agree on what a signature and
//! an allowed_signers file mean.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use ring::digest;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair};

use crate::cli::fleet_sign::{self, KeySource, SignError};
use crate::core::fleet::allowed_signers::{check, AllowedSigners};
use crate::core::fleet::sshsig::{
    put_string, signed_data, HashAlg, PublicKey, SigError, Signature, NAMESPACE,
};
use crate::shell::fleet::allowed_signers_file;

const MESSAGE: &[u8] = b"jit-approval v1\nrequest_sha256=00\nid=k3j9x0a2mq\napprover=alice\n";

/// A directory of its own per test, removed at the end.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let dir =
            std::env::temp_dir().join(format!("jitd-fleetsig-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        Scratch(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A key made by ssh-keygen: its private file and its public key.
struct Key {
    file: PathBuf,
    public: PublicKey,
    line: String,
}

fn keygen(dir: &Scratch, name: &str, args: &[&str]) -> Key {
    let file = dir.path(name);
    let out = Command::new("ssh-keygen")
        .args(["-q", "-N", "", "-C", name, "-f"])
        .arg(&file)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = std::fs::read_to_string(file.with_extension("pub")).unwrap();
    let line = line.trim().to_string();
    Key {
        public: PublicKey::parse_openssh(&line).unwrap(),
        file,
        line,
    }
}

fn keys(dir: &Scratch) -> Vec<Key> {
    vec![
        keygen(dir, "ed25519", &["-t", "ed25519"]),
        keygen(dir, "ecdsa", &["-t", "ecdsa", "-b", "256"]),
        keygen(dir, "rsa", &["-t", "rsa", "-b", "3072"]),
    ]
}

fn keygen_sign(key: &Path, namespace: &str, message: &[u8]) -> String {
    let out = run_with_stdin(
        Command::new("ssh-keygen")
            .args(["-Y", "sign", "-n", namespace, "-f"])
            .arg(key),
        message,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `ssh-keygen -Y verify -f allowed_signers -I principal -n jit-grant@v1 -s SIG < MSG`.
fn keygen_verify(dir: &Scratch, allowed: &str, principal: &str, sig: &str, message: &[u8]) -> bool {
    let signers = dir.path("allowed_signers.verify");
    std::fs::write(&signers, allowed).unwrap();
    let sig_file = dir.path("sig.verify");
    std::fs::write(&sig_file, sig).unwrap();
    let out = run_with_stdin(
        Command::new("ssh-keygen")
            .args(["-Y", "verify", "-n", NAMESPACE, "-I", principal, "-f"])
            .arg(&signers)
            .arg("-s")
            .arg(&sig_file),
        message,
    );
    out.status.success()
}

fn run_with_stdin(cmd: &mut Command, input: &[u8]) -> std::process::Output {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

fn now() -> chrono::DateTime<Utc> {
    Utc::now()
}

fn signers(text: &str) -> AllowedSigners {
    AllowedSigners::parse(text).unwrap().0
}

/// A real `ssh-agent -D -a SOCK`, killed (by its own pid) when the test ends.
struct Agent {
    child: Child,
    socket: PathBuf,
}

impl Agent {
    fn start(dir: &Scratch) -> Agent {
        let socket = dir.path("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut agent = Agent { child, socket };
        let deadline = Instant::now() + Duration::from_secs(10);
        // Ready once it accepts a connection: the socket's file appears at bind(), before
        // listen(), and a connect in between is refused (what a failure of this test under load
        // fits).
        while std::os::unix::net::UnixStream::connect(&agent.socket).is_err() {
            assert!(
                agent.child.try_wait().unwrap().is_none(),
                "ssh-agent exited"
            );
            assert!(
                Instant::now() < deadline,
                "ssh-agent did not listen in 10 s"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        agent
    }

    fn add(&self, key: &Key) {
        let out = Command::new("ssh-add")
            .arg(&key.file)
            .env("SSH_AUTH_SOCK", &self.socket)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn sign(&self, wanted: &dyn Fn(&PublicKey) -> bool) -> Result<String, SignError> {
        fleet_sign::sign_with(MESSAGE, &KeySource::Agent, wanted, Some(&self.socket))
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn what_is_not_a_valid_listed_signature_is_refused() {
    let dir = Scratch::new("deny");
    let [alice, bob, carol] = <[Key; 3]>::try_from(keys(&dir)).ok().unwrap();
    let allowed = format!(
        "alice {}\nbob {}\n*,!carol {}\n",
        alice.line, bob.line, carol.line
    );
    let s = signers(&allowed);
    let sig = keygen_sign(&alice.file, NAMESPACE, MESSAGE);

    // A changed message.
    let tampered = b"jit-approval v1\nrequest_sha256=00\nid=k3j9x0a2mq\napprover=mallory\n";
    assert_eq!(
        check(&s, "alice", tampered, &sig, now()),
        Err(SigError::BadSignature)
    );
    // A signature for another namespace (a git commit signature, say).
    let git = keygen_sign(&alice.file, "git", MESSAGE);
    assert!(matches!(
        check(&s, "alice", MESSAGE, &git, now()),
        Err(SigError::WrongNamespace { .. })
    ));
    // A key nobody listed.
    let stranger = keygen(&dir, "stranger", &["-t", "ed25519"]);
    let e = check(
        &s,
        "alice",
        MESSAGE,
        &keygen_sign(&stranger.file, NAMESPACE, MESSAGE),
        now(),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "key {} is not in allowed_signers for \"alice\"",
            stranger.public.fingerprint()
        )
    );
    // Alice's key, claiming to be bob.
    assert!(matches!(
        check(&s, "bob", MESSAGE, &sig, now()),
        Err(SigError::KeyNotAllowed { .. })
    ));
    assert!(!keygen_verify(&dir, &allowed, "bob", &sig, MESSAGE));
    // Carol's key is listed for everyone but carol.
    let carols = keygen_sign(&carol.file, NAMESPACE, MESSAGE);
    assert_eq!(check(&s, "dave", MESSAGE, &carols, now()), Ok(()));
    assert!(matches!(
        check(&s, "carol", MESSAGE, &carols, now()),
        Err(SigError::KeyNotAllowed { .. })
    ));
    assert!(!keygen_verify(&dir, &allowed, "carol", &carols, MESSAGE));
    // An expired listing.
    let expired = format!("alice valid-before=\"20250101Z\" {}\n", alice.line);
    assert!(matches!(
        check(&signers(&expired), "alice", MESSAGE, &sig, now()),
        Err(SigError::KeyNotAllowed { .. })
    ));
    assert!(!keygen_verify(&dir, &expired, "alice", &sig, MESSAGE));
    // Truncated, garbage and oversized armour.
    let cut = &sig[..sig.len() / 2];
    assert!(matches!(
        check(&s, "alice", MESSAGE, cut, now()),
        Err(SigError::BadArmor(_))
    ));
    let body_cut = sig.replacen("\n", "\nAAAA", 1);
    assert!(check(&s, "alice", MESSAGE, &body_cut, now()).is_err());
    assert!(matches!(
        check(&s, "alice", MESSAGE, "\u{0}\u{1}garbage", now()),
        Err(SigError::BadArmor(_))
    ));
    let oversized = sig.repeat(64);
    assert!(matches!(
        check(&s, "alice", MESSAGE, &oversized, now()),
        Err(SigError::TooLarge { .. })
    ));

    // And the same signature, untouched, is good: the refusals above were for their reasons.
    assert_eq!(check(&s, "alice", MESSAGE, &sig, now()), Ok(()));
    assert!(keygen_verify(&dir, &allowed, "alice", &sig, MESSAGE));
}

#[test]
fn an_rsa_sha1_signature_is_refused_here_as_by_ssh_keygen() {
    let dir = Scratch::new("sha1");
    let rsa = keygen(&dir, "rsa", &["-t", "rsa", "-b", "3072"]);
    let agent = Agent::start(&dir);
    agent.add(&rsa);
    let sig = fleet_sign::agent_rsa_sha1_signature(&agent.socket, &rsa.public, MESSAGE)
        .unwrap()
        .armor();
    let allowed = format!("alice {}\n", rsa.line);
    let e = check(&signers(&allowed), "alice", MESSAGE, &sig, now()).unwrap_err();
    assert_eq!(e, SigError::RsaSha1);
    assert!(!keygen_verify(&dir, &allowed, "alice", &sig, MESSAGE));
}

#[test]
fn signatures_made_by_ssh_keygen_pass_check_for_each_key_type() {
    let dir = Scratch::new("keygen");
    let mut all = keys(&dir);
    all.push(keygen(&dir, "ecdsa384", &["-t", "ecdsa", "-b", "384"]));
    for key in all {
        let allowed = format!("alice {}\n", key.line);
        let sig = keygen_sign(&key.file, NAMESPACE, MESSAGE);
        assert_eq!(
            check(&signers(&allowed), "alice", MESSAGE, &sig, now()),
            Ok(()),
            "{}",
            key.public.algorithm()
        );
        // A non-empty `reserved` field is ignored, by ssh-keygen as here.
        let mut blob = Signature::parse_armored(&sig).unwrap().to_blob();
        let ns_end = blob
            .windows(12)
            .position(|w| w == NAMESPACE.as_bytes())
            .unwrap()
            + 12;
        blob.splice(ns_end..ns_end + 4, [0, 0, 0, 1, b'x']);
        let reserved = Signature::from_blob(&blob).unwrap().armor();
        assert_ne!(reserved, sig);
        assert!(keygen_verify(&dir, &allowed, "alice", &reserved, MESSAGE));
        assert_eq!(
            check(&signers(&allowed), "alice", MESSAGE, &reserved, now()),
            Ok(())
        );
        // The fingerprint is the one ssh-keygen -l prints.
        let out = Command::new("ssh-keygen")
            .arg("-lf")
            .arg(key.file.with_extension("pub"))
            .output()
            .unwrap();
        let printed = String::from_utf8(out.stdout).unwrap();
        assert!(printed.contains(&key.public.fingerprint()), "{printed}");
    }
}

#[test]
fn signing_through_a_real_ssh_agent_verifies_with_ssh_keygen() {
    let dir = Scratch::new("agent");
    let keys = keys(&dir);
    let agent = Agent::start(&dir);

    // An empty agent: the approver is told to add a key.
    let e = agent.sign(&|_| true).unwrap_err();
    assert_eq!(e, SignError::NoWantedKey { offered: vec![] });
    assert!(e.to_string().contains("ssh-add"), "{e}");

    for key in &keys {
        agent.add(key);
    }
    for key in &keys {
        let want = key.public.clone();
        let sig = agent.sign(&|k| *k == want).unwrap();
        let parsed = Signature::parse_armored(&sig).unwrap();
        assert_eq!(parsed.key(), &key.public);
        let allowed = format!("alice {}\n", key.line);
        assert!(
            keygen_verify(&dir, &allowed, "alice", &sig, MESSAGE),
            "ssh-keygen refused the agent's {} signature",
            key.public.algorithm()
        );
        assert_eq!(
            check(&signers(&allowed), "alice", MESSAGE, &sig, now()),
            Ok(())
        );
        assert!(!keygen_verify(&dir, &allowed, "alice", &sig, b"other"));
    }

    // Keys in the agent, none listed for the approver: the message lists what it holds.
    let e = agent.sign(&|_| false).unwrap_err();
    let SignError::NoWantedKey { offered } = &e else {
        panic!("{e}")
    };
    assert_eq!(offered.len(), 3);
    let shown = e.describe(Path::new("/etc/jit/allowed_signers"), "alice");
    assert!(
        shown.starts_with(
            "no key in your ssh-agent is listed in /etc/jit/allowed_signers for alice"
        ),
        "{shown}"
    );
    assert!(
        shown.contains("ssh-add") && shown.contains("--key FILE"),
        "{shown}"
    );

    // An agent that is gone.
    let gone = dir.path("nothing.sock");
    let e = fleet_sign::sign_with(MESSAGE, &KeySource::Agent, &|_| true, Some(&gone)).unwrap_err();
    assert!(matches!(e, SignError::Agent { .. }), "{e}");
    let e = fleet_sign::sign_with(MESSAGE, &KeySource::Agent, &|_| true, None).unwrap_err();
    assert_eq!(e, SignError::NoAgent);
}

#[test]
fn signing_with_a_key_file_verifies_with_ssh_keygen() {
    let dir = Scratch::new("file");
    for key in keys(&dir) {
        let source = KeySource::File(key.file.clone());
        let sig = fleet_sign::sign(MESSAGE, &source, &|_| true).unwrap();
        let allowed = format!("alice {}\n", key.line);
        assert!(keygen_verify(&dir, &allowed, "alice", &sig, MESSAGE));
        assert_eq!(
            check(&signers(&allowed), "alice", MESSAGE, &sig, now()),
            Ok(())
        );

        let e = fleet_sign::sign_with(MESSAGE, &source, &|_| false, None).unwrap_err();
        assert!(matches!(e, SignError::KeyNotWanted { .. }), "{e}");
        // Without the .pub beside it, the key is checked once signed.
        std::fs::remove_file(key.file.with_extension("pub")).unwrap();
        let e = fleet_sign::sign_with(MESSAGE, &source, &|_| false, None).unwrap_err();
        assert_eq!(
            e,
            SignError::KeyNotWanted {
                key: key.file.clone(),
                fingerprint: key.public.fingerprint()
            }
        );
    }
    // ssh-keygen's own complaint reaches the approver.
    let missing = KeySource::File(dir.path("no-such-key"));
    let e = fleet_sign::sign_with(MESSAGE, &missing, &|_| true, None).unwrap_err();
    assert!(matches!(e, SignError::KeygenFailed { .. }), "{e}");
    assert!(e.to_string().contains("No such file"), "{e}");
}

/// FIDO keys cannot be made without a token, so this builds one: a synthetic FIDO key
/// (sk-ssh-ed25519@openssh.com, or sk-ecdsa-sha2-nistp256@openssh.com with `ecdsa`) whose
/// "token" is a ring key pair, signing what PROTOCOL.u2f says a token signs:
/// SHA256(application) ‖ flags ‖ counter ‖ SHA256(data). ssh-keygen accepting it shows the
/// layout is OpenSSH's. Returns the allowed_signers line and the armoured signature.
fn synthetic_fido_signature(ecdsa: bool, flags: u8) -> (String, String) {
    let application = b"ssh:";
    let data = signed_data(NAMESPACE, HashAlg::Sha512, MESSAGE);
    let mut token = Vec::new();
    token.extend_from_slice(digest::digest(&digest::SHA256, application).as_ref());
    token.push(flags);
    token.extend_from_slice(&7u32.to_be_bytes());
    token.extend_from_slice(digest::digest(&digest::SHA256, &data).as_ref());

    let mut blob = Vec::new();
    let mut sig = Vec::new();
    if ecdsa {
        let rng = SystemRandom::new();
        let alg = &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap();
        put_string(&mut blob, b"sk-ecdsa-sha2-nistp256@openssh.com");
        put_string(&mut blob, b"nistp256");
        put_string(&mut blob, pair.public_key().as_ref());
        let fixed = pair.sign(&rng, &token).unwrap();
        let mut rs = Vec::new();
        for half in fixed.as_ref().chunks(32) {
            // mpint: a leading zero when the top bit is set, none otherwise.
            let mut v: Vec<u8> = half.iter().copied().skip_while(|&b| b == 0).collect();
            if v.first().is_some_and(|b| b & 0x80 != 0) {
                v.insert(0, 0);
            }
            put_string(&mut rs, &v);
        }
        put_string(&mut sig, b"sk-ecdsa-sha2-nistp256@openssh.com");
        put_string(&mut sig, &rs);
    } else {
        let pair = Ed25519KeyPair::from_seed_unchecked(&[9; 32]).unwrap();
        put_string(&mut blob, b"sk-ssh-ed25519@openssh.com");
        put_string(&mut blob, pair.public_key().as_ref());
        put_string(&mut sig, b"sk-ssh-ed25519@openssh.com");
        put_string(&mut sig, pair.sign(&token).as_ref());
    }
    put_string(&mut blob, application);
    sig.push(flags);
    sig.extend_from_slice(&7u32.to_be_bytes());
    let key = PublicKey::from_blob(&blob).unwrap();
    let armored = Signature::from_parts(key.clone(), NAMESPACE, HashAlg::Sha512, sig).armor();
    (format!("alice {key}\n"), armored)
}

#[test]
fn a_fido_signature_verifies_here_and_in_ssh_keygen_only_when_touched() {
    let dir = Scratch::new("fido");
    for ecdsa in [false, true] {
        let (allowed, sig) = synthetic_fido_signature(ecdsa, 0x01);
        assert!(
            keygen_verify(&dir, &allowed, "alice", &sig, MESSAGE),
            "{allowed}"
        );
        assert_eq!(
            check(&signers(&allowed), "alice", MESSAGE, &sig, now()),
            Ok(())
        );
        assert_eq!(
            check(&signers(&allowed), "alice", b"other", &sig, now()),
            Err(SigError::BadSignature)
        );
        assert!(!keygen_verify(&dir, &allowed, "alice", &sig, b"other"));

        let (allowed, untouched) = synthetic_fido_signature(ecdsa, 0x00);
        assert_eq!(
            check(&signers(&allowed), "alice", MESSAGE, &untouched, now()),
            Err(SigError::NoUserPresence)
        );
    }
}

#[test]
fn a_host_loads_allowed_signers_only_from_where_only_root_can_write() {
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    let dir = Scratch::new("file-trust");
    let key = keygen(&dir, "k", &["-t", "ed25519"]);
    let file = dir.path("allowed_signers");
    std::fs::write(
        &file,
        format!("alice {}\nbob cert-authority {}\n", key.line, key.line),
    )
    .unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();

    let (loaded, warnings) = allowed_signers_file::load_with_warnings(&file).unwrap();
    assert!(loaded.allows("alice", &key.public, NAMESPACE, now()));
    assert_eq!(warnings.len(), 1);
    assert!(
        warnings[0].contains("allowed_signers line 2: cert-authority"),
        "{warnings:?}"
    );

    // Writable by its group: anyone in it could add an approver.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o664)).unwrap();
    let e = allowed_signers_file::load(&file).unwrap_err();
    assert!(e.contains("writable by its group"), "{e}");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();

    // Owned by a user.
    std::os::unix::fs::chown(&file, Some(65534), None).unwrap();
    let e = allowed_signers_file::load(&file).unwrap_err();
    assert!(e.contains("owned by uid 65534"), "{e}");
    std::os::unix::fs::chown(&file, Some(0), None).unwrap();

    // In a directory everyone can write to (without the sticky bit).
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o777)).unwrap();
    let e = allowed_signers_file::load(&file).unwrap_err();
    assert!(e.contains("writable by every user"), "{e}");
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o755)).unwrap();

    // Too large, and malformed.
    std::fs::write(&file, "#".repeat(1024 * 1024 + 1)).unwrap();
    assert!(allowed_signers_file::load(&file)
        .unwrap_err()
        .contains("larger than"));
    std::fs::write(&file, "alice ssh-ed25519 !!\n").unwrap();
    let e = allowed_signers_file::load(&file).unwrap_err();
    assert!(e.contains("line 1: invalid key"), "{e}");
    assert!(allowed_signers_file::load(&dir.path("missing"))
        .unwrap_err()
        .contains("cannot read"));
}
