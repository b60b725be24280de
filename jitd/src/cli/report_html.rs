//! `jitd report --html FILE`: the report as one self-contained page for the people who review
//! access each quarter. No scripts, fonts, images or links to anything outside the file:
//! charts are inline SVG, the style is one inline `<style>`.
//!
//! Every piece of text that came from users (names, reasons, roles, commands, sudoers lines)
//! passes through [`esc`]: a reason is whatever a requester typed, and the page is opened by
//! an auditor in a browser. The page also forbids scripts outright with its
//! Content-Security-Policy, so a missed escape still could not run one.
//!
//! Each figure the page states sits in an element with a `data-metric` attribute, so a test
//! (or an auditor's tooling) can read it back and compare it with `jitd report --json`.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::cli::usage::{UsageSummary, DECISION_BUCKETS, OUTCOMES};
use crate::shell::host::standing::StandingPrivileges;

/// The audit chain as `jitd audit verify` found it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ChainState {
    pub intact: bool,
    pub records: usize,
    pub head_seq: u64,
    pub head_hash: String,
    /// Where and why it is broken, when it is.
    pub problem: Option<String>,
}

/// What the page covers.
pub struct Period {
    pub since: Option<String>,
    pub until: Option<String>,
    pub generated: String,
    pub host: String,
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters have no business on the page (and some break the parser).
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// One figure, readable back from its `data-metric`.
fn metric(name: &str, value: impl std::fmt::Display) -> String {
    format!(
        "<span class=\"n\" data-metric=\"{}\">{value}</span>",
        esc(name)
    )
}

const STYLE: &str = "body{font-family:sans-serif;margin:2em;color:#222;max-width:70em}\
h1{font-size:1.6em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ccc}\
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:.25em .6em;\
text-align:left;vertical-align:top}th{background:#f4f4f4}.n{font-weight:bold}\
.bad{color:#b00020;font-weight:bold}.ok{color:#1b5e20;font-weight:bold}\
code{font-family:monospace;word-break:break-all}.legend span{margin-right:1em}";

/// Colours of the outcomes, in [`OUTCOMES`] order.
const OUTCOME_COLOURS: [&str; 6] = [
    "#2e7d32", "#c62828", "#ef6c00", "#9e9e9e", "#6d4c41", "#1565c0",
];

pub fn render(
    usage: &UsageSummary,
    standing: &StandingPrivileges,
    chain: &ChainState,
    period: &Period,
) -> String {
    let mut p = String::new();
    let _ = writeln!(
        p,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         style-src 'unsafe-inline'; img-src data:\">\
         <title>jit access report: {host}</title><style>{STYLE}</style></head><body>\n\
         <h1>jit access report: {host}</h1>\n<p>Period: {since} to {until}. Generated {gen}. \
         {records} audit records in the period.</p>",
        host = esc(&period.host),
        since = esc(period.since.as_deref().unwrap_or("the start of the log")),
        until = esc(period.until.as_deref().unwrap_or("now")),
        gen = esc(&period.generated),
        records = metric("records", usage.records),
    );
    chain_section(&mut p, chain);
    requests_section(&mut p, usage);
    decision_section(&mut p, usage);
    grants_section(&mut p, usage);
    break_glass_section(&mut p, usage);
    standing_section(&mut p, standing);
    p.push_str("</body></html>\n");
    p
}

fn chain_section(p: &mut String, c: &ChainState) {
    p.push_str("<h2>Audit chain</h2>\n<p>");
    if c.intact {
        let _ = write!(
            p,
            "<span class=\"ok\" data-metric=\"chain_intact\">intact</span>: {} records; \
             the last, record {}, has SHA-256 <code data-metric=\"chain_head\">{}</code>. \
             Keep this hash elsewhere: a rewritten log will not end in it.",
            metric("chain_records", c.records),
            metric("chain_head_seq", c.head_seq),
            esc(&c.head_hash)
        );
    } else {
        let _ = write!(
            p,
            "<span class=\"bad\" data-metric=\"chain_intact\">NOT intact</span>: {}. \
             The figures below may rest on altered records.",
            esc(c.problem.as_deref().unwrap_or("unknown"))
        );
    }
    p.push_str("</p>\n");
}

fn requests_section(p: &mut String, u: &UsageSummary) {
    let total: u64 = u.requests_per_day.values().flat_map(|m| m.values()).sum();
    let _ = writeln!(
        p,
        "<h2>Requests per day by outcome</h2>\n<p>{} requests.</p>",
        metric("requests_total", total)
    );
    if u.requests_per_day.is_empty() {
        p.push_str("<p>No requests in the period.</p>\n");
        return;
    }
    stacked_days_svg(p, &u.requests_per_day);
    p.push_str("<p class=\"legend\">");
    for (o, colour) in OUTCOMES.iter().zip(OUTCOME_COLOURS) {
        let n: u64 = u.requests_per_day.values().filter_map(|m| m.get(*o)).sum();
        let _ = write!(
            p,
            "<span><svg width=\"10\" height=\"10\"><rect width=\"10\" height=\"10\" \
             fill=\"{colour}\"/></svg> {o}: {}</span>",
            metric(&format!("outcome_{o}"), n)
        );
    }
    p.push_str("</p>\n<table><tr><th>day</th>");
    for o in OUTCOMES {
        let _ = write!(p, "<th>{o}</th>");
    }
    p.push_str("</tr>\n");
    for (day, counts) in &u.requests_per_day {
        let _ = write!(p, "<tr><td>{}</td>", esc(day));
        for o in OUTCOMES {
            let _ = write!(
                p,
                "<td>{}</td>",
                metric(
                    &format!("day_{}_{o}", day),
                    counts.get(o).copied().unwrap_or(0)
                )
            );
        }
        p.push_str("</tr>\n");
    }
    p.push_str("</table>\n");
}

/// One stacked column per day, outcomes bottom to top in [`OUTCOMES`] order.
fn stacked_days_svg(p: &mut String, days: &BTreeMap<String, BTreeMap<String, u64>>) {
    let (height, bar, gap, left) = (160.0, 14.0, 4.0, 30.0);
    let max = days
        .values()
        .map(|m| m.values().sum::<u64>())
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let width = left + days.len() as f64 * (bar + gap) + gap;
    let _ = write!(
        p,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{}\" \
         role=\"img\" aria-label=\"requests per day\">\
         <text x=\"0\" y=\"12\" font-size=\"10\">{max}</text>\
         <line x1=\"{left}\" y1=\"{height}\" x2=\"{width}\" y2=\"{height}\" stroke=\"#999\"/>",
        height + 20.0
    );
    for (i, (day, counts)) in days.iter().enumerate() {
        let x = left + gap + i as f64 * (bar + gap);
        let mut y = height;
        for (o, colour) in OUTCOMES.iter().zip(OUTCOME_COLOURS) {
            let n = counts.get(*o).copied().unwrap_or(0);
            if n == 0 {
                continue;
            }
            let h = n as f64 / max * (height - 10.0);
            y -= h;
            let _ = write!(
                p,
                "<rect x=\"{x}\" y=\"{y:.1}\" width=\"{bar}\" height=\"{h:.1}\" fill=\"{colour}\">\
                 <title>{} {o}: {n}</title></rect>",
                esc(day)
            );
        }
    }
    p.push_str("</svg>\n");
}

/// Horizontal bars, longest first, at most `limit` of them.
fn bars_svg(p: &mut String, label: &str, items: &[(&str, u64)], colour: &str) {
    let row = 18.0;
    let max = items.iter().map(|(_, n)| *n).max().unwrap_or(1).max(1) as f64;
    let _ = write!(
        p,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"520\" height=\"{}\" role=\"img\" \
         aria-label=\"{}\">",
        row * items.len() as f64 + 4.0,
        esc(label)
    );
    for (i, (name, n)) in items.iter().enumerate() {
        let y = i as f64 * row + 2.0;
        let w = (*n as f64 / max * 300.0).max(1.0);
        let _ = write!(
            p,
            "<text x=\"0\" y=\"{:.1}\" font-size=\"11\">{}</text>\
             <rect x=\"170\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{:.1}\" fill=\"{colour}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\">{n}</text>",
            y + 12.0,
            esc(&truncate(name, 26)),
            row - 4.0,
            175.0 + w,
            y + 12.0
        );
    }
    p.push_str("</svg>\n");
}

fn truncate(s: &str, chars: usize) -> String {
    if s.chars().count() <= chars {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(chars - 1).collect::<String>())
    }
}

fn decision_section(p: &mut String, u: &UsageSummary) {
    let decided: u64 = u.decision_time.values().sum();
    let _ = write!(
        p,
        "<h2>Time from request to decision</h2>\n<p>{} decisions by people or rules after a \
         request waited.",
        metric("decisions", decided)
    );
    if let Some(l) = &u.time_to_approval {
        let _ = write!(
            p,
            " Approvals: median {} s, 90% within {} s, longest {} s.",
            metric("approval_median_secs", l.median_secs),
            metric("approval_p90_secs", l.p90_secs),
            metric("approval_max_secs", l.max_secs)
        );
    }
    p.push_str("</p>\n");
    let items: Vec<(&str, u64)> = DECISION_BUCKETS
        .iter()
        .map(|(_, l)| (*l, u.decision_time.get(*l).copied().unwrap_or(0)))
        .collect();
    bars_svg(p, "time to decision", &items, "#5c6bc0");
    p.push_str("<table><tr><th>waited</th><th>decisions</th></tr>\n");
    for (label, n) in &items {
        let _ = writeln!(
            p,
            "<tr><td>{}</td><td>{}</td></tr>",
            esc(label),
            metric(&format!("decision_{label}"), n)
        );
    }
    p.push_str("</table>\n");
}

fn top(map: &BTreeMap<String, u64>, limit: usize) -> Vec<(&str, u64)> {
    let mut v: Vec<(&str, u64)> = map.iter().map(|(k, n)| (k.as_str(), *n)).collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    v.truncate(limit);
    v
}

fn grants_section(p: &mut String, u: &UsageSummary) {
    let total: u64 = u.grants_by_role.values().sum();
    let _ = writeln!(
        p,
        "<h2>Grants</h2>\n<p>{} grants; {} approved automatically by rules of {} approval \
         records; {} extensions granted; {} grants handed back early with <code>done</code>.</p>",
        metric("grants_total", total),
        metric("approved_automatically", u.approved_automatically),
        metric("approved", u.approved),
        metric("extensions", u.extensions),
        metric("ended_early_by_done", u.ended_early_by_done),
    );
    for (title, map, key, colour) in [
        ("by role", &u.grants_by_role, "role", "#00897b"),
        ("by user", &u.grants_by_user, "user", "#8e24aa"),
    ] {
        let _ = writeln!(p, "<h3>Grants {title}</h3>");
        if map.is_empty() {
            p.push_str("<p>None.</p>\n");
            continue;
        }
        bars_svg(p, title, &top(map, 20), colour);
        let _ = writeln!(p, "<table><tr><th>{key}</th><th>grants</th></tr>");
        for (name, n) in map {
            let _ = writeln!(
                p,
                "<tr><td>{}</td><td>{}</td></tr>",
                esc(name),
                metric(&format!("grants_by_{key}:{name}"), n)
            );
        }
        p.push_str("</table>\n");
    }
    if !u.roles_never_used.is_empty() {
        let _ = writeln!(
            p,
            "<p>Roles nobody asked for: {}.</p>",
            esc(&u.roles_never_used.join(", "))
        );
    }
}

fn break_glass_section(p: &mut String, u: &UsageSummary) {
    let _ = writeln!(
        p,
        "<h2>Break-glass</h2>\n<p>{} uses, {} reviews.</p>",
        metric("break_glass_uses", u.break_glass_uses),
        metric("break_glass_reviewed", u.break_glass_reviewed)
    );
    if u.break_glass.is_empty() {
        return;
    }
    p.push_str(
        "<table><tr><th>when</th><th>grant</th><th>user</th><th>role</th><th>reason</th>\
         <th>reviewed</th></tr>\n",
    );
    for b in &u.break_glass {
        let reviewed = match (&b.reviewed_by, &b.reviewed_at) {
            (Some(by), Some(at)) => format!("by {} at {}", esc(by), esc(at)),
            _ => "<span class=\"bad\">not reviewed</span>".to_string(),
        };
        let _ = writeln!(
            p,
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{reviewed}</td></tr>",
            esc(&b.time),
            esc(&b.id),
            esc(&b.user),
            esc(&b.role),
            esc(&b.reason)
        );
    }
    p.push_str("</table>\n");
}

fn standing_section(p: &mut String, s: &StandingPrivileges) {
    let members: usize = s.admin_groups.iter().map(|g| g.members.len()).sum();
    let _ = writeln!(
        p,
        "<h2>Standing privileges on this host</h2>\n<p>{} sudoers rules outside jit's \
         drop-ins, {} members of sudo/wheel/admin groups, {} accounts with uid 0 besides root, \
         {} keys in root's authorized_keys.</p>",
        metric("standing_sudoers_rules", s.sudoers_rules.len()),
        metric("standing_admin_members", members),
        metric("standing_uid0_accounts", s.uid0_accounts.len()),
        metric("standing_root_keys", s.root_authorized_keys.len()),
    );
    if !s.sudoers_rules.is_empty() {
        p.push_str("<table><tr><th>file:line</th><th>rule</th></tr>\n");
        for r in &s.sudoers_rules {
            let _ = writeln!(
                p,
                "<tr><td>{}:{}</td><td><code>{}</code></td></tr>",
                esc(&r.file.display().to_string()),
                r.line,
                esc(&r.rule)
            );
        }
        p.push_str("</table>\n");
    }
    for g in s.admin_groups.iter().filter(|g| !g.members.is_empty()) {
        let _ = writeln!(
            p,
            "<p>Group {}: {}</p>",
            esc(&g.group),
            esc(&g.members.join(", "))
        );
    }
    if !s.uid0_accounts.is_empty() {
        let _ = writeln!(
            p,
            "<p class=\"bad\">uid 0 besides root: {}</p>",
            esc(&s.uid0_accounts.join(", "))
        );
    }
    for k in &s.root_authorized_keys {
        let _ = writeln!(
            p,
            "<p>root key {} <code>{}</code> {}</p>",
            esc(&k.key_type),
            esc(&k.fingerprint),
            esc(&k.comment)
        );
    }
    for u in &s.unreadable {
        let _ = writeln!(p, "<p class=\"bad\">Could not read {}</p>", esc(u));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::usage::BreakGlassUse;

    fn page(usage: &UsageSummary) -> String {
        render(
            usage,
            &StandingPrivileges::default(),
            &ChainState {
                intact: true,
                records: 3,
                head_seq: 3,
                head_hash: "ab".repeat(32),
                problem: None,
            },
            &Period {
                since: None,
                until: None,
                generated: "2026-11-30T00:00:00Z".into(),
                host: "db1".into(),
            },
        )
    }

    #[test]
    fn a_reason_name_or_role_with_markup_is_shown_as_text_never_run() {
        let attack = "<script>alert(1)</script><img src=x onerror=alert(2)>\"'&";
        let mut u = UsageSummary::default();
        u.grants_by_user.insert(attack.into(), 1);
        u.grants_by_role.insert(attack.into(), 1);
        u.roles_never_used.push(attack.into());
        u.break_glass.push(BreakGlassUse {
            id: attack.into(),
            time: attack.into(),
            user: attack.into(),
            role: attack.into(),
            reason: attack.into(),
            reviewed_by: Some(attack.into()),
            reviewed_at: Some(attack.into()),
        });
        u.requests_per_day
            .entry(attack.into())
            .or_default()
            .insert("approved".into(), 1);
        let html = page(&u);
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("&quot;&#39;&amp;"));
        // The one inline policy forbids scripts even if an escape were missed.
        assert!(html.contains("default-src 'none'"));
    }

    #[test]
    fn the_page_loads_nothing_from_elsewhere() {
        let mut u = UsageSummary::default();
        u.grants_by_user.insert("alice".into(), 2);
        let html = page(&u);
        for outside in [
            "<script",
            "<link",
            "src=\"http",
            "href=\"http",
            "url(",
            "@import",
        ] {
            assert!(!html.contains(outside), "{outside} in {html}");
        }
        assert!(html.contains("data-metric=\"grants_by_user:alice\">2<"));
    }
}
