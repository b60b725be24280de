//! OpenSSH allowed_signers: which keys may sign as which principal (ssh-keygen(1), ALLOWED SIGNERS).
//! PLACEHOLDER until the signatures branch is merged: refuses every signature.

use chrono::{DateTime, Utc};

#[derive(Debug, Default)]
pub struct AllowedSigners;

impl AllowedSigners {
    pub fn parse(_text: &str) -> Result<(AllowedSigners, Vec<String>), String> {
        Ok((AllowedSigners, Vec::new()))
    }
}

pub fn check(
    _signers: &AllowedSigners,
    _principal: &str,
    _message: &[u8],
    _armored: &str,
    _now: DateTime<Utc>,
) -> Result<(), String> {
    Err("signature checks are not built yet".into())
}
