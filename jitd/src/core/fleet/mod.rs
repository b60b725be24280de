//! Fleet mode's pure decisions: what the records in the shared store say, whose signatures
//! count, and which window (if any) this host enforces. No I/O: the shell's `fleet/` reads the
//! store and the trust anchors and carries the verdicts out.

pub mod allowed_signers;
pub mod book;
pub mod gc;
pub mod grant;
pub mod host_pattern;
pub mod records;
pub mod sshsig;
pub mod verdict;
