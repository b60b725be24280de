//! The effects shell: everything that touches the socket, disk, sudoers, processes and logs.

pub mod clock;
pub mod enforcement;
pub mod event_log;
pub mod identity;
pub mod notify;
pub mod server;
pub mod service;
pub mod store;
pub mod submission;
pub mod view;
