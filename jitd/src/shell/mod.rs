//! The effects shell: everything that touches the socket, disk, sudoers, processes and logs.
mod cgroup;
pub mod failpoint;
mod pidfd;
mod process_scan;
pub mod sessions;
pub mod sudoers;
pub mod sudoers_rule;
mod terminal;
#[cfg(test)]
mod testing;
