//! OpenSSH SSHSIG signatures (PROTOCOL.sshsig): parsing the armour and verifying with ring.
//! PLACEHOLDER until the signatures branch is merged.

pub const NAMESPACE: &str = "jit-grant@v1";

pub struct PublicKey;
