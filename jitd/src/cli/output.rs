//! How requests are printed for people (scripts use --json).

use jit_proto::{RequestView, State};

pub fn what(r: &RequestView) -> String {
    match &r.command {
        Some(argv) => crate::core::model::display_command(argv),
        None => "ssh login".into(),
    }
}

pub fn table(requests: &[RequestView]) -> String {
    if requests.is_empty() {
        return "no requests\n".into();
    }
    let mut out = format!(
        "{:<10}  {:<12}  {:<9}  {:<20}  {:<20}  {}\n",
        "ID", "USER", "STATE", "EXPIRES/UNTIL", "REASON", "WHAT"
    );
    for r in requests {
        let when = match r.state {
            State::Pending => r.pending_until.clone(),
            _ => r.expires_at.clone(),
        };
        out.push_str(&format!(
            "{:<10}  {:<12}  {:<9}  {:<20}  {:<20}  {}\n",
            r.id,
            clip(&r.user, 12),
            r.state.as_str(),
            when.unwrap_or_else(|| "-".into()),
            clip(&r.reason, 20),
            clip(&what(r), 60),
        ));
    }
    out
}

/// One line naming what `jitd approve` would approve now, for the approver to read before it
/// counts. Requester text is shown with control characters replaced.
pub fn up_for_decision(r: &RequestView) -> String {
    let dur = |secs: u64| jit_proto::duration::format(std::time::Duration::from_secs(secs));
    let what = clip(&what(r), 200);
    let user = clip(&r.user, 32);
    match (&r.state, &r.extension) {
        (State::Active, Some(ext)) => format!(
            "the extension of grant {} ({user}: {what}) by {}, beyond its end at {}",
            r.id,
            dur(ext.duration_secs),
            r.expires_at.as_deref().unwrap_or("?")
        ),
        (State::Pending, _) => format!(
            "request {}: {user} asks for {what} for {} (reason: {})",
            r.id,
            dur(r.duration_secs),
            clip(&r.reason, 200)
        ),
        (state, _) => format!("{} ({user}: {what}), which is {}", r.id, state.as_str()),
    }
}

fn clip(s: &str, n: usize) -> String {
    let clean: String = s
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if clean.chars().count() <= n {
        clean
    } else {
        clean.chars().take(n - 1).collect::<String>() + "…"
    }
}

pub fn detail(r: &RequestView) -> String {
    let mut out = String::new();
    let mut line = |k: &str, v: &str| out.push_str(&format!("{k:<13} {v}\n"));
    line("id", &r.id);
    if r.uid == jit_proto::NO_UID {
        line("user", &format!("{} (no such user on this host)", r.user));
    } else {
        line("user", &format!("{} (uid {})", r.user, r.uid));
    }
    line("state", r.state.as_str());
    line("what", &what(r));
    line(
        "duration",
        &jit_proto::duration::format(std::time::Duration::from_secs(r.duration_secs)),
    );
    line("reason", &clip(&r.reason, 200));
    if let Some(t) = &r.ticket {
        line("ticket", &clip(t, 128));
    }
    if let Some(role) = &r.role {
        line("role", role);
    }
    line("requested at", &r.requested_at);
    let who = if r.approver_groups.is_empty() {
        "root".to_string()
    } else {
        format!("root or a member of {}", r.approver_groups.join(", "))
    };
    let approvers: Vec<&str> = r
        .decisions
        .iter()
        .filter(|d| d.action == "approve" && !d.voided)
        .map(|d| d.by.as_str())
        .collect();
    if let Some(t) = &r.pending_until {
        line("pending until", t);
        line(
            "approvals",
            &format!(
                "{} of {} ({})",
                r.approvals_required.saturating_sub(r.approvals_missing),
                r.approvals_required,
                if approvers.is_empty() {
                    "none yet".to_string()
                } else {
                    format!("by {}", approvers.join(", "))
                }
            ),
        );
        line(
            "needs",
            &format!("{} more approval(s) from {who}", r.approvals_missing),
        );
    }
    if let Some(x) = &r.extension {
        line(
            "extension",
            &format!(
                "{} more asked at {}; needs {} more approval(s) from {who}",
                jit_proto::duration::format(std::time::Duration::from_secs(x.duration_secs)),
                x.asked_at,
                x.approvals_missing
            ),
        );
    }
    if r.break_glass {
        match &r.review {
            Some(v) => line(
                "break-glass",
                &format!(
                    "reviewed by {} at {}: {}",
                    v.by,
                    v.at,
                    clip(&v.comment, 200)
                ),
            ),
            None => line(
                "break-glass",
                &format!("NOT REVIEWED: jitd review {} --comment TEXT", r.id),
            ),
        }
    }
    if let Some(f) = &r.fleet {
        line(
            "fleet",
            &format!(
                "asked on {} for hosts {}{}",
                f.origin,
                f.hosts.join(","),
                if f.for_this_host {
                    " (this host is one)"
                } else {
                    ""
                }
            ),
        );
        if let Some(why) = &f.refused {
            line("refused here", &clip(why, 300));
        }
    }
    for h in &r.hosts {
        let why = h
            .why
            .as_deref()
            .map(|w| format!(": {}", clip(w, 200)))
            .unwrap_or_default();
        line("host", &format!("{} {} at {}{why}", h.host, h.state, h.at));
    }
    if let Some(t) = &r.approved_at {
        line("approved at", t);
    }
    if let Some(t) = &r.expires_at {
        line("expires at", t);
    }
    if let Some(t) = &r.ended_at {
        line("ended at", t);
    }
    if let Some(f) = &r.failure {
        line("failure", f);
    }
    for d in &r.decisions {
        let note = d
            .note
            .as_deref()
            .map(|n| format!(": {}", clip(n, 200)))
            .unwrap_or_default();
        line(
            "decision",
            &format!("{} {} by {}{note}", d.at, d.action, d.by),
        );
    }
    for s in &r.sessions {
        line(
            "session",
            &format!(
                "pid {} {} user {} tty {} from {}",
                s.pid,
                s.service,
                s.user,
                s.tty.as_deref().unwrap_or("-"),
                s.rhost.as_deref().unwrap_or("local")
            ),
        );
    }
    out
}

/// `jitd fleet gc`.
pub fn fleet_gc(g: &jit_proto::FleetGcView) -> String {
    let mut out = String::new();
    let verb = if g.dry_run { "would remove" } else { "removed" };
    out.push_str(&format!(
        "{verb} {} request(s) over before {}, and {} approval(s) or end(s) of requests no longer in the store\n",
        g.removed_count,
        g.over_before,
        g.orphans
    ));
    for r in &g.removed {
        out.push_str(&format!(
            "  {}  asked on {}, over at {}\n",
            r.id, r.origin, r.over_at
        ));
    }
    if g.removed_count > g.removed.len() {
        out.push_str(&format!(
            "  ... and {} more (the audit log names every one)\n",
            g.removed_count - g.removed.len()
        ));
    }
    if !g.dry_run {
        out.push_str(&format!(
            "deleted {} key(s) and {} acknowledgement(s)\n",
            g.deleted_keys, g.deleted_acks
        ));
    }
    out.push_str(&format!("kept {} request(s)", g.kept));
    if g.unreadable > 0 {
        out.push_str(&format!(
            " and {} unreadable request record(s) (nothing says when they are over: look with etcdctl)",
            g.unreadable
        ));
    }
    out.push('\n');
    if g.more > 0 {
        out.push_str(&format!(
            "{} more request(s) over for as long: run it again (a run removes the oldest 10,000)\n",
            g.more
        ));
    }
    if let Some(e) = &g.error {
        out.push_str(&format!(
            "STOPPED: {}; run it again for the rest\n",
            clip(e, 300)
        ));
    }
    out
}

/// `jitd fleet status`.
pub fn fleet_status(f: &jit_proto::FleetStatusView) -> String {
    let mut out = String::new();
    let mut line = |k: &str, v: &str| out.push_str(&format!("{k:<13} {v}\n"));
    line("host", &f.host_name);
    line(
        "sync",
        &format!(
            "{}; applied revision {} of {} (lag {}){}",
            if f.watching {
                "watching"
            } else {
                "NOT watching"
            },
            f.applied_revision,
            f.store_revision,
            (f.store_revision - f.applied_revision).max(0),
            f.last_heard_secs
                .map(|s| format!(", heard from the store {s} s ago"))
                .unwrap_or_else(|| ", never heard from the store".into())
        ),
    );
    if let Some(e) = &f.last_error {
        line("last error", &clip(e, 300));
    }
    for m in &f.members {
        let state = if m.reachable {
            format!(
                "reachable, etcd {}, revision {}",
                m.version.as_deref().unwrap_or("?"),
                m.revision
                    .map(|r| r.to_string())
                    .unwrap_or_else(|| "?".into())
            )
        } else {
            format!(
                "UNREACHABLE: {}",
                clip(m.error.as_deref().unwrap_or("?"), 200)
            )
        };
        line("member", &format!("{} {state}", m.endpoint));
    }
    line("hosts alive", &f.hosts_alive.join(", "));
    line(
        "enforcing",
        &format!("{} fleet grant(s) on this host", f.enforcing),
    );
    if let Some(away) = f.offline_secs {
        let ending = if f.offline_ending_roles.is_empty() {
            "no role ends its grants for it".to_string()
        } else {
            format!(
                "the fleet grants of {} end at {} s (fleet_offline = \"end\")",
                f.offline_ending_roles.join(", "),
                f.offline_grace_secs
            )
        };
        line("store away", &format!("{away} s; {ending}"));
    }
    out
}
