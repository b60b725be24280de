//! The `[[notifier]]` tables of jitd.toml: which webhook hears of which events, in which
//! payload format. Bad values are deserialisation errors, so they name the line and key like
//! every other configuration mistake.
//!
//! A webhook URL is often its own credential (Slack's and Discord's carry the secret in the
//! path): whoever reads it can post into the approvers' channel. jitd.toml is readable by
//! everyone (approvers run `jitd explain` from it), so such a URL belongs in a root-only
//! `url_file`; an inline `url` that looks secret ([`WebhookUrl::looks_secret`]) in a file
//! others can read is refused by `jitd check-config` and `jitd serve`
//! (`Config::check_inline_secrets`).

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};

use crate::config::secret_file;
use crate::core::events::EventKind;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "NotifierTable")]
pub struct NotifierConfig {
    pub url: UrlSource,
    pub format: Format,
    pub events: Vec<EventKind>,
    pub roles: Option<Vec<String>>,
    pub token_file: Option<PathBuf>,
}

/// Where a notifier's URL is: in jitd.toml itself, or in a root-only file it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlSource {
    Inline(WebhookUrl),
    /// Read at startup (as root); jitd.toml holds only the path.
    File(PathBuf),
}

impl UrlSource {
    /// Safe to log: the origin of an inline URL, the path of a `url_file`.
    pub fn shown(&self) -> String {
        match self {
            UrlSource::Inline(url) => url.origin().to_string(),
            UrlSource::File(path) => format!("url_file {}", path.display()),
        }
    }
}

/// A `[[notifier]]` table as written; [`NotifierConfig`] is one that passed the checks that
/// involve several keys.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NotifierTable {
    #[serde(default)]
    url: Option<WebhookUrl>,
    /// A root-only file holding the URL: for URLs that are secrets themselves.
    #[serde(default, deserialize_with = "absolute_path")]
    url_file: Option<PathBuf>,
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

    fn try_from(t: NotifierTable) -> Result<NotifierConfig, String> {
        let url = match (t.url, t.url_file) {
            (Some(url), None) => {
                token_transport(&url, t.token_file.is_some())?;
                UrlSource::Inline(url)
            }
            (None, Some(path)) => UrlSource::File(path),
            (Some(_), Some(_)) => {
                return Err(
                    "a notifier has either `url` or `url_file`, not both: keep `url_file` (the URL in a root-only file)"
                        .into(),
                )
            }
            (None, None) => {
                return Err(
                    "a notifier needs `url_file` (a root-only file holding the URL) or `url`"
                        .into(),
                )
            }
        };
        Ok(NotifierConfig {
            url,
            format: t.format,
            events: t.events,
            roles: t.roles,
            token_file: t.token_file,
        })
    }
}

/// A bearer token sent over plain http can be read by anyone on the path: refused, except to
/// this host itself.
fn token_transport(url: &WebhookUrl, has_token: bool) -> Result<(), String> {
    if has_token && url.is_plain_http() && !url.is_loopback() {
        return Err(format!(
            "`token_file` with a plain http:// url would send the token readable by anyone on the way to {}: use https:// (plain http only to a loopback address)",
            url.origin()
        ));
    }
    Ok(())
}

impl NotifierConfig {
    /// The URL to post to: the inline one, or the one read from `url_file` (root's alone, see
    /// [`secret_file`]). Reading `url_file` needs root; `jitd serve` and a root `jitd
    /// check-config` do it.
    pub fn resolve_url(&self) -> Result<WebhookUrl, String> {
        match &self.url {
            UrlSource::Inline(url) => Ok(url.clone()),
            UrlSource::File(path) => {
                let text = secret_file::read("url_file", "one URL", path)?;
                // The parser's own messages never repeat the URL.
                let url = WebhookUrl::parse(&text)
                    .map_err(|e| format!("url_file {}: {e}", path.display()))?;
                token_transport(&url, self.token_file.is_some())
                    .map_err(|e| format!("url_file {}: {e}", path.display()))?;
                Ok(url)
            }
        }
    }

    /// The `url_file` or `token_file` paths, for checks that only root can make.
    pub fn secret_files(&self) -> Vec<(&'static str, &Path)> {
        let mut out = Vec::new();
        if let UrlSource::File(path) = &self.url {
            out.push(("url_file", path.as_path()));
        }
        if let Some(path) = &self.token_file {
            out.push(("token_file", path.as_path()));
        }
        out
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
    /// Anything after the origin other than a lone `/`: see [`WebhookUrl::looks_secret`].
    beyond_origin: bool,
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
        let after = &rest[authority.len()..];
        Ok(WebhookUrl {
            url: text.to_string(),
            origin: format!("{scheme}://{authority}"),
            beyond_origin: !after.is_empty() && after != "/",
        })
    }

    pub fn as_str(&self) -> &str {
        &self.url
    }

    /// `scheme://host[:port]`: safe to log.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Whether the URL may carry a secret: it has a path (other than `/`), a query or a
    /// fragment. jitd cannot tell a secret path (`/services/T0/B0/XXXX` at hooks.slack.com,
    /// `/api/webhooks/ID/TOKEN` at discord.com, `?token=…` anywhere) from a plain one
    /// (`/jit`), so every URL with more than an origin counts; only `https://host[:port][/]`
    /// may be written inline in a file others can read.
    pub fn looks_secret(&self) -> bool {
        self.beyond_origin
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
            "`token_file` and `url_file` must be absolute paths",
        ));
    }
    Ok(Some(path))
}

#[cfg(test)]
mod tests {
    use crate::config::config_file::Config;
    use crate::core::events::EventKind;

    use super::{Format, UrlSource};

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
        assert_eq!(slack.url.shown(), "https://hooks.example.com");
        assert!(matches!(&slack.url, UrlSource::Inline(u) if u.looks_secret()));
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

    #[test]
    fn url_and_url_file_are_one_or_the_other() {
        let c = Config::parse(
            "[[notifier]]\nurl_file = \"/etc/jit/slack.url\"\nformat = \"slack\"\ntoken_file = \"/etc/jit/t\"\n",
        )
        .unwrap();
        assert_eq!(
            c.notifiers[0].url,
            UrlSource::File("/etc/jit/slack.url".into())
        );
        assert_eq!(c.notifiers[0].url.shown(), "url_file /etc/jit/slack.url");
        let both = "[[notifier]]\nurl = \"https://example.com/\"\nurl_file = \"/etc/jit/u\"\nformat = \"json\"\n";
        let e = Config::parse(both).unwrap_err();
        assert!(e.contains("not both"), "{e}");
        let neither = "[[notifier]]\nformat = \"json\"\n";
        let e = Config::parse(neither).unwrap_err();
        assert!(e.contains("url_file"), "{e}");
        let relative = "[[notifier]]\nurl_file = \"slack.url\"\nformat = \"json\"\n";
        let e = Config::parse(relative).unwrap_err();
        assert!(e.contains("line 2") && e.contains("absolute"), "{e}");
    }

    #[test]
    fn a_url_with_more_than_an_origin_looks_secret() {
        for (url, secret) in [
            ("https://hooks.slack.com/services/T0/B0/XXXX", true),
            ("https://discord.com/api/webhooks/1/abc", true),
            ("https://alerts.example.com/jit", true),
            ("https://alerts.example.com?token=abc", true),
            ("https://alerts.example.com/?token=abc", true),
            ("https://alerts.example.com#abc", true),
            ("https://alerts.example.com", false),
            ("https://alerts.example.com/", false),
            ("http://127.0.0.1:8080", false),
        ] {
            let u = super::WebhookUrl::parse(url).unwrap();
            assert_eq!(u.looks_secret(), secret, "{url}");
        }
    }

    /// The attack: a world-readable url_file (or one someone else owns) would hand out the
    /// webhook exactly as an inline URL does.
    #[test]
    fn a_url_file_must_be_roots_alone_and_hold_one_url() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("jitd-urlfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("slack.url");
        let table = |token: &str| {
            let c = Config::parse(&format!(
                "[[notifier]]\nurl_file = \"{}\"\nformat = \"slack\"\n{token}",
                path.display()
            ))
            .unwrap();
            c.notifiers[0].clone()
        };
        std::fs::write(&path, "https://hooks.slack.com/services/T0/B0/s3cr3t\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let url = table("").resolve_url().unwrap();
        assert_eq!(
            url.as_str(),
            "https://hooks.slack.com/services/T0/B0/s3cr3t"
        );
        for mode in [0o644, 0o640, 0o604, 0o620] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = table("").resolve_url().unwrap_err();
            assert!(
                e.contains("chmod 600") && !e.contains("s3cr3t"),
                "{mode:o}: {e}"
            );
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
        assert!(table("")
            .resolve_url()
            .unwrap_err()
            .contains("owned by root"));
        std::os::unix::fs::chown(&path, Some(0), None).unwrap();
        // What the file holds is checked as an inline url would be, without repeating it.
        std::fs::write(&path, "ftp://s3cr3t.example.com/x").unwrap();
        let e = table("").resolve_url().unwrap_err();
        assert!(e.contains("http") && !e.contains("s3cr3t"), "{e}");
        std::fs::write(&path, "http://hooks.example.com/s3cr3t").unwrap();
        let e = table("token_file = \"/etc/jit/t\"\n")
            .resolve_url()
            .unwrap_err();
        assert!(e.contains("https://") && !e.contains("s3cr3t"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
