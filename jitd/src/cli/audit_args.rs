//! The command-line arguments of `jitd audit` and `jitd report`, apart from the code that runs
//! them so that xtask can render them into man pages without compiling the audit code.

use std::path::PathBuf;

use chrono::{DateTime, NaiveDate, Utc};
use clap::{Args, Subcommand};

#[derive(Args, Debug)]
pub struct AuditArgs {
    /// Configuration file naming the state dir that holds audit.log.
    #[arg(long, global = true, env = crate::config::config_file::CONFIG_ENV, default_value = crate::config::config_file::DEFAULT_CONFIG)]
    pub config: PathBuf,

    #[command(subcommand)]
    pub command: Option<AuditCommand>,

    /// Only records at or after T: RFC 3339, YYYY-MM-DD (UTC), or a duration ago (2h, 7d).
    #[arg(long, value_name = "T", value_parser = parse_time)]
    pub since: Option<DateTime<Utc>>,
    /// Only records before T (same forms as --since).
    #[arg(long, value_name = "T", value_parser = parse_time)]
    pub until: Option<DateTime<Utc>>,
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
    #[arg(long, env = crate::config::config_file::CONFIG_ENV, default_value = crate::config::config_file::DEFAULT_CONFIG)]
    pub config: PathBuf,
    #[arg(long, conflicts_with = "html")]
    pub json: bool,
    /// Write the report as one self-contained HTML page to FILE (charts inline, nothing
    /// loaded from elsewhere).
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Only usage from records at or after T (as for `jitd audit`).
    #[arg(long, value_name = "T", value_parser = parse_time)]
    pub since: Option<DateTime<Utc>>,
    /// Only usage from records before T.
    #[arg(long, value_name = "T", value_parser = parse_time)]
    pub until: Option<DateTime<Utc>>,
}

/// `--since`/`--until`: RFC 3339, a UTC date, or a duration before now.
pub fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc());
    }
    let ago = jit_proto::duration::parse(s).map_err(|_| {
        format!("invalid time {s:?}: write RFC 3339 (2026-11-29T10:00:00Z), a date (2026-11-29) or a duration ago (2h, 7d)")
    })?;
    let ago = chrono::Duration::from_std(ago).map_err(|e| e.to_string())?;
    Ok(Utc::now() - ago)
}
