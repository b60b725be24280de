//! The daemon: the socket server and who is calling (peer credentials), the request service
//! that applies `core`'s lifecycle and persists each change before answering, submission
//! checks, the views CLIs see, the store, the clock and systemd readiness.
//!
//! It orchestrates the other shell folders (host, audit, notify) through their ports; it does
//! not touch sudoers, processes or log sinks itself.

pub mod clock;
pub mod identity;
pub mod rate_limit;
pub mod server;
pub mod service;
pub mod store;
pub mod submission;
pub mod systemd_ready;
pub mod view;
