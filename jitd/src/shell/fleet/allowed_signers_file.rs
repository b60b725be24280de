//! PLACEHOLDER until the signatures branch is merged.
use std::path::Path;

use crate::core::fleet::allowed_signers::AllowedSigners;

pub fn load(path: &Path) -> Result<AllowedSigners, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    AllowedSigners::parse(&text).map(|(s, _)| s)
}
