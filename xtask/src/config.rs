//! The two constants jitd's `cli.rs` names as `crate::config::…` (defaults shown in the man page).
//! Must match `jitd/src/config.rs`.

pub const DEFAULT_CONFIG: &str = "/etc/jit/jitd.toml";
pub const CONFIG_ENV: &str = "JITD_CONFIG";
