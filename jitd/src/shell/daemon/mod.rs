//! The daemon: the socket server and who is calling (peer credentials), the request service
//! that applies `core`'s lifecycle and persists each change before answering, submission
//! checks, the views CLIs see, the store and the state directory's ownership checks, the clock
//! and systemd readiness.
//!
//! It orchestrates the other shell folders (host, audit, notify) through their ports; it does
//! not touch sudoers, processes or log sinks itself.

pub mod clock;
pub mod identity;
pub mod rate_limit;
pub mod registry_lock;
pub mod server;
pub mod service;
pub mod state_dir;
pub mod store;
pub mod submission;
pub mod systemd_ready;
pub mod view;
