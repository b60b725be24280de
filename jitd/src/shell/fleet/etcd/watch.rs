//! The streaming watch: one POST to `/v3/watch` whose chunked answer is one JSON object per
//! line, for as long as the member serves it. Read line by line, bounded, with the idle
//! timeout as the liveness guard (progress notifications keep a healthy idle watch talking).

use std::io::{BufRead, BufReader, Read};
use std::sync::Arc;

use serde_json::{json, Value};

use super::client::{first_json, gateway_error, io_error, read_answer, transport, Etcd, Inner};
use super::error::{EtcdError, Verdict};
use super::wire::{self, b64, Line};
use super::Kv;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    Put(Kv),
    Delete { key: Vec<u8>, mod_revision: i64 },
}

impl WatchEvent {
    pub fn mod_revision(&self) -> i64 {
        match self {
            WatchEvent::Put(kv) => kv.mod_revision,
            WatchEvent::Delete { mod_revision, .. } => *mod_revision,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchItem {
    /// Changes, in revision order. `revision` is the last event's mod_revision: resume from
    /// `revision + 1`. (Not the answer's header revision, which is the store's revision when
    /// sent and runs ahead of the events while a watch catches up from an old revision.)
    Events {
        revision: i64,
        events: Vec<WatchEvent>,
    },
    /// Nothing under the prefix changed up to and including `revision`: resume from
    /// `revision + 1`. etcd sends these only for watches that have caught up.
    Progress { revision: i64 },
}

/// An open watch on one endpoint. After `next` returns an error the watch is finished (its
/// connection closed); open a new one from [`Watch::next_revision`].
pub struct Watch {
    inner: Arc<Inner>,
    endpoint: usize,
    reader: Option<Box<dyn BufRead + Send>>,
    next_revision: i64,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("endpoint", &self.inner.endpoints[self.endpoint])
            .field("open", &self.reader.is_some())
            .field("next_revision", &self.next_revision)
            .finish()
    }
}

/// What one line of the stream says.
enum Parsed {
    Created,
    Item(WatchItem),
}

impl Etcd {
    /// Watches every key under `prefix` from `start_revision` (inclusive), on the endpoint
    /// in use, moving on to the next ones if it cannot be opened. Returns once etcd has
    /// confirmed the watch. A start revision below etcd's compaction comes back as
    /// [`EtcdError::Compacted`] from the first [`Watch::next`]: etcd 3.4 confirms the watch
    /// first and cancels it on the next line. Opened with `Grpc-Metadata-hasleader: true`, so a member that
    /// loses its leader ends the stream instead of going silent, and with progress
    /// notifications (their interval is the server's
    /// `--experimental-watch-progress-notify-interval`).
    pub fn watch_prefix(&self, prefix: &[u8], start_revision: i64) -> Result<Watch, EtcdError> {
        let inner = &self.inner;
        let body = json!({"create_request": {
            "key": b64(prefix),
            "range_end": b64(&wire::prefix_end(prefix)),
            "start_revision": start_revision.to_string(),
            "progress_notify": true,
        }});
        inner.failover(|i| {
            inner.authorized(i, |token| {
                Watch::open(Arc::clone(inner), i, &body, token, start_revision)
            })
        })
    }
}

impl Watch {
    fn open(
        inner: Arc<Inner>,
        endpoint: usize,
        body: &Value,
        token: Option<&str>,
        start_revision: i64,
    ) -> Result<Watch, Verdict> {
        let url = format!("{}/v3/watch", inner.endpoints[endpoint]);
        let mut request = inner
            .streaming
            .post(&url)
            .set("Content-Type", "application/json")
            .set("Grpc-Metadata-hasleader", "true");
        if let Some(token) = token {
            request = request.set("Authorization", token);
        }
        let reader: Box<dyn Read + Send> = match request.send_string(&body.to_string()) {
            Ok(response) => Box::new(response.into_reader()),
            Err(ureq::Error::Status(status, response)) => {
                let text = read_answer(response)?;
                return Err(first_json(&text)
                    .and_then(|v| gateway_error(&v))
                    .unwrap_or_else(|| {
                        super::error::classify_http(status, &String::from_utf8_lossy(&text))
                    }));
            }
            Err(ureq::Error::Transport(t)) => {
                return Err(Verdict::NextEndpoint(EtcdError::Unavailable(format!(
                    "opening the watch: {}",
                    transport(&t)
                ))))
            }
        };
        let mut watch = Watch {
            inner,
            endpoint,
            reader: Some(Box::new(BufReader::with_capacity(64 << 10, reader))),
            next_revision: start_revision,
        };
        // The first line confirms the watch, or says why not (compacted, denied, no leader).
        match watch.read_parsed()? {
            Parsed::Created => Ok(watch),
            Parsed::Item(_) => Err(Verdict::Final(EtcdError::Protocol(
                "the watch sent events before confirming it was created".into(),
            ))),
        }
    }

    /// The next change or progress notification; blocks until one arrives, the stream
    /// fails, or the idle timeout passes without a byte. After an error the watch is
    /// finished.
    pub fn next(&mut self) -> Result<WatchItem, EtcdError> {
        loop {
            let parsed = match self.read_parsed() {
                Ok(p) => p,
                Err(verdict) => {
                    self.reader = None;
                    return Err(match verdict {
                        Verdict::Final(e) => e,
                        Verdict::NextEndpoint(e) => {
                            self.inner.mark_failed(self.endpoint);
                            e
                        }
                        Verdict::Reauthenticate => {
                            self.inner.forget_token();
                            EtcdError::Unavailable(
                                "etcd no longer accepts the token: watch again".into(),
                            )
                        }
                    });
                }
            };
            match parsed {
                // A created line after the first: nothing to report.
                Parsed::Created => continue,
                Parsed::Item(item) => {
                    let resume = match &item {
                        WatchItem::Events { revision, .. } => revision + 1,
                        WatchItem::Progress { revision } => revision + 1,
                    };
                    self.next_revision = self.next_revision.max(resume);
                    return Ok(item);
                }
            }
        }
    }

    /// Where a new watch resumes so that nothing is missed or repeated: one past the last
    /// event or progress revision seen (the start revision before any).
    #[cfg(test)]
    pub fn next_revision(&self) -> i64 {
        self.next_revision
    }

    /// The endpoint this watch streams from.
    #[cfg(test)]
    pub fn endpoint(&self) -> &str {
        &self.inner.endpoints[self.endpoint]
    }

    fn read_parsed(&mut self) -> Result<Parsed, Verdict> {
        let endpoint = &self.inner.endpoints[self.endpoint];
        let unavailable = |why: String| Verdict::NextEndpoint(EtcdError::Unavailable(why));
        let Some(reader) = self.reader.as_mut() else {
            return Err(Verdict::Final(EtcdError::Unavailable(
                "the watch has ended: watch again".into(),
            )));
        };
        let line = match wire::read_line(reader) {
            Ok(Line::Text(line)) => line,
            Ok(Line::End) => return Err(unavailable(format!("{endpoint} ended the watch"))),
            Ok(Line::TooLong) => return Err(Verdict::Final(wire::too_large("a watch answer"))),
            Err(e) if io_error(&e) == "timed out" => {
                return Err(unavailable(format!(
                    "no word from {endpoint} for {:?} (the member is stopped or cut off, or \
                     etcd runs without --experimental-watch-progress-notify-interval)",
                    self.inner.watch_idle_timeout
                )))
            }
            Err(e) => return Err(unavailable(format!("{endpoint}: {}", io_error(&e)))),
        };
        let value: Value = serde_json::from_slice(&line).map_err(|_| {
            Verdict::Final(EtcdError::Protocol(format!(
                "{endpoint} sent a watch line that is not JSON"
            )))
        })?;
        parse(&value)
    }
}

fn parse(v: &Value) -> Result<Parsed, Verdict> {
    if let Some(verdict) = gateway_error(v) {
        return Err(verdict);
    }
    let result = v
        .get("result")
        .ok_or_else(|| Verdict::Final(EtcdError::Protocol("a watch line without result".into())))?;
    if wire::flag(result, "canceled") {
        return Err(canceled(result));
    }
    if wire::flag(result, "created") {
        return Ok(Parsed::Created);
    }
    let events = match result.get("events") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(event)
            .collect::<Result<Vec<_>, _>>()
            .map_err(Verdict::Final)?,
        Some(_) => {
            return Err(Verdict::Final(EtcdError::Protocol(
                "watch events are not an array".into(),
            )))
        }
    };
    match events.last() {
        Some(last) => Ok(Parsed::Item(WatchItem::Events {
            revision: last.mod_revision(),
            events,
        })),
        // A header and nothing else: a progress notification.
        None => Ok(Parsed::Item(WatchItem::Progress {
            revision: wire::header_revision(result).map_err(Verdict::Final)?,
        })),
    }
}

/// Why etcd canceled a watch: history compacted past its start (the HTTP stream would stay
/// open: the caller drops it), permission denied, or something this member cannot serve.
fn canceled(result: &Value) -> Verdict {
    let compact_revision = wire::int(result, "compact_revision").unwrap_or(0);
    if compact_revision > 0 {
        return Verdict::Final(EtcdError::Compacted { compact_revision });
    }
    let reason = result
        .get("cancel_reason")
        .and_then(Value::as_str)
        .unwrap_or("no reason given");
    if reason.contains("PermissionDenied") || reason.contains("permission denied") {
        Verdict::Final(EtcdError::Denied(reason.to_string()))
    } else if reason.contains("Unauthenticated")
        || reason.contains("invalid auth token")
        || reason.contains("user name is empty")
    {
        Verdict::Reauthenticate
    } else {
        Verdict::NextEndpoint(EtcdError::Unavailable(format!(
            "etcd canceled the watch: {reason}"
        )))
    }
}

fn event(v: &Value) -> Result<WatchEvent, EtcdError> {
    let kv = v
        .get("kv")
        .ok_or_else(|| EtcdError::Protocol("a watch event without kv".into()))?;
    // A PUT has no "type": it is the default.
    match v.get("type").and_then(Value::as_str) {
        None | Some("PUT") => Ok(WatchEvent::Put(wire::kv(kv)?)),
        Some("DELETE") => Ok(WatchEvent::Delete {
            key: wire::bytes(kv, "key")?,
            mod_revision: wire::int(kv, "mod_revision")?,
        }),
        Some(other) => Err(EtcdError::Protocol(format!(
            "a watch event of type {other}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str) -> Result<Parsed, Verdict> {
        parse(&serde_json::from_str(text).unwrap())
    }

    #[test]
    fn puts_have_no_type_and_deletes_carry_only_key_and_revision() {
        let k = b64(b"/jit/v1/g/a");
        let text = format!(
            r#"{{"result":{{"header":{{"revision":"12"}},"events":[
              {{"kv":{{"key":"{k}","create_revision":"9","mod_revision":"9","version":"1","value":"eA=="}}}},
              {{"type":"DELETE","kv":{{"key":"{k}","mod_revision":"10"}}}}]}}}}"#
        );
        let Ok(Parsed::Item(WatchItem::Events { revision, events })) = line(&text) else {
            panic!("not events")
        };
        assert_eq!(revision, 10, "the last event's revision, not the header's");
        assert!(matches!(&events[0], WatchEvent::Put(kv) if kv.value == b"x"));
        assert_eq!(
            events[1],
            WatchEvent::Delete {
                key: b"/jit/v1/g/a".to_vec(),
                mod_revision: 10
            }
        );
    }

    #[test]
    fn a_header_alone_is_progress_and_created_is_not() {
        assert!(matches!(
            line(r#"{"result":{"header":{"revision":"2879","raft_term":"21"}}}"#),
            Ok(Parsed::Item(WatchItem::Progress { revision: 2879 }))
        ));
        assert!(matches!(
            line(r#"{"result":{"header":{"revision":"8"},"created":true}}"#),
            Ok(Parsed::Created)
        ));
    }

    #[test]
    fn cancellations_say_compacted_denied_or_try_elsewhere() {
        assert!(matches!(
            line(r#"{"result":{"header":{},"canceled":true,"compact_revision":"9"}}"#),
            Err(Verdict::Final(EtcdError::Compacted {
                compact_revision: 9
            }))
        ));
        assert!(matches!(
            line(
                r#"{"result":{"watch_id":"-1","created":true,"canceled":true,"cancel_reason":"rpc error: code = PermissionDenied desc = etcdserver: permission denied"}}"#
            ),
            Err(Verdict::Final(EtcdError::Denied(_)))
        ));
        assert!(matches!(
            line(
                r#"{"error":{"grpc_code":14,"http_code":503,"message":"etcdserver: no leader","http_status":"Service Unavailable"}}"#
            ),
            Err(Verdict::NextEndpoint(EtcdError::Unavailable(_)))
        ));
        assert!(matches!(
            line(
                r#"{"error":{"grpc_code":1,"http_code":408,"message":"grpc: the client connection is closing"}}"#
            ),
            Err(Verdict::NextEndpoint(_))
        ));
    }
}
