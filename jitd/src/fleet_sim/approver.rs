//! An approver who signs with an unencrypted Ed25519 OpenSSH key file (as `ssh-keygen -t
//! ed25519 -N ''` writes it), producing what `ssh-keygen -Y sign -n jit-grant@v1` would: the
//! benchmark signs thousands of approvals, and one ssh-keygen process each would measure
//! ssh-keygen. Hosts check the result with the real verification code.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use ring::signature::Ed25519KeyPair;

use crate::core::fleet::records::{approval_message, sha256_hex, ApprovalRecord};
use crate::core::fleet::sshsig::{
    put_string, signed_data, HashAlg, PublicKey, Reader, Signature, NAMESPACE,
};
use crate::core::model::GrantId;

pub struct Approver {
    name: String,
    pair: Ed25519KeyPair,
    public: PublicKey,
}

impl Approver {
    /// Reads `private_key` (OpenSSH format, no passphrase) for approver `name`.
    pub fn load(name: &str, private_key: &std::path::Path) -> Result<Approver, String> {
        let text = std::fs::read_to_string(private_key)
            .map_err(|e| format!("{}: {e}", private_key.display()))?;
        let armored: String = text
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<Vec<_>>()
            .concat();
        let bytes = STANDARD
            .decode(armored.trim())
            .map_err(|e| format!("not an OpenSSH private key: {e}"))?;
        let (seed, public_blob) = ed25519_seed(&bytes).map_err(|e| e.to_string())?;
        let public = PublicKey::from_blob(&public_blob).map_err(|e| e.to_string())?;
        let mut key_bytes = Reader::new(&public_blob);
        let _ = key_bytes.string("key type").map_err(|e| e.to_string())?;
        let public_raw = key_bytes.string("key").map_err(|e| e.to_string())?;
        let pair = Ed25519KeyPair::from_seed_and_public_key(&seed, public_raw)
            .map_err(|e| format!("the key pair does not match: {e}"))?;
        Ok(Approver {
            name: name.into(),
            pair,
            public,
        })
    }

    /// The approval record of request `id` whose stored bytes are `request`, signed as given
    /// at `at` (whole seconds, as `jitd approve` signs).
    pub fn approve_at(
        &self,
        id: &str,
        request: &[u8],
        at: DateTime<Utc>,
    ) -> Result<Vec<u8>, String> {
        let id = GrantId::try_from(id.to_string())?;
        let sha = sha256_hex(request);
        let message = approval_message(&sha, &id, &self.name, at);
        let data = signed_data(NAMESPACE, HashAlg::Sha512, message.as_bytes());
        let mut blob = Vec::new();
        put_string(&mut blob, b"ssh-ed25519");
        put_string(&mut blob, self.pair.sign(&data).as_ref());
        let sig = Signature::from_parts(self.public.clone(), NAMESPACE, HashAlg::Sha512, blob);
        serde_json::to_vec(&ApprovalRecord {
            request_sha256: sha,
            approved_at: at,
            sig: sig.armor(),
        })
        .map_err(|e| e.to_string())
    }
}

/// The seed and public key blob of an unencrypted `openssh-key-v1` Ed25519 key
/// (PROTOCOL.key).
fn ed25519_seed(bytes: &[u8]) -> Result<([u8; 32], Vec<u8>), String> {
    let e = |e: crate::core::fleet::sshsig::SigError| e.to_string();
    let mut r = Reader::new(bytes);
    if r.take(15, "magic").map_err(e)? != b"openssh-key-v1\0" {
        return Err("not an openssh-key-v1 private key".into());
    }
    let cipher = r.text("cipher").map_err(e)?;
    if cipher != "none" {
        return Err("the key has a passphrase: make one with ssh-keygen -N ''".into());
    }
    let _kdf = r.string("kdf").map_err(e)?;
    let _kdf_options = r.string("kdf options").map_err(e)?;
    if r.u32("keys").map_err(e)? != 1 {
        return Err("one key per file".into());
    }
    let public_blob = r.string("public key").map_err(e)?.to_vec();
    let mut p = Reader::new(r.string("private part").map_err(e)?);
    let (check1, check2) = (p.u32("check").map_err(e)?, p.u32("check").map_err(e)?);
    if check1 != check2 {
        return Err("the private part does not decode (checkints differ)".into());
    }
    if p.text("key type").map_err(e)? != "ssh-ed25519" {
        return Err("not an Ed25519 key".into());
    }
    let _public = p.string("public").map_err(e)?;
    let secret = p.string("secret").map_err(e)?;
    let seed: [u8; 32] = secret
        .get(..32)
        .and_then(|s| s.try_into().ok())
        .ok_or("an Ed25519 secret of the wrong size")?;
    Ok((seed, public_blob))
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::process::{Command, Stdio};

    use super::*;
    use crate::core::fleet::allowed_signers::{self, AllowedSigners};

    /// The benchmark's approvals must be the ones a real approver makes: `ssh-keygen -Y
    /// verify` accepts them, and so does jitd's check, for that request only.
    #[test]
    fn an_approval_signed_here_is_one_ssh_keygen_and_jitd_accept() {
        let dir = jit_tests::TempDir::new("fleet-sim-key");
        let key = dir.path().join("id");
        let made = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "bob", "-f"])
            .arg(&key)
            .output()
            .unwrap();
        assert!(made.status.success(), "ssh-keygen: {made:?}");
        let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
        let fields: Vec<&str> = public.split_whitespace().collect();
        let line = format!("bob {} {}\n", fields[0], fields[1]);
        let signers_file = dir.path().join("allowed_signers");
        std::fs::write(&signers_file, &line).unwrap();

        let approver = Approver::load("bob", &key).unwrap();
        let at: DateTime<Utc> = "2026-11-30T04:00:00Z".parse().unwrap();
        let request = b"{\"the\":\"request bytes\"}";
        let record: ApprovalRecord =
            serde_json::from_slice(&approver.approve_at("aaaaaaaaaa", request, at).unwrap())
                .unwrap();
        let id = GrantId::try_from("aaaaaaaaaa".to_string()).unwrap();
        let message = approval_message(&sha256_hex(request), &id, "bob", at);

        let sig_file = dir.path().join("sig");
        std::fs::write(&sig_file, &record.sig).unwrap();
        let mut verify = Command::new("ssh-keygen")
            .args(["-Y", "verify", "-n", NAMESPACE, "-I", "bob", "-f"])
            .arg(&signers_file)
            .arg("-s")
            .arg(&sig_file)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        verify
            .stdin
            .take()
            .unwrap()
            .write_all(message.as_bytes())
            .unwrap();
        let out = verify.wait_with_output().unwrap();
        assert!(out.status.success(), "ssh-keygen -Y verify: {out:?}");

        let (signers, _) = AllowedSigners::parse(&line).unwrap();
        assert_eq!(
            allowed_signers::check(&signers, "bob", message.as_bytes(), &record.sig, at),
            Ok(())
        );
        let other = approval_message(&sha256_hex(b"other bytes"), &id, "bob", at);
        assert!(
            allowed_signers::check(&signers, "bob", other.as_bytes(), &record.sig, at).is_err()
        );
    }
}
