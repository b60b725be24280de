//! The two constants jitd's `cli/args.rs` names as `crate::config::config_file::…` (defaults shown in
//! the man page). Must match `jitd/src/config/config_file.rs`.

pub const DEFAULT_CONFIG: &str = "/etc/jit/jitd.toml";
pub const CONFIG_ENV: &str = "JITD_CONFIG";
