//! The pure core: lifecycle and policy, no I/O, clock injected.

pub mod approval_token;
pub mod authz;
pub mod command_pattern;
pub mod events;
pub mod fleet;
pub mod left_behind;
pub mod lifecycle;
pub mod metrics;
pub mod model;
pub mod policy;
pub mod recording;
pub mod registry;
pub mod short_text;
pub mod sudo_invocation;
pub mod time_window;
pub mod timestamp;
pub mod tlog;
pub mod unstored_change;
pub mod user_manager;
pub mod vetting;
