//! `jitd explain USER [--role R] [--at TIME] (--ssh | -- CMD...)`: the policy's verdict on a
//! request, from the configuration file (so it also works while the daemon is down, and on a
//! policy before it is deployed with `--config`).

use std::process::ExitCode;

use chrono::{DateTime, Utc};
use jit_proto::Target;

use crate::cli::args::ExplainArgs;
use crate::config::config_file::Config;
use crate::core::policy::{Ask, Explanation, Requester};
use crate::shell::daemon::identity;

pub fn run(args: ExplainArgs) -> ExitCode {
    let config = match Config::load(&args.config, false) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("jitd: invalid configuration: {e}");
            return ExitCode::from(4);
        }
    };
    let who = match nix::unistd::User::from_name(&args.user) {
        Ok(Some(u)) => u,
        Ok(None) => return usage(&format!("no such user: {:?}", args.user)),
        Err(e) => return usage(&format!("cannot look up {:?}: {e}", args.user)),
    };
    let groups = identity::group_names(&who.name, who.gid);
    let now = match &args.at {
        None => Utc::now(),
        Some(t) => match DateTime::parse_from_rfc3339(t) {
            Ok(t) => t.with_timezone(&Utc),
            Err(e) => {
                return usage(&format!(
                    "--at {t:?}: {e} (write RFC 3339, e.g. 2026-03-30T09:30:00+02:00)"
                ))
            }
        },
    };
    let target = if args.ssh {
        Target::Ssh
    } else {
        match jit_proto::command::resolve(&args.command) {
            Ok(command) => Target::Sudo { command },
            Err(e) => return usage(&e),
        }
    };
    let e = config.policy.explain(
        &Ask {
            who: Requester {
                user: &who.name,
                groups: &groups,
            },
            target: &target,
            role: args.role.as_deref(),
            duration: args.duration,
        },
        now,
    );
    if args.json {
        match serde_json::to_string_pretty(&e) {
            Ok(text) => println!("{text}"),
            Err(err) => eprintln!("jitd: {err}"),
        }
    } else {
        print!("{}", text(&e));
    }
    if e.allowed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn usage(message: &str) -> ExitCode {
    eprintln!("jitd: {message}");
    ExitCode::from(2)
}

fn text(e: &Explanation) -> String {
    let mut out = String::new();
    let mut line = |k: &str, v: &str| out.push_str(&format!("{k:<11} {v}\n"));
    line("user", &e.user);
    line("asks for", &e.target);
    line("at", &e.at);
    line("role", e.role.as_deref().unwrap_or("-"));
    line("outcome", &e.outcome);
    if e.allowed {
        let yes_no = |b: bool| if b { "yes" } else { "no" };
        line(
            "approvers",
            &format!(
                "{} approval(s) from {} (self-approval: {}; one deny ends it: {})",
                e.approvals_required,
                crate::core::policy::approvers_text(&e.approver_groups),
                yes_no(e.self_approval),
                yes_no(e.deny_ends)
            ),
        );
        line(
            "duration",
            &format!("{} (at most {})", e.duration, e.max_duration),
        );
    }
    for r in &e.roles {
        out.push_str(&format!(
            "role {:<20} {:<3} {}\n",
            r.name,
            if r.matches { "yes" } else { "no" },
            r.why
        ));
    }
    for r in &e.auto_approve {
        out.push_str(&format!(
            "rule {:<20} {:<3} {}\n",
            r.name,
            if r.applies { "yes" } else { "no" },
            r.why
        ));
    }
    out
}
