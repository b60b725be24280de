//! The pure core: lifecycle and policy, no I/O, clock injected.

pub mod authz;
pub mod lifecycle;
pub mod model;
pub mod registry;
