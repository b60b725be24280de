//! What a notification says: the webhook bodies (Slack incoming-webhook and generic JSON) and
//! the one-line terminal notice, rendered from an [`Event`] by pure functions.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use crate::core::events::{escape_text, Event, EventKind, Priority};

/// Who a notification is meant for, so a receiver can route it without knowing every kind.
pub fn audience(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Requested => "approvers",
        EventKind::Approved
        | EventKind::Denied
        | EventKind::TimedOut
        | EventKind::GrantFailed
        | EventKind::ExpiryWarning
        | EventKind::Expired
        | EventKind::Revoked
        | EventKind::Extended => "requester",
        EventKind::BreakGlass | EventKind::FailOpen => "everyone",
        _ => "operators",
    }
}

fn priority_name(p: Priority) -> &'static str {
    match p {
        Priority::Critical => "critical",
        Priority::Error => "error",
        Priority::Warning => "warning",
        Priority::Notice => "notice",
        Priority::Info => "info",
    }
}

/// The exact commands an approver types, for a request still waiting for a decision.
pub fn decision_commands(event: &Event) -> Option<(String, String)> {
    let id = event.request_id.as_deref()?;
    (event.kind() == EventKind::Requested).then(|| {
        (
            format!("jitd approve {id}"),
            format!("jitd deny {id} --reason \"…\""),
        )
    })
}

fn duration_text(event: &Event) -> Option<String> {
    event
        .duration_secs
        .map(|s| jit_proto::duration::format(Duration::from_secs(s)))
}

/// The generic JSON body: the whole event with stable field names. Absent values are `null`,
/// so every field is always present.
pub fn json_body(event: &Event, time: DateTime<Utc>) -> Value {
    let kind = event.kind();
    let extra: Map<String, Value> = event
        .extra
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), Value::String(v.clone())))
        .collect();
    let (approve, deny) = decision_commands(event).unzip();
    json!({
        "event": kind.name(),
        "message_id": kind.message_id(),
        "priority": priority_name(kind.priority()),
        "audience": audience(kind),
        "message": event.message,
        "request_id": event.request_id,
        "user": event.user,
        "approver": event.approver,
        "role": event.role,
        "command": event.command,
        "reason": event.reason,
        "ticket": event.ticket,
        "expires": event.expires,
        "duration": duration_text(event),
        "duration_secs": event.duration_secs,
        "approver_groups": event.approver_groups,
        "extra": extra,
        "approve_command": approve,
        "deny_command": deny,
        "time": crate::core::timestamp::rfc3339(time),
    })
}

/// Slack's three control characters in message text; everything else is literal. Line breaks
/// and other control characters a user typed become visible escapes first, so no field can
/// start a line of its own.
fn slack_escape(s: &str) -> String {
    escape_text(s)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Text a requester typed (command, reason, ticket, role), shown literally: inside a code
/// span, where mrkdwn's `*bold*`, `_italics_`, `~strike~`, `[links](…)` and `@here` mean
/// nothing, with `&`, `<`, `>` escaped (so `<!channel>` or `<http://…|text>` cannot form) and
/// every backtick replaced by ˋ (U+02CB), so the text can never close its span.
fn slack_literal(s: &str) -> String {
    let inner = slack_escape(s).replace('`', "ˋ");
    if inner.trim().is_empty() {
        "` `".to_string()
    } else {
        format!("`{inner}`")
    }
}

/// A Slack incoming-webhook body: `{"text": …}` in mrkdwn.
pub fn slack_body(event: &Event) -> Value {
    let kind = event.kind();
    let field = |v: &Option<String>| v.as_deref().map(slack_escape);
    let literal = |v: &Option<String>| v.as_deref().map(slack_literal);
    let mut lines = Vec::new();
    let headline = match kind {
        EventKind::Requested => format!(
            "*{}* asks for {}{}",
            field(&event.user).unwrap_or_default(),
            literal(&event.command).unwrap_or_default(),
            duration_text(event)
                .map(|d| format!(" for {d}"))
                .unwrap_or_default()
        ),
        EventKind::BreakGlass => format!(
            ":rotating_light: *BREAK-GLASS* {}",
            slack_escape(
                event
                    .message
                    .strip_prefix("BREAK-GLASS: ")
                    .unwrap_or(&event.message)
            )
        ),
        _ => format!("*{}*: {}", kind.name(), slack_escape(&event.message)),
    };
    lines.push(headline);
    let mut push = |label: &str, value: Option<String>| {
        if let Some(v) = value {
            lines.push(format!("{label}: {v}"));
        }
    };
    if kind != EventKind::Requested {
        push("User", field(&event.user));
        push("Command", literal(&event.command));
    }
    push("Reason", literal(&event.reason));
    push("Ticket", literal(&event.ticket));
    push("Role", literal(&event.role));
    push("By", field(&event.approver));
    push("Expires", field(&event.expires));
    push("Request", field(&event.request_id));
    if let Some((approve, deny)) = decision_commands(event) {
        push("Approve", Some(format!("`{approve}`")));
        push("Deny", Some(format!("`{}`", slack_escape(&deny))));
    }
    json!({ "text": lines.join("\n") })
}

/// One line for an approver's terminal about a new request.
pub fn terminal_line(event: &Event) -> String {
    let get = |v: &Option<String>| escape_text(v.as_deref().unwrap_or("?"));
    let mut line = format!(
        "jit: {} asks for {}{}",
        get(&event.user),
        get(&event.command),
        duration_text(event)
            .map(|d| format!(" for {d}"))
            .unwrap_or_default()
    );
    if let Some(reason) = &event.reason {
        line.push_str(&format!(" ({})", escape_text(reason)));
    }
    if let Some((approve, deny)) = decision_commands(event) {
        line.push_str(&format!(": {approve} | {deny}"));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn requested() -> Event {
        let mut e = Event::new(EventKind::Requested, "alice asked for /usr/bin/id for 30m");
        e.request_id = Some("abcde12345".into());
        e.user = Some("alice".into());
        e.command = Some("systemctl restart 'nginx & co'".into());
        e.reason = Some("deploy <!channel>\n*forged* line".into());
        e.ticket = Some("INC-42".into());
        e.duration_secs = Some(1800);
        e.approver_groups = vec!["sre".into()];
        e
    }

    #[test]
    fn a_json_request_carries_everything_an_approver_needs() {
        let at = DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
            .unwrap()
            .with_timezone(&Utc);
        let body = json_body(&requested(), at);
        assert_eq!(body["event"], "requested");
        assert_eq!(body["message_id"], EventKind::Requested.message_id());
        assert_eq!(body["audience"], "approvers");
        assert_eq!(body["request_id"], "abcde12345");
        assert_eq!(body["user"], "alice");
        assert_eq!(body["command"], "systemctl restart 'nginx & co'");
        assert_eq!(body["reason"], "deploy <!channel>\n*forged* line");
        assert_eq!(body["ticket"], "INC-42");
        assert_eq!(body["duration"], "30m");
        assert_eq!(body["duration_secs"], 1800);
        assert_eq!(body["approver_groups"], json!(["sre"]));
        assert_eq!(body["approve_command"], "jitd approve abcde12345");
        assert_eq!(body["deny_command"], "jitd deny abcde12345 --reason \"…\"");
        assert_eq!(body["time"], "2026-01-02T03:04:05Z");
        assert!(body["approver"].is_null() && body["expires"].is_null());
    }

    #[test]
    fn a_decision_names_who_decided_and_offers_no_commands() {
        let mut e = requested();
        e.kind = Some(EventKind::Approved);
        e.approver = Some("bob".into());
        e.expires = Some("2026-01-02T03:34:05Z".into());
        let body = json_body(&e, Utc::now());
        assert_eq!(body["approver"], "bob");
        assert_eq!(body["audience"], "requester");
        assert!(body["approve_command"].is_null());
        let text = slack_body(&e)["text"].as_str().unwrap().to_string();
        assert!(text.contains("By: bob"), "{text}");
        assert!(!text.contains("jitd approve"), "{text}");
    }

    #[test]
    fn slack_text_escapes_user_text_and_keeps_it_on_its_lines() {
        let body = slack_body(&requested());
        let text = body["text"].as_str().unwrap();
        assert!(text.starts_with("*alice* asks for `systemctl restart 'nginx &amp; co'` for 30m"));
        assert!(text.contains("Reason: `deploy &lt;!channel&gt;\\n*forged* line`"));
        assert!(!text.contains("<!channel>"));
        assert!(text.contains("Approve: `jitd approve abcde12345`"));
        assert!(
            text.contains("Deny: `jitd deny abcde12345 --reason \"…\"`"),
            "{text}"
        );
        assert_eq!(text.lines().count(), 6, "{text}");
    }

    /// Everything Slack's mrkdwn interprets, typed by a requester, stays literal text.
    #[test]
    fn a_requester_cannot_format_mention_link_or_break_out_of_the_code_span() {
        let mut e = requested();
        let hostile = "*b* _i_ ~s~ [x](http://evil) ![i](http://evil/i.png) <http://evil|click> <!channel> <!here> @here @channel &amp; ``` `echo`";
        e.command = Some(format!("/usr/bin/echo {hostile}"));
        e.reason = Some(hostile.into());
        e.ticket = Some("`INC`".into());
        let text = slack_body(&e)["text"].as_str().unwrap().to_string();
        for line in text.lines() {
            assert_eq!(
                line.matches('`').count() % 2,
                0,
                "an odd backtick in {line}"
            );
        }
        let reason = text.lines().find(|l| l.starts_with("Reason: ")).unwrap();
        assert_eq!(
            reason.matches('`').count(),
            2,
            "one span, unbroken: {reason}"
        );
        assert!(reason.starts_with("Reason: `*b* _i_ ~s~"), "{reason}");
        assert!(!text.contains('<') && !text.contains('>'), "{text}");
        assert!(
            text.contains("&lt;!channel&gt;") && text.contains("&amp;amp;"),
            "{text}"
        );
        assert!(text.contains("Ticket: `ˋINCˋ`"), "{text}");
    }

    #[test]
    fn break_glass_is_marked_critical() {
        let mut e = Event::new(EventKind::BreakGlass, "BREAK-GLASS: carol took ssh");
        e.user = Some("carol".into());
        assert_eq!(json_body(&e, Utc::now())["priority"], "critical");
        assert_eq!(json_body(&e, Utc::now())["audience"], "everyone");
        let text = slack_body(&e)["text"].as_str().unwrap().to_string();
        assert!(
            text.starts_with(":rotating_light: *BREAK-GLASS* carol took ssh"),
            "{text}"
        );
    }

    #[test]
    fn the_terminal_line_is_one_line_with_the_commands() {
        let line = terminal_line(&requested());
        assert!(!line.contains('\n'));
        assert!(line.starts_with("jit: alice asks for systemctl restart 'nginx & co' for 30m"));
        assert!(line.ends_with(": jitd approve abcde12345 | jitd deny abcde12345 --reason \"…\""));
    }
}
