//! Telling people: webhook notifiers (Slack, generic JSON), what each notification says,
//! the bounded retry queue they share, and one-line notices on approvers' terminals.
//!
//! Best effort and never in the way: nothing here may delay a decision or an expiry, and
//! nothing here is part of the audit trail.

pub mod payload;
pub mod queue;
pub mod terminal_notice;
pub mod webhook;
