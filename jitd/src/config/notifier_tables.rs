//! The `[[notifier]]` tables of jitd.toml: which webhook hears of which events, in which
//! payload format. Bad values are deserialisation errors, so they name the line and key like
//! every other configuration mistake.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer};

use crate::core::events::EventKind;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "NotifierTable")]
pub struct NotifierConfig {
    pub url: WebhookUrl,
    pub format: Format,
    pub events: Vec<EventKind>,
    pub roles: Option<Vec<String>>,
    pub token_file: Option<PathBuf>,
}

/// A `[[notifier]]` table as written; [`NotifierConfig`] is one that passed the checks that
/// involve several keys.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NotifierTable {
    url: WebhookUrl,
    format: Format,
    /// Which events this webhook hears of; every kind but `internal_error` when left out.
    /// Break-glass use is sent whatever this says.
    #[serde(default = "every_event", deserialize_with = "event_names")]
    events: Vec<EventKind>,
    /// Only events about requests for one of these roles (break-glass excepted).
    #[serde(default, deserialize_with = "role_names")]
    roles: Option<Vec<String>>,
    /// A root-owned file whose content is sent as `Authorization: Bearer …`.
    #[serde(default, deserialize_with = "absolute_path")]
    token_file: Option<PathBuf>,
}

impl TryFrom<NotifierTable> for NotifierConfig {
    type Error = String;

    /// A bearer token sent over plain http can be read by anyone on the path: refused, except
    /// to this host itself.
    fn try_from(t: NotifierTable) -> Result<NotifierConfig, String> {
        if t.token_file.is_some() && t.url.is_plain_http() && !t.url.is_loopback() {
            return Err(format!(
                "`token_file` with a plain http:// url would send the token readable by anyone on the way to {}: use https:// (plain http only to a loopback address)",
                t.url.origin()
            ));
        }
        Ok(NotifierConfig {
            url: t.url,
            format: t.format,
            events: t.events,
            roles: t.roles,
            token_file: t.token_file,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// A Slack incoming-webhook message (`{"text": …}`), also understood by Mattermost and
    /// many chat bridges.
    Slack,
    /// The whole event as one JSON object with stable field names.
    Json,
}

/// An http(s) URL. Its path may hold a secret (Slack webhook URLs do), so only the origin is
/// ever shown in logs and `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookUrl {
    url: String,
    origin: String,
}

impl WebhookUrl {
    pub fn parse(text: &str) -> Result<WebhookUrl, String> {
        let rest = text
            .strip_prefix("https://")
            .or_else(|| text.strip_prefix("http://"))
            .ok_or("a notifier `url` must start with http:// or https://")?;
        if text.len() > 2048 || text.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err("a notifier `url` must be at most 2048 characters, without spaces".into());
        }
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if authority.is_empty() || authority.contains('@') {
            return Err(
                "a notifier `url` needs a host and no user:password@ (use `token_file`)".into(),
            );
        }
        // ureq parses it exactly as it will when sending.
        ureq::post(text)
            .request_url()
            .map_err(|_| "a notifier `url` is not a valid URL".to_string())?;
        let scheme = if text.starts_with("https://") {
            "https"
        } else {
            "http"
        };
        Ok(WebhookUrl {
            url: text.to_string(),
            origin: format!("{scheme}://{authority}"),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.url
    }

    /// `scheme://host[:port]`: safe to log.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    pub fn is_plain_http(&self) -> bool {
        self.origin.starts_with("http://")
    }

    /// The host is this machine: `localhost`, 127.0.0.0/8 or `[::1]`.
    pub fn is_loopback(&self) -> bool {
        let authority = self.origin.split_once("://").map_or("", |(_, a)| a);
        let host = match authority.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or_default(),
            None => authority.split(':').next().unwrap_or_default(),
        };
        host.eq_ignore_ascii_case("localhost")
            || host == "::1"
            || host
                .parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
}

impl fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/…", self.origin)
    }
}

impl<'de> Deserialize<'de> for WebhookUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        WebhookUrl::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// Every kind except `internal_error`: a notifier's own delivery failures are internal errors,
/// and sending those through notifiers could feed on itself.
fn every_event() -> Vec<EventKind> {
    EventKind::ALL
        .into_iter()
        .filter(|k| *k != EventKind::InternalError)
        .collect()
}

fn event_names<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<EventKind>, D::Error> {
    let names = Vec::<String>::deserialize(d)?;
    let known = || {
        every_event()
            .iter()
            .map(|k| k.name())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut kinds = Vec::new();
    for name in &names {
        match EventKind::from_name(name) {
            Some(EventKind::InternalError) => {
                return Err(serde::de::Error::custom(
                    "`internal_error` is not sent to notifiers (it is in the journal); remove it from `events`",
                ))
            }
            Some(k) => kinds.push(k),
            None => {
                return Err(serde::de::Error::custom(format!(
                    "unknown event {name:?} in `events`; known: {}",
                    known()
                )))
            }
        }
    }
    if kinds.is_empty() {
        return Err(serde::de::Error::custom(
            "`events` is empty; leave it out to send every event",
        ));
    }
    Ok(kinds)
}

fn role_names<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    let roles = Vec::<String>::deserialize(d)?;
    if roles.is_empty() || roles.iter().any(|r| r.is_empty()) {
        return Err(serde::de::Error::custom(
            "`roles` must list role names; leave it out to route every role",
        ));
    }
    Ok(Some(roles))
}

fn absolute_path<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
    let path = PathBuf::deserialize(d)?;
    if !path.is_absolute() {
        return Err(serde::de::Error::custom(
            "`token_file` must be an absolute path",
        ));
    }
    Ok(Some(path))
}

#[cfg(test)]
mod tests {
    use crate::config::config_file::Config;
    use crate::core::events::EventKind;

    use super::Format;

    #[test]
    fn notifiers_are_tables_with_defaults() {
        let c = Config::parse(
            "[[notifier]]\nurl = \"https://hooks.example.com/services/T0/B0/secret\"\nformat = \"slack\"\n\
             [[notifier]]\nurl = \"http://127.0.0.1:8080/jit\"\nformat = \"json\"\nevents = [\"requested\", \"break_glass\"]\nroles = [\"db\"]\ntoken_file = \"/etc/jit/token\"\n",
        )
        .unwrap();
        assert_eq!(c.notifiers.len(), 2);
        let slack = &c.notifiers[0];
        assert_eq!(slack.format, Format::Slack);
        assert!(slack.events.contains(&EventKind::Expired));
        assert!(!slack.events.contains(&EventKind::InternalError));
        assert_eq!(slack.url.origin(), "https://hooks.example.com");
        assert!(!format!("{c:?}").contains("secret"), "Debug hides the path");
        let json = &c.notifiers[1];
        assert_eq!(
            json.events,
            vec![EventKind::Requested, EventKind::BreakGlass]
        );
        assert_eq!(json.roles.as_deref(), Some(&["db".to_string()][..]));
        assert!(c.notify_terminals, "terminal notices are on by default");
    }

    #[test]
    fn bad_notifier_values_name_the_line_and_key() {
        let cases = [
            ("format = \"xml\"", "format"),
            ("events = [\"aproved\"]", "aproved"),
            ("events = [\"internal_error\"]", "internal_error"),
            ("roles = []", "roles"),
            ("token_file = \"token\"", "token_file"),
            ("colour = \"red\"", "colour"),
        ];
        for (line, key) in cases {
            let text = format!(
                "[[notifier]]\nurl = \"https://example.com/x\"\nformat = \"json\"\n{line}\n"
            );
            let e = Config::parse(&text).unwrap_err();
            assert!(e.contains("line 4") && e.contains(key), "{line}: {e}");
        }
        for url in [
            "ftp://example.com/",
            "https://",
            "https://user:pw@example.com/",
            "https://exa mple.com/",
        ] {
            let text = format!("[[notifier]]\nformat = \"json\"\nurl = \"{url}\"\n");
            let e = Config::parse(&text).unwrap_err();
            assert!(e.contains("line 3") && e.contains("url"), "{url}: {e}");
        }
        let e = Config::parse("[[notifier]]\nformat = \"json\"\n").unwrap_err();
        assert!(e.contains("url"), "{e}");
    }

    #[test]
    fn a_token_over_plain_http_is_refused_except_to_this_host() {
        let table = |url: &str| {
            format!(
                "[[notifier]]\nurl = \"{url}\"\nformat = \"json\"\ntoken_file = \"/etc/jit/token\"\n"
            )
        };
        let e = Config::parse(&table("http://hooks.example.com/x")).unwrap_err();
        assert!(e.contains("https://") && e.contains("token_file"), "{e}");
        for url in [
            "https://hooks.example.com/x",
            "http://127.0.0.1:8080/x",
            "http://127.8.9.10/x",
            "http://localhost:9/x",
            "http://[::1]:8080/x",
        ] {
            assert!(Config::parse(&table(url)).is_ok(), "{url}");
        }
        // Without a token, plain http is allowed (nothing secret in the headers).
        let plain = "[[notifier]]\nurl = \"http://hooks.example.com/x\"\nformat = \"json\"\n";
        assert!(Config::parse(plain).is_ok());
    }
}
