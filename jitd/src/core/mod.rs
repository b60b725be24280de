//! The pure core: lifecycle and policy, no I/O, clock injected.
