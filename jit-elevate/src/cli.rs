//! The command line of `jit-elevate`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub const EXIT_CODES: &str = "\
Exit status:
  N    once approved, the command's own exit status (128+N if it died of signal N)
  0    --no-wait: the request was created; --ssh: SSH login granted; other commands: success
  2    usage error
  10   the request was denied
  11   no decision in time (the request timed out, or --timeout passed and it was cancelled)
  12   the request was cancelled
  13   jitd could not be reached or answered garbage (is it running? see --socket)
  14   jitd refused the request (bad input, not allowed) or could not install the grant
  130  interrupted with Ctrl-C while waiting (the request was cancelled)";

#[derive(Parser, Debug)]
#[command(
    name = "jit-elevate",
    version,
    about = "Ask for just-in-time root for one command (or SSH login), wait for approval, run it",
    after_help = EXIT_CODES
)]
pub struct Cli {
    /// The daemon's socket.
    #[arg(long, global = true, env = jit_proto::SOCKET_ENV, default_value = jit_proto::DEFAULT_SOCKET)]
    pub socket: PathBuf,

    /// How long the grant should last, e.g. 15m, 2h (default: the policy's).
    #[arg(long = "for", value_name = "DUR", value_parser = parse_duration)]
    pub duration: Option<std::time::Duration>,

    /// Why you need it (shown to approvers and kept in the audit log).
    #[arg(long)]
    pub reason: Option<String>,

    /// A ticket reference, e.g. INC-42.
    #[arg(long)]
    pub ticket: Option<String>,

    /// Ask under this role rather than the best-matching one.
    #[arg(long)]
    pub role: Option<String>,

    /// Print the new request's id and exit without waiting.
    #[arg(long)]
    pub no_wait: bool,

    /// Stop waiting (and cancel the request) after this long.
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub timeout: Option<std::time::Duration>,

    /// Ask for SSH login to this host instead of a command.
    #[arg(long)]
    pub ssh: bool,

    /// Fleet mode: ask for other hosts, by name globs separated by commas (`db-*,web-1`).
    /// Approved, the grant is enforced on every matching host; the command runs here only if
    /// this host is one of them.
    #[arg(long, value_name = "GLOBS")]
    pub hosts: Option<String>,

    /// The command to run as root, after `--`. jitd looks a bare name up in the fixed secure PATH
    /// (/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin), never in yours.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,

    #[command(subcommand)]
    pub action: Option<Action>,
}

#[derive(Subcommand, Debug)]
pub enum Action {
    /// Show your requests, or one of them.
    Status {
        id: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// List your pending and active requests.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Withdraw a pending request.
    Cancel { id: String },
    /// Your task is finished: end the grant now.
    Done { id: String },
    /// Ask for more time on an active grant (the role's approval rules apply again).
    Extend {
        id: String,
        /// How much longer, e.g. 15m.
        #[arg(long = "for", value_name = "DUR", value_parser = parse_duration)]
        more: std::time::Duration,
    },
}

impl Cli {
    /// Request options only make sense without a subcommand.
    pub fn has_request_options(&self) -> bool {
        self.duration.is_some()
            || self.reason.is_some()
            || self.ticket.is_some()
            || self.role.is_some()
            || self.no_wait
            || self.timeout.is_some()
            || self.ssh
            || !self.command.is_empty()
    }
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    jit_proto::duration::parse(s).map_err(|e| e.to_string())
}
