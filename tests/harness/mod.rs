//! Test harness.
pub mod pam;
