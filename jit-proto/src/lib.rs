//! The jit wire protocol, shared by `jitd`, `jit-elevate` and the `pam_jit` module.
//!
//! A connection carries one request and one response. Each is a frame: a 4-byte big-endian
//! length followed by that many bytes of JSON. This crate depends on serde, serde_json and libc
//! only, because the PAM module links it into sshd and sudo.

pub mod client;
pub mod command;
pub mod duration;
pub mod frame;
pub mod message;
pub mod peer;

pub use client::{Client, ClientError};
pub use message::*;

/// Where jitd listens unless the configuration says otherwise.
pub const DEFAULT_SOCKET: &str = "/run/jitd/jitd.sock";

/// Environment variable every CLI honours for the socket path.
pub const SOCKET_ENV: &str = "JITD_SOCKET";

/// Bumped on any incompatible change to [`message`]; the daemon refuses other versions.
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest frame either side accepts. A request is a few hundred bytes; a full `list` of a
/// busy host stays well under this, and anything bigger is refused rather than buffered.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;

/// `RequestView::uid` of a fleet request whose requester has no account on the host showing
/// it (fleet requests name users; each host resolves the name itself).
pub const NO_UID: u32 = u32::MAX;
