//! Test harness.
pub mod pam;
pub mod sshd;
