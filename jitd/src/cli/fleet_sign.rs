//! The approver's signature of a fleet approval: through ssh-agent or with a key file (ssh-keygen -Y sign).
//! PLACEHOLDER until the signatures branch is merged.

use std::path::PathBuf;

use crate::core::fleet::sshsig::PublicKey;

pub enum KeySource {
    Agent,
    File(PathBuf),
}

pub fn sign(
    _message: &[u8],
    _source: &KeySource,
    _wanted: &dyn Fn(&PublicKey) -> bool,
) -> Result<String, String> {
    Err("signing is not built yet".into())
}
