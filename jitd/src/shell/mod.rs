//! The effects shell: everything that touches the socket, disk, sudoers, processes and logs,
//! grouped by concern. Each folder's mod.rs says what it owns. The pure decisions live in
//! `core`; the shell carries them out and must not decide policy itself.

pub mod atomic_file;
pub mod audit;
pub mod daemon;
pub mod failpoint;
pub mod fleet;
pub mod host;
pub mod notify;
#[cfg(test)]
mod testing;
