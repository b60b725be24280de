//! Reading a host's allowed_signers file: the trust anchor that says whose signatures grant
//! access here. Whoever can write it can approve anything on this host, so, as for jitd.toml,
//! a root jitd refuses it unless it and every directory above it are root's and writable by
//! nobody else ([`root_only`]).

// Wired into `jitd approve` and the fleet sync by the rest of fleet mode; until then only the
// tests call it.

use std::io::Read;
use std::path::Path;

use crate::config::root_only;
use crate::core::fleet::allowed_signers::{AllowedSigners, MAX_FILE_BYTES};

/// Loads and parses `path`; warnings (lines that never match) are dropped: see
/// [`load_with_warnings`] to show them.
pub fn load(path: &Path) -> Result<AllowedSigners, String> {
    load_with_warnings(path).map(|(signers, _)| signers)
}

/// Loads and parses `path`, with a warning ("PATH line N: why") for each line that will never
/// match. Errors say what to fix.
pub fn load_with_warnings(path: &Path) -> Result<(AllowedSigners, Vec<String>), String> {
    let shown = path.display();
    root_only::check(path).map_err(|e| {
        format!(
            "allowed_signers {shown}: {e}, so someone other than root could add an approver: \
             keep it root's (chown root:root; chmod 644) in a directory only root can change, \
             such as /etc/jit"
        )
    })?;
    let file = std::fs::File::open(path)
        .map_err(|e| format!("cannot read allowed_signers {shown}: {e}"))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot read allowed_signers {shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("allowed_signers {shown} is not a regular file"));
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read allowed_signers {shown}: {e}"))?;
    if bytes.len() > MAX_FILE_BYTES {
        return Err(format!(
            "allowed_signers {shown} is larger than {MAX_FILE_BYTES} bytes"
        ));
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| format!("allowed_signers {shown} is not UTF-8 text"))?;
    let (signers, warnings) =
        AllowedSigners::parse(&text).map_err(|e| format!("allowed_signers {shown} {e}"))?;
    let warnings = warnings
        .into_iter()
        .map(|w| format!("allowed_signers {shown} {w}"))
        .collect();
    Ok((signers, warnings))
}
