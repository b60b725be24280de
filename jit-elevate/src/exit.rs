//! Exit statuses, as documented in `--help` and the README.

pub const DENIED: u8 = 10;
pub const TIMED_OUT: u8 = 11;
pub const CANCELLED: u8 = 12;
pub const UNREACHABLE: u8 = 13;
pub const REFUSED: u8 = 14;
pub const INTERRUPTED: u8 = 130;
