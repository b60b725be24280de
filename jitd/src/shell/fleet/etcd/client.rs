//! The client proper: the endpoint list and which one is in use, the etcd token, and the
//! unary calls. Every call tries the endpoints in order from the one in use until one
//! answers; an answer (even a refusal) is final, a failure to answer moves on.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::error::{classify, classify_http, EtcdError, Verdict};
use super::wire::{self, b64, MAX_BODY};
use super::{EtcdSettings, Kv, Snapshot};

/// Keys per range page: etcd answers a page in one go, so pages bound its memory and ours.
const PAGE: i64 = 500;
/// The most keys and bytes one listing may hold (a fleet's records are far fewer and small):
/// each page is bounded, and so is their sum.
const MAX_KEYS: usize = 1_000_000;
const MAX_LISTING_BYTES: usize = 256 << 20;
/// The largest value jitd writes; etcd's default request limit is 1.5 MiB.
pub const MAX_VALUE: usize = 1 << 20;
const MAX_KEY: usize = 64 << 10;
const MAX_ENDPOINTS: usize = 64;
/// Deletes in one transaction: etcd refuses more than `--max-txn-ops` (128 by default).
pub const DELETE_BATCH: usize = 100;
/// Listing again after the revision being paged through was compacted underneath.
const LIST_ATTEMPTS: usize = 3;

/// A blocking etcd client, shared between threads as `Arc<Etcd>`.
pub struct Etcd {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    /// Rotated by the host name's hash.
    pub(super) endpoints: Vec<String>,
    /// As configured, for status output.
    pub(super) configured: Vec<String>,
    unary: ureq::Agent,
    pub(super) streaming: ureq::Agent,
    request_timeout: Duration,
    pub(super) watch_idle_timeout: Duration,
    credentials: Option<Credentials>,
    token: Mutex<Token>,
    /// Index into `endpoints` of the one in use.
    current: AtomicUsize,
}

struct Credentials {
    user: String,
    password: Password,
}

/// Never printed.
struct Password(String);

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Clone)]
enum Token {
    /// Not asked for yet, or refused by etcd since.
    Unknown,
    Bearer(String),
    /// etcd has authentication disabled.
    NotNeeded,
}

impl fmt::Debug for Etcd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Etcd")
            .field("endpoints", &self.inner.endpoints)
            .field("in_use", &self.endpoint_in_use())
            .finish()
    }
}

impl Etcd {
    /// Checks the settings and builds the HTTP agents and TLS configuration; no network.
    pub fn new(s: EtcdSettings) -> Result<Etcd, EtcdError> {
        let configured = s
            .endpoints
            .iter()
            .map(|e| endpoint(e))
            .collect::<Result<Vec<_>, _>>()?;
        if configured.is_empty() {
            return Err(EtcdError::Config("no endpoints".into()));
        }
        if configured.len() > MAX_ENDPOINTS {
            return Err(EtcdError::Config(format!(
                "{} endpoints; at most {MAX_ENDPOINTS}",
                configured.len()
            )));
        }
        if s.request_timeout.is_zero() || s.watch_idle_timeout.is_zero() {
            return Err(EtcdError::Config("timeouts must be positive".into()));
        }
        let credentials = match (s.user, s.password) {
            (None, None) => None,
            (Some(user), Some(password)) if !user.is_empty() => Some(Credentials {
                user,
                password: Password(password),
            }),
            _ => {
                return Err(EtcdError::Config(
                    "an etcd user needs a password, and a password a user".into(),
                ))
            }
        };
        if credentials.is_some() {
            if let Some(plain) = configured.iter().find(|e| !private_channel(e)) {
                return Err(EtcdError::Config(format!(
                    "endpoint {plain}: an etcd password would cross the network in the clear; \
                     use https:// (plain http:// only to this host itself)"
                )));
            }
        }
        let tls = super::tls::client_config(
            s.ca_file.as_deref(),
            s.cert_file.as_deref(),
            s.key_file.as_deref(),
        )?;
        let agent = |read: Duration, idle: usize| {
            let mut b = ureq::AgentBuilder::new()
                .timeout_connect(s.request_timeout)
                .timeout_write(s.request_timeout)
                // Never the overall `timeout`: it would cut a watch stream. Unary calls set
                // their deadline per request.
                .timeout_read(read)
                // A redirect could carry the token elsewhere.
                .redirects(0)
                .max_idle_connections_per_host(idle)
                .user_agent(concat!("jitd/", env!("CARGO_PKG_VERSION")));
            if let Some(tls) = &tls {
                b = b.tls_config(Arc::clone(tls));
            }
            b.build()
        };
        let mut endpoints = configured.clone();
        let offset = rotation(&s.rotate_by, endpoints.len());
        endpoints.rotate_left(offset);
        Ok(Etcd {
            inner: Arc::new(Inner {
                endpoints,
                configured,
                unary: agent(s.request_timeout, 4),
                // A watch's connection is never reused: it ends by being dropped.
                streaming: agent(s.watch_idle_timeout, 0),
                request_timeout: s.request_timeout,
                watch_idle_timeout: s.watch_idle_timeout,
                credentials,
                token: Mutex::new(Token::Unknown),
                current: AtomicUsize::new(0),
            }),
        })
    }

    /// The endpoint the next call starts with (where the last one succeeded).
    pub fn endpoint_in_use(&self) -> String {
        let i = self.inner.current.load(Ordering::Relaxed);
        self.inner.endpoints[i].clone()
    }

    /// Every key under `prefix`, paged (500 keys a page), all pages at the first page's
    /// revision. If that revision is compacted while paging, the listing starts over.
    pub fn range_prefix(&self, prefix: &[u8]) -> Result<Snapshot, EtcdError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.list(prefix) {
                Err(EtcdError::Compacted { .. }) if attempt < LIST_ATTEMPTS => continue,
                result => return result,
            }
        }
    }

    fn list(&self, prefix: &[u8]) -> Result<Snapshot, EtcdError> {
        let end = wire::prefix_end(prefix);
        let mut from = prefix.to_vec();
        let mut revision = 0;
        let mut kvs: Vec<Kv> = Vec::new();
        let mut bytes = 0;
        loop {
            let mut body = json!({"key": b64(&from), "range_end": b64(&end), "limit": PAGE});
            if revision > 0 {
                body["revision"] = json!(revision.to_string());
            }
            let answer = self.call("/v3/kv/range", &body)?;
            if revision == 0 {
                revision = wire::header_revision(&answer)?;
            }
            let page = wire::kvs(&answer)?;
            let more = wire::flag(&answer, "more");
            let Some(last) = page.last() else { break };
            // The next page starts just after the last key of this one.
            from = last.key.clone();
            from.push(0);
            bytes += page
                .iter()
                .map(|kv| kv.key.len() + kv.value.len())
                .sum::<usize>();
            kvs.extend(page);
            if kvs.len() > MAX_KEYS || bytes > MAX_LISTING_BYTES {
                return Err(EtcdError::TooLarge(format!(
                    "more than {MAX_KEYS} keys or {} MiB under the prefix",
                    MAX_LISTING_BYTES >> 20
                )));
            }
            if !more {
                break;
            }
        }
        Ok(Snapshot { revision, kvs })
    }

    #[cfg(test)]
    pub fn get(&self, key: &[u8]) -> Result<Option<Kv>, EtcdError> {
        check_key(key)?;
        let answer = self.call("/v3/kv/range", &json!({"key": b64(key)}))?;
        Ok(wire::kvs(&answer)?.into_iter().next())
    }

    /// Writes `value` under `key` (attached to `lease` if given); returns the revision.
    pub fn put(&self, key: &[u8], value: &[u8], lease: Option<i64>) -> Result<i64, EtcdError> {
        check_key(key)?;
        check_value(value)?;
        let mut body = json!({"key": b64(key), "value": b64(value)});
        if let Some(id) = lease {
            body["lease"] = json!(id.to_string());
        }
        wire::header_revision(&self.call("/v3/kv/put", &body)?)
    }

    /// Writes `value` under `key` only if the key does not exist (a txn on VERSION == 0).
    /// Returns false if it exists with another value. A key that already holds exactly
    /// `value` counts as created: after a timeout the first attempt may have succeeded on
    /// the member that went away, and the retry on the next one must not call our own
    /// write a collision.
    pub fn create(&self, key: &[u8], value: &[u8]) -> Result<bool, EtcdError> {
        check_key(key)?;
        check_value(value)?;
        let k = b64(key);
        let body = json!({
            "compare": [{"key": k, "target": "VERSION", "result": "EQUAL", "version": "0"}],
            "success": [{"request_put": {"key": k, "value": b64(value)}}],
            "failure": [{"request_range": {"key": k}}],
        });
        let answer = self.call("/v3/kv/txn", &body)?;
        // A lost txn has no "succeeded" field at all.
        if wire::flag(&answer, "succeeded") {
            return Ok(true);
        }
        let existing = answer
            .get("responses")
            .and_then(|r| r.get(0))
            .and_then(|r| r.get("response_range"))
            .map(wire::kvs)
            .transpose()?
            .and_then(|kvs| kvs.into_iter().next());
        Ok(existing.is_some_and(|kv| kv.value == value))
    }

    /// Deletes `key`; true if it existed. (After a failover the retry may find it already
    /// deleted by the first attempt and say false.)
    #[cfg(test)]
    pub fn delete(&self, key: &[u8]) -> Result<bool, EtcdError> {
        check_key(key)?;
        let answer = self.call("/v3/kv/deleterange", &json!({"key": b64(key)}))?;
        Ok(wire::int(&answer, "deleted")? > 0)
    }

    /// Deletes each of `keys`, [`DELETE_BATCH`] to a transaction; returns how many existed.
    pub fn delete_keys(&self, keys: &[&[u8]]) -> Result<i64, EtcdError> {
        self.delete_batched(keys, false)
    }

    /// Deletes every key under each of `prefixes`, [`DELETE_BATCH`] to a transaction;
    /// returns how many went.
    pub fn delete_prefixes(&self, prefixes: &[&[u8]]) -> Result<i64, EtcdError> {
        self.delete_batched(prefixes, true)
    }

    fn delete_batched(&self, keys: &[&[u8]], prefix: bool) -> Result<i64, EtcdError> {
        let mut deleted = 0;
        for batch in keys.chunks(DELETE_BATCH) {
            let mut ops = Vec::with_capacity(batch.len());
            for key in batch {
                check_key(key)?;
                let mut op = json!({"key": b64(key)});
                if prefix {
                    op["range_end"] = json!(b64(&wire::prefix_end(key)));
                }
                ops.push(json!({ "request_delete_range": op }));
            }
            let answer = self.call("/v3/kv/txn", &json!({ "success": ops }))?;
            for response in answer
                .get("responses")
                .and_then(|r| r.as_array())
                .into_iter()
                .flatten()
            {
                if let Some(d) = response.get("response_delete_range") {
                    deleted += wire::int(d, "deleted")?;
                }
            }
        }
        Ok(deleted)
    }

    /// A new lease of `ttl_secs`; returns its id.
    pub fn lease_grant(&self, ttl_secs: i64) -> Result<i64, EtcdError> {
        if ttl_secs <= 0 {
            return Err(EtcdError::Config(format!(
                "lease TTL {ttl_secs}: must be positive"
            )));
        }
        let answer = self.call("/v3/lease/grant", &json!({"TTL": ttl_secs.to_string()}))?;
        if let Some(e) = answer.get("error").and_then(Value::as_str) {
            if !e.is_empty() {
                return Err(EtcdError::Protocol(format!("lease grant: {e}")));
            }
        }
        match wire::int(&answer, "ID")? {
            0 => Err(EtcdError::Protocol("lease grant answered no ID".into())),
            id => Ok(id),
        }
    }

    /// Renews a lease once; false if it no longer exists (expired or revoked: the reply then
    /// has no TTL), in which case its keys are gone too.
    pub fn lease_keepalive(&self, id: i64) -> Result<bool, EtcdError> {
        match self.call("/v3/lease/keepalive", &json!({"ID": id.to_string()})) {
            Ok(answer) => {
                let result = answer.get("result").ok_or_else(|| {
                    EtcdError::Protocol("lease keepalive answered no result".into())
                })?;
                Ok(wire::int(result, "TTL")? > 0)
            }
            Err(EtcdError::LeaseGone) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Revokes a lease (its keys go at once); false if it did not exist.
    #[cfg(test)]
    pub fn lease_revoke(&self, id: i64) -> Result<bool, EtcdError> {
        match self.call("/v3/lease/revoke", &json!({"ID": id.to_string()})) {
            Ok(_) => Ok(true),
            Err(EtcdError::LeaseGone) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// One unary call, with failover.
    pub(super) fn call(&self, path: &str, body: &Value) -> Result<Value, EtcdError> {
        let inner = &self.inner;
        inner.failover(|i| inner.authorized(i, |token| inner.post_to(i, path, body, token)))
    }
}

impl Inner {
    /// Runs `attempt` on each endpoint in turn, starting with the one in use, until one
    /// answers. The endpoint that answered becomes the one in use.
    pub(super) fn failover<T>(
        &self,
        mut attempt: impl FnMut(usize) -> Result<T, Verdict>,
    ) -> Result<T, EtcdError> {
        let n = self.endpoints.len();
        let start = self.current.load(Ordering::Relaxed);
        let mut failures = Vec::new();
        for k in 0..n {
            let i = (start + k) % n;
            let outcome = attempt(i);
            match outcome {
                Ok(value) => {
                    self.current.store(i, Ordering::Relaxed);
                    return Ok(value);
                }
                Err(Verdict::Final(e)) => {
                    self.current.store(i, Ordering::Relaxed);
                    return Err(e);
                }
                Err(Verdict::NextEndpoint(e)) => {
                    failures.push(format!("{}: {}", self.endpoints[i], detail(&e)))
                }
                // `authorized` turns a second refusal into Final(Auth).
                Err(Verdict::Reauthenticate) => {
                    failures.push(format!("{}: token refused", self.endpoints[i]))
                }
            }
        }
        // Start the next call with the next endpoint, not the same dead one.
        self.mark_failed(start);
        Err(EtcdError::Unavailable(format!(
            "no endpoint answered ({})",
            failures.join("; ")
        )))
    }

    /// After a failure of endpoint `i`: the next call (or watch) starts with the one after,
    /// unless another thread has moved on already.
    pub(super) fn mark_failed(&self, i: usize) {
        let next = (i + 1) % self.endpoints.len();
        let _ = self
            .current
            .compare_exchange(i, next, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Runs `request` with the current token, authenticating first if there is none, and
    /// once more if etcd refuses the token (expired: simple tokens live 5 minutes idle).
    pub(super) fn authorized<T>(
        &self,
        i: usize,
        mut request: impl FnMut(Option<&str>) -> Result<T, Verdict>,
    ) -> Result<T, Verdict> {
        let mut refreshed = false;
        loop {
            let token = self.token(i)?;
            match request(token.as_deref()) {
                Err(Verdict::Reauthenticate) => {
                    if self.credentials.is_none() {
                        return Err(Verdict::Final(EtcdError::Auth(
                            "etcd has authentication enabled and no user is configured".into(),
                        )));
                    }
                    if refreshed {
                        return Err(Verdict::Final(EtcdError::Auth(
                            "etcd refused a token it had just issued".into(),
                        )));
                    }
                    self.forget_token();
                    refreshed = true;
                }
                other => return other,
            }
        }
    }

    pub(super) fn forget_token(&self) {
        *self.token.lock().unwrap_or_else(|e| e.into_inner()) = Token::Unknown;
    }

    /// The token to send, authenticating on endpoint `i` if there is none yet. The lock is
    /// not held across the network: two threads may both authenticate, which is harmless.
    fn token(&self, i: usize) -> Result<Option<String>, Verdict> {
        let Some(credentials) = &self.credentials else {
            return Ok(None);
        };
        let known = self.token.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let fresh = match known {
            Token::Bearer(t) => return Ok(Some(t)),
            Token::NotNeeded => return Ok(None),
            Token::Unknown => {
                let body = json!({"name": credentials.user, "password": credentials.password.0});
                match self.post_to(i, "/v3/auth/authenticate", &body, None) {
                    Ok(answer) => match answer.get("token").and_then(Value::as_str) {
                        Some(t) if !t.is_empty() => Token::Bearer(t.to_string()),
                        _ => {
                            return Err(Verdict::Final(EtcdError::Protocol(
                                "authenticate answered no token".into(),
                            )))
                        }
                    },
                    Err(Verdict::Final(EtcdError::Protocol(m)))
                        if m.contains("authentication is not enabled") =>
                    {
                        Token::NotNeeded
                    }
                    // "user name is empty" here means an empty user: a wrong one.
                    Err(Verdict::Reauthenticate) => {
                        return Err(Verdict::Final(EtcdError::Auth(format!(
                            "etcd did not accept user {:?}",
                            credentials.user
                        ))))
                    }
                    Err(Verdict::Final(EtcdError::Auth(m))) => {
                        return Err(Verdict::Final(EtcdError::Auth(format!(
                            "user {:?}: {m}",
                            credentials.user
                        ))))
                    }
                    Err(other) => return Err(other),
                }
            }
        };
        *self.token.lock().unwrap_or_else(|e| e.into_inner()) = fresh.clone();
        Ok(match fresh {
            Token::Bearer(t) => Some(t),
            _ => None,
        })
    }

    /// One POST to endpoint `i`, within the request timeout; the answer's first JSON value.
    pub(super) fn post_to(
        &self,
        i: usize,
        path: &str,
        body: &Value,
        token: Option<&str>,
    ) -> Result<Value, Verdict> {
        let url = format!("{}{path}", self.endpoints[i]);
        let mut request = self
            .unary
            .post(&url)
            .timeout(self.request_timeout)
            .set("Content-Type", "application/json");
        if let Some(token) = token {
            request = request.set("Authorization", token);
        }
        let response = match request.send_string(&body.to_string()) {
            Ok(response) => response,
            Err(ureq::Error::Status(status, response)) => {
                let text = read_answer(response)?;
                return Err(match first_json(&text) {
                    Some(v) => gateway_error(&v).unwrap_or_else(|| classify_http(status, "")),
                    None => classify_http(status, &String::from_utf8_lossy(&text)),
                });
            }
            Err(ureq::Error::Transport(t)) => {
                return Err(Verdict::NextEndpoint(EtcdError::Unavailable(transport(&t))))
            }
        };
        let text = read_answer(response)?;
        let value = first_json(&text).ok_or_else(|| {
            Verdict::Final(EtcdError::Protocol(format!(
                "{path}: the answer is not JSON"
            )))
        })?;
        // Streamed calls (lease keepalive) answer 200 and put their error in the body.
        match gateway_error(&value) {
            Some(verdict) => Err(verdict),
            None => Ok(value),
        }
    }
}

/// The body of an answer, bounded. A body cut short still counts if it holds a whole JSON
/// value (see [`wire::read_body`] on the gateway's trailers).
pub(super) fn read_answer(response: ureq::Response) -> Result<Vec<u8>, Verdict> {
    let text = match wire::read_body(response.into_reader()) {
        Ok(text) => text,
        Err((partial, _)) if first_json(&partial).is_some() => partial,
        Err((_, e)) => {
            return Err(Verdict::NextEndpoint(EtcdError::Unavailable(format!(
                "reading the answer: {}",
                io_error(&e)
            ))))
        }
    };
    if text.len() > MAX_BODY {
        return Err(Verdict::Final(wire::too_large("an answer")));
    }
    Ok(text)
}

/// The first JSON value in a body (a streamed call may send more than one).
pub(super) fn first_json(text: &[u8]) -> Option<Value> {
    serde_json::Deserializer::from_slice(text)
        .into_iter::<Value>()
        .next()?
        .ok()
}

/// The gateway's error shapes: `{"error":"…","code":N}` from a unary call, and
/// `{"error":{"grpc_code":N,"message":"…"}}` in a stream.
pub(super) fn gateway_error(v: &Value) -> Option<Verdict> {
    let error = v.get("error")?;
    Some(match error {
        Value::String(message) => {
            let code = wire::int(v, "code").unwrap_or(0);
            classify(code, message)
        }
        Value::Object(_) => {
            let code = wire::int(error, "grpc_code").unwrap_or(0);
            let message = error.get("message").and_then(Value::as_str).unwrap_or("");
            match (code, message) {
                // An HTTP-level failure without a gRPC code.
                (0, m) => {
                    let status = wire::int(error, "http_code").unwrap_or(500);
                    classify_http(u16::try_from(status).unwrap_or(500), m)
                }
                (code, m) => classify(code, m),
            }
        }
        _ => return None,
    })
}

/// A transport failure in words: ureq's own Display would name the URL; the source chain
/// says what went wrong (refused, timed out, certificate not trusted).
pub(super) fn transport(t: &ureq::Transport) -> String {
    let mut text = t.kind().to_string();
    if let Some(m) = t.message() {
        text.push_str(": ");
        text.push_str(m);
    }
    let mut source = std::error::Error::source(t);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

pub(super) fn io_error(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => "timed out".into(),
        _ => e.to_string(),
    }
}

/// An error's own text, without the advice its Display adds (for lists of failures).
pub(super) fn detail(e: &EtcdError) -> String {
    match e {
        EtcdError::Unavailable(m)
        | EtcdError::Auth(m)
        | EtcdError::Denied(m)
        | EtcdError::TooLarge(m)
        | EtcdError::Config(m)
        | EtcdError::Protocol(m) => m.clone(),
        other => other.to_string(),
    }
}

fn check_key(key: &[u8]) -> Result<(), EtcdError> {
    if key.is_empty() {
        return Err(EtcdError::Config("an empty key".into()));
    }
    if key.len() > MAX_KEY {
        return Err(EtcdError::TooLarge(format!(
            "a key of {} bytes; at most {MAX_KEY}",
            key.len()
        )));
    }
    Ok(())
}

fn check_value(value: &[u8]) -> Result<(), EtcdError> {
    if value.len() > MAX_VALUE {
        return Err(EtcdError::TooLarge(format!(
            "a value of {} bytes; at most {MAX_VALUE}",
            value.len()
        )));
    }
    Ok(())
}

/// `http(s)://host:port`, checked and without a trailing slash. No user info (it would be
/// a password in the configuration and in errors), no path, query or fragment.
fn endpoint(url: &str) -> Result<String, EtcdError> {
    let bad = |why: &str| EtcdError::Config(format!("endpoint {url:?}: {why}"));
    let trimmed = url.trim_end_matches('/');
    let rest = trimmed
        .strip_prefix("http://")
        .or_else(|| trimmed.strip_prefix("https://"))
        .ok_or_else(|| bad("must start with http:// or https://"))?;
    if rest.is_empty() {
        return Err(bad("no host"));
    }
    if rest
        .chars()
        .any(|c| matches!(c, '/' | '?' | '#' | '@') || c.is_whitespace() || c.is_control())
    {
        return Err(bad("must be scheme://host:port, nothing else"));
    }
    Ok(trimmed.to_string())
}

/// An endpoint a password may be sent to: TLS, or this host itself.
fn private_channel(endpoint: &str) -> bool {
    let Some(rest) = endpoint.strip_prefix("http://") else {
        return true;
    };
    let host = match rest.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => rest,
    };
    host == "localhost"
        || host == "[::1]"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// How far to rotate `n` endpoints for host `name`: a stable hash (the same on every build
/// and run), so a host keeps its member and hosts spread evenly.
pub(super) fn rotation(name: &str, n: usize) -> usize {
    let digest = Sha256::digest(name.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) % n as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_scheme_host_port_and_nothing_that_could_hide_a_secret() {
        assert_eq!(
            endpoint("http://127.0.0.1:2379/").unwrap(),
            "http://127.0.0.1:2379"
        );
        assert_eq!(
            endpoint("https://etcd-1:2379").unwrap(),
            "https://etcd-1:2379"
        );
        for bad in [
            "127.0.0.1:2379",
            "ftp://x:1",
            "http://user:pw@x:2379",
            "http://x:2379/v3",
            "http://",
            "http://x:1?a",
        ] {
            assert!(matches!(endpoint(bad), Err(EtcdError::Config(_))), "{bad}");
        }
    }

    #[test]
    fn a_password_goes_only_over_tls_or_to_this_host() {
        assert!(private_channel("https://etcd-1:2379"));
        assert!(private_channel("http://127.0.0.1:2379"));
        assert!(private_channel("http://localhost:2379"));
        assert!(private_channel("http://[::1]:2379"));
        assert!(!private_channel("http://etcd-1:2379"));
        assert!(!private_channel("http://10.0.0.5:2379"));
        assert!(!private_channel("http://127.0.0.1.evil.example:2379"));
        let s = super::super::EtcdSettings {
            endpoints: vec!["https://etcd-1:2379".into(), "http://etcd-2:2379".into()],
            ca_file: None,
            cert_file: None,
            key_file: None,
            user: Some("host-db-01".into()),
            password: Some("pw".into()),
            rotate_by: "db-01".into(),
            request_timeout: Duration::from_secs(1),
            watch_idle_timeout: Duration::from_secs(1),
        };
        let e = Etcd::new(s).unwrap_err();
        assert!(
            matches!(&e, EtcdError::Config(m) if m.contains("etcd-2")),
            "{e}"
        );
    }

    #[test]
    fn hosts_spread_over_the_members_and_each_keeps_its_own() {
        let mut seen = [0usize; 3];
        for h in 0..300 {
            seen[rotation(&format!("db-{h:02}"), 3)] += 1;
        }
        assert!(seen.iter().all(|&n| n > 60), "{seen:?}");
        assert_eq!(rotation("db-01", 3), rotation("db-01", 3));
    }

    #[test]
    fn the_password_never_shows_in_debug_output() {
        let s = super::super::EtcdSettings {
            endpoints: vec!["http://127.0.0.1:1".into()],
            ca_file: None,
            cert_file: None,
            key_file: None,
            user: Some("host-db-01".into()),
            password: Some("hunter2-secret".into()),
            rotate_by: "db-01".into(),
            request_timeout: Duration::from_secs(1),
            watch_idle_timeout: Duration::from_secs(1),
        };
        assert!(!format!("{s:?}").contains("hunter2"));
        let etcd = Etcd::new(s).unwrap();
        assert!(!format!("{etcd:?}").contains("hunter2"));
    }

    #[test]
    fn a_user_without_a_password_is_a_configuration_error() {
        let s = super::super::EtcdSettings {
            endpoints: vec!["http://127.0.0.1:1".into()],
            ca_file: None,
            cert_file: None,
            key_file: None,
            user: Some("u".into()),
            password: None,
            rotate_by: String::new(),
            request_timeout: Duration::from_secs(1),
            watch_idle_timeout: Duration::from_secs(1),
        };
        assert!(matches!(Etcd::new(s), Err(EtcdError::Config(_))));
    }
}
