//! The argument types jitd's `cli.rs` names as `crate::audit_cmd::…`, for the man page only.
//! They live in jitd next to the code that runs the audit, which cannot be compiled in here;
//! keep the flags and help texts in step with `jitd/src/audit_cmd.rs` (times are plain
//! strings here: only their names and help are rendered).

use std::path::PathBuf;

use clap::{Args, Subcommand};

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AuditArgs {
    /// Configuration file naming the state dir that holds audit.log.
    #[arg(long, global = true, env = crate::config::CONFIG_ENV, default_value = crate::config::DEFAULT_CONFIG)]
    pub config: PathBuf,

    #[command(subcommand)]
    pub command: Option<AuditCommand>,

    /// Only records at or after T: RFC 3339, YYYY-MM-DD (UTC), or a duration ago (2h, 7d).
    #[arg(long, value_name = "T")]
    pub since: Option<String>,
    /// Only records before T (same forms as --since).
    #[arg(long, value_name = "T")]
    pub until: Option<String>,
    /// Only records where U is the requester or the approver.
    #[arg(long, value_name = "U")]
    pub user: Option<String>,
    /// Only records of this request.
    #[arg(long, value_name = "ID")]
    pub id: Option<String>,
    /// One JSON object per line, exactly as stored.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Check the hash chain: exit status 0 if intact, 1 naming the first bad line if not.
    Verify,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Configuration file naming the state and sudoers dirs.
    #[arg(long, env = crate::config::CONFIG_ENV, default_value = crate::config::DEFAULT_CONFIG)]
    pub config: PathBuf,
    #[arg(long)]
    pub json: bool,
}
