//! Webhook notifiers: each `[[notifier]]` is an [`EventSink`] that picks the events it was
//! configured for and hands them to its own queue and worker thread, which POSTs them with
//! ureq. Recording never waits on the network. Delivery is best effort: what is still queued
//! when jitd stops is lost (docs/notifications.md says so).

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::config::config_file::Config;
use crate::config::notifier_tables::{Format, NotifierConfig, WebhookUrl};
use crate::config::secret_file;
use crate::core::events::{escape_text, Event, EventKind, EventSink};
use crate::shell::notify::payload;
use crate::shell::notify::queue::{self, Attempt, Backoff, Queue, Report};
use crate::shell::notify::terminal_notice::TerminalNotices;

/// Events waiting per notifier; beyond this the oldest are dropped (and that is logged).
const QUEUE_CAPACITY: usize = 1000;
/// One request, connect to last byte of the answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const BACKOFF: Backoff = Backoff {
    max_attempts: 5,
    first_wait: Duration::from_secs(1),
    give_up_after: Duration::from_secs(60),
};

/// A bearer token. Never printed: `Debug` shows nothing of it.
#[derive(Clone)]
pub struct Token(String);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// Reads a token file, which must be root's alone ([`secret_file`]): a token anyone on the
/// host can read lets them post as jitd.
pub fn read_token(path: &Path) -> Result<Token, String> {
    secret_file::read("token_file", "one token", path).map(Token)
}

/// Which events a notifier hears of.
#[derive(Debug, Clone)]
pub struct Filter {
    events: Vec<EventKind>,
    roles: Option<Vec<String>>,
}

impl Filter {
    pub fn wants(&self, event: &Event) -> bool {
        match event.kind() {
            // A notifier's own failures are internal errors: never feed them back.
            EventKind::InternalError => false,
            // Everyone must hear of break-glass use, whatever they subscribed to.
            EventKind::BreakGlass => true,
            kind => {
                self.events.contains(&kind)
                    && self
                        .roles
                        .as_ref()
                        .is_none_or(|roles| event.role.as_ref().is_some_and(|r| roles.contains(r)))
            }
        }
    }
}

/// An event as queued: when it happened travels with it, retries keep it.
struct Queued {
    event: Event,
    at: DateTime<Utc>,
}

/// One webhook: the sink side (filter, enqueue).
pub struct Notifier {
    filter: Filter,
    queue: Arc<Queue<Queued>>,
    origin: String,
    report: Report,
}

impl Notifier {
    /// Starts the notifier's worker thread.
    pub fn start(config: &NotifierConfig, report: Report) -> Result<Notifier, String> {
        let url = config.resolve_url()?;
        let token = config.token_file.as_deref().map(read_token).transpose()?;
        let origin = url.origin().to_string();
        let webhook = Webhook {
            agent: ureq::AgentBuilder::new()
                .timeout(REQUEST_TIMEOUT)
                // A redirect could carry the token elsewhere; a webhook URL is exact.
                .redirects(0)
                .user_agent(concat!("jitd/", env!("CARGO_PKG_VERSION")))
                .build(),
            url,
            format: config.format,
            token,
        };
        let queue = Arc::new(Queue::new(QUEUE_CAPACITY));
        let failed = Arc::clone(&report);
        let to = origin.clone();
        queue::spawn_worker(
            "notifier",
            Arc::clone(&queue),
            BACKOFF,
            move |q: &Queued| webhook.send(&q.event, q.at),
            move |q: &Queued, why| {
                failed(failure(
                    &q.event,
                    format!(
                        "notification to {to} failed after {} attempt(s): {}",
                        why.attempts, why.last_error
                    ),
                ))
            },
        )
        .map_err(|e| format!("cannot start a notifier thread: {e}"))?;
        Ok(Notifier {
            filter: Filter {
                events: config.events.clone(),
                roles: config.roles.clone(),
            },
            queue,
            origin,
            report,
        })
    }
}

/// An internal error about `event`'s notification (for the system log only).
fn failure(event: &Event, message: String) -> Event {
    let mut e = Event::new(EventKind::InternalError, message);
    e.request_id = event.request_id.clone();
    e.extra
        .push(("NOTIFICATION", event.kind().name().to_string()));
    e
}

impl EventSink for Notifier {
    fn record(&self, event: &Event) -> io::Result<()> {
        if !self.filter.wants(event) {
            return Ok(());
        }
        let urgent = event.kind() == EventKind::BreakGlass;
        let queued = Queued {
            event: event.clone(),
            at: Utc::now(),
        };
        if let Some(dropped) = self.queue.push(queued, urgent) {
            (self.report)(failure(
                &dropped.event,
                format!(
                    "notification to {} dropped: {QUEUE_CAPACITY} are waiting (is the endpoint down?)",
                    self.origin
                ),
            ));
        }
        Ok(())
    }
}

/// One webhook: the sending side, owned by the worker.
struct Webhook {
    agent: ureq::Agent,
    url: WebhookUrl,
    format: Format,
    token: Option<Token>,
}

impl Webhook {
    fn send(&self, event: &Event, at: DateTime<Utc>) -> Attempt {
        let body = match self.format {
            Format::Slack => payload::slack_body(event),
            Format::Json => payload::json_body(event, at),
        };
        let mut request = self
            .agent
            .post(self.url.as_str())
            .set("Content-Type", "application/json");
        if let Some(Token(token)) = &self.token {
            request = request.set("Authorization", &format!("Bearer {token}"));
        }
        match request.send_string(&body.to_string()) {
            Ok(answer) if (200..300).contains(&answer.status()) => Attempt::Delivered,
            // Redirects are not followed (they could carry the token elsewhere).
            Ok(answer) => Attempt::Refused(format!(
                "HTTP {} (redirects are not followed: configure the final URL)",
                answer.status()
            )),
            Err(ureq::Error::Status(code, _)) => {
                let what = format!("HTTP {code}");
                if code >= 500 || code == 408 || code == 429 {
                    Attempt::Failed(what)
                } else {
                    Attempt::Refused(what)
                }
            }
            // ureq's own Display names the full URL, whose path may be a secret: say only
            // what went wrong.
            Err(ureq::Error::Transport(t)) => Attempt::Failed(escape_text(&format!(
                "{}{}",
                t.kind(),
                t.message().map(|m| format!(": {m}")).unwrap_or_default()
            ))),
        }
    }
}

/// Every notification sink the configuration asks for: one per `[[notifier]]`, plus terminal
/// notices for approvers when `notify_terminals` is on. Fails on an unusable `url_file` or
/// `token_file`.
pub fn sinks(config: &Config, report: Report) -> Result<Vec<Box<dyn EventSink>>, String> {
    let mut sinks: Vec<Box<dyn EventSink>> = Vec::new();
    for (n, c) in config.notifiers.iter().enumerate() {
        let notifier = Notifier::start(c, Arc::clone(&report))
            .map_err(|e| format!("notifier {} ({}): {e}", n + 1, c.url.shown()))?;
        sinks.push(Box::new(notifier));
    }
    if config.notify_terminals {
        sinks.push(Box::new(TerminalNotices::start(
            config.utmp_file.clone(),
            report,
        )?));
    }
    Ok(sinks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn filter(events: &[EventKind], roles: Option<&[&str]>) -> Filter {
        Filter {
            events: events.to_vec(),
            roles: roles.map(|r| r.iter().map(|s| s.to_string()).collect()),
        }
    }

    fn event(kind: EventKind, role: Option<&str>) -> Event {
        let mut e = Event::new(kind, "x");
        e.role = role.map(String::from);
        e
    }

    #[test]
    fn notifiers_hear_their_events_and_roles_and_always_break_glass() {
        let f = filter(&[EventKind::Requested], Some(&["db"]));
        assert!(f.wants(&event(EventKind::Requested, Some("db"))));
        assert!(!f.wants(&event(EventKind::Requested, Some("web"))));
        assert!(!f.wants(&event(EventKind::Requested, None)));
        assert!(!f.wants(&event(EventKind::Approved, Some("db"))));
        assert!(f.wants(&event(EventKind::BreakGlass, Some("web"))));
        assert!(f.wants(&event(EventKind::BreakGlass, None)));
        let all = filter(&EventKind::ALL, None);
        assert!(all.wants(&event(EventKind::Expired, None)));
        assert!(!all.wants(&event(EventKind::InternalError, None)));
    }

    #[test]
    fn a_token_file_must_be_roots_and_private() {
        let dir = std::env::temp_dir().join(format!("jitd-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("token");
        std::fs::write(&path, "s3cr3t-value\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let token = read_token(&path).unwrap();
        assert_eq!(token.0, "s3cr3t-value");
        assert!(!format!("{token:?}").contains("s3cr3t"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = read_token(&path).unwrap_err();
        assert!(e.contains("chmod 600") && !e.contains("s3cr3t"), "{e}");
        // Group read too: the group may be anyone's (and an ACL mask looks the same).
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(read_token(&path).unwrap_err().contains("chmod 600"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let link = dir.join("link");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(read_token(&link).unwrap_err().contains("symbolic link"));
        std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
        assert!(read_token(&path).unwrap_err().contains("owned by root"));
        std::fs::write(&path, "two words").unwrap();
        std::os::unix::fs::chown(&path, Some(0), None).unwrap();
        assert!(read_token(&path).unwrap_err().contains("one token"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
