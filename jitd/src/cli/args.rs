//! The command line of `jitd`: the daemon (`serve`) and the approvers' commands.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub const EXIT_CODES: &str = "\
Exit status:
  0  success
  1  jitd refused the request (not allowed, wrong state, bad input); the message says why
  2  usage error
  3  jitd could not be reached or answered garbage (is it running? see --socket)
  4  the configuration is invalid (serve, check-config)";

#[derive(Parser, Debug)]
#[command(
    name = "jitd",
    version,
    about = "Just-in-time privileged access: the daemon and the approvers' CLI",
    after_help = EXIT_CODES
)]
pub struct Cli {
    /// The daemon's socket.
    #[arg(long, global = true, env = jit_proto::SOCKET_ENV, default_value = jit_proto::DEFAULT_SOCKET)]
    pub socket: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the daemon in the foreground.
    Serve {
        /// Configuration file.
        #[arg(long, env = crate::config::config_file::CONFIG_ENV, default_value = crate::config::config_file::DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Validate a configuration file without starting.
    CheckConfig {
        #[arg(env = crate::config::config_file::CONFIG_ENV, default_value = crate::config::config_file::DEFAULT_CONFIG)]
        file: PathBuf,
    },
    /// List pending and active requests (all of them with --all).
    List {
        /// Include ended requests.
        #[arg(long)]
        all: bool,
        /// Only break-glass grants nobody has reviewed yet.
        #[arg(long, conflicts_with = "all")]
        unreviewed: bool,
        /// A list shows a hundred requests, newest first: page 2 is the hundred before them.
        #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
        page: u32,
        #[arg(long)]
        json: bool,
    },
    /// Mark a break-glass grant reviewed.
    Review {
        id: String,
        #[arg(long)]
        comment: String,
        #[arg(long)]
        json: bool,
    },
    /// Reload the policy from the configuration file (as SIGHUP does; root only).
    Reload,
    /// Print jit's metrics in Prometheus' text format (root or an approver). For
    /// node_exporter's textfile collector, set `metrics_textfile` instead.
    Metrics,
    /// Which role covers a request, who must approve, whether a rule approves it at once.
    /// Evaluated from the configuration file, so it works while the daemon is down.
    Explain(ExplainArgs),
    /// Show one request with its decisions and sessions.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Approve a pending request, or an active grant's pending extension. Says on stderr what
    /// it approves, and approves only that: if it changed meanwhile, nothing is approved.
    Approve {
        id: String,
        #[arg(long)]
        comment: Option<String>,
        /// Approve only if what is up for decision is still what this token (the
        /// `approval_token` of `jitd list --json` or `show --json`) names.
        #[arg(long, value_name = "TOKEN")]
        expect: Option<String>,
        /// Fleet requests: sign with this private key file (`ssh-keygen -Y sign`) instead of
        /// a key in your ssh-agent.
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Deny a pending request.
    Deny {
        id: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        json: bool,
    },
    /// End an active grant now.
    Revoke {
        id: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        json: bool,
    },
    /// Grant access to a user directly; prints the new grant's id.
    Grant(GrantArgs),
    /// Fleet mode: the shared store as this host sees it.
    #[command(subcommand)]
    Fleet(FleetCommand),
    /// Read the audit log (works while the daemon is down); `jitd audit verify` checks it.
    Audit(crate::cli::audit_args::AuditArgs),
    /// Standing privileges on this host and how jit is used.
    Report(crate::cli::audit_args::ReportArgs),
    /// Play back the recorded sessions of a grant (root, or a member of auditor_groups).
    Replay(ReplayArgs),
}

#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// The grant whose sessions to play.
    pub id: String,
    /// Only this session, counted from 1 (`jitd audit --id ID` lists them).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub session: Option<u32>,
    /// Configuration file naming recordings_dir (root plays the recordings itself).
    #[arg(long, env = crate::config::config_file::CONFIG_ENV, default_value = crate::config::config_file::DEFAULT_CONFIG)]
    pub config: PathBuf,
}

#[derive(Subcommand, Debug)]
pub enum FleetCommand {
    /// The store's members, this host's sync position and lag, the hosts alive.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Remove from the store the requests over for longer than --older-than (root). Hosts
    /// read at most 100,000 requests, so a long-lived fleet needs this, e.g. weekly.
    Gc {
        /// How long a request must have been over (its pending time and a whole window
        /// after it), e.g. 30d, 12h.
        #[arg(long, value_name = "DUR", value_parser = parse_duration, default_value = "30d")]
        older_than: std::time::Duration,
        /// Say what would go; remove nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["ssh", "command"])))]
pub struct GrantArgs {
    /// The user who receives the grant.
    pub user: String,
    /// How long, e.g. 30m, 2h (default: the configured default_duration).
    #[arg(long = "for", value_name = "DUR", value_parser = parse_duration)]
    pub duration: Option<std::time::Duration>,
    #[arg(long)]
    pub reason: String,
    #[arg(long)]
    pub ticket: Option<String>,
    /// Grant SSH login to this host.
    #[arg(long)]
    pub ssh: bool,
    /// Grant this exact command line, run as root through sudo.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["ssh", "command"])))]
pub struct ExplainArgs {
    /// The requester.
    pub user: String,
    /// Ask under this role.
    #[arg(long)]
    pub role: Option<String>,
    /// When (RFC 3339, e.g. 2026-03-30T09:30:00+02:00; default: now).
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    /// The duration asked for (default: the role's).
    #[arg(long = "for", value_name = "DUR", value_parser = parse_duration)]
    pub duration: Option<std::time::Duration>,
    #[arg(long)]
    pub ssh: bool,
    #[arg(long)]
    pub json: bool,
    /// Configuration file.
    #[arg(long, env = crate::config::config_file::CONFIG_ENV, default_value = crate::config::config_file::DEFAULT_CONFIG)]
    pub config: PathBuf,
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    jit_proto::duration::parse(s).map_err(|e| e.to_string())
}
