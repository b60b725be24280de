//! The JSON gateway's encoding: keys and values in base64, int64 fields as JSON strings,
//! default values left out, prefixes as [key, range_end). Pure functions; no I/O beyond
//! reading one bounded body or line.

use std::io::{BufRead, Read};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::Value;

use super::error::EtcdError;
use super::Kv;

/// The most one response body or one watch line may hold. etcd's own request limit is
/// 1.5 MiB; a page of 500 keys or one watch batch stays far below this. Anything larger is
/// refused rather than buffered: a hostile or broken endpoint must not exhaust jitd's memory.
pub const MAX_BODY: usize = 8 << 20;

pub fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

/// The end of the key range that holds exactly the keys starting with `prefix`: the prefix
/// with its last byte below 0xff incremented (trailing 0xff bytes dropped). An empty prefix,
/// or one of only 0xff bytes, ranges to the end of the key space ("\0").
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// An int64 field: the gateway writes them as strings ("12"), a client may see numbers too;
/// a missing field is the default, 0.
pub fn int(v: &Value, field: &str) -> Result<i64, EtcdError> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(0),
        Some(Value::String(s)) => s
            .parse()
            .map_err(|_| EtcdError::Protocol(format!("field {field} is not an integer: {s:?}"))),
        Some(Value::Number(n)) => n
            .as_i64()
            .ok_or_else(|| EtcdError::Protocol(format!("field {field} is not an int64: {n}"))),
        Some(other) => Err(EtcdError::Protocol(format!(
            "field {field} is not an integer: {other}"
        ))),
    }
}

/// A bytes field (base64); missing means empty, as protobuf leaves empty bytes out.
pub fn bytes(v: &Value, field: &str) -> Result<Vec<u8>, EtcdError> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => B64
            .decode(s)
            .map_err(|_| EtcdError::Protocol(format!("field {field} is not base64"))),
        Some(other) => Err(EtcdError::Protocol(format!(
            "field {field} is not a base64 string: {}",
            kind(other)
        ))),
    }
}

/// A bool field; left out when false.
pub fn flag(v: &Value, field: &str) -> bool {
    v.get(field).and_then(Value::as_bool).unwrap_or(false)
}

/// `header.revision` of a response: the store's revision when it answered.
pub fn header_revision(v: &Value) -> Result<i64, EtcdError> {
    let header = v
        .get("header")
        .ok_or_else(|| EtcdError::Protocol("the answer has no header".into()))?;
    int(header, "revision")
}

pub fn kv(v: &Value) -> Result<Kv, EtcdError> {
    Ok(Kv {
        key: bytes(v, "key")?,
        value: bytes(v, "value")?,
        create_revision: int(v, "create_revision")?,
        mod_revision: int(v, "mod_revision")?,
    })
}

/// The `kvs` array of a range answer (missing when nothing matched).
pub fn kvs(v: &Value) -> Result<Vec<Kv>, EtcdError> {
    match v.get("kvs") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items.iter().map(kv).collect(),
        Some(other) => Err(EtcdError::Protocol(format!(
            "kvs is not an array: {}",
            kind(other)
        ))),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Reads a whole body, at most [`MAX_BODY`] + 1 bytes (more is the caller's to refuse).
/// On a read error, the bytes read before it come back with it: the gateway ends every
/// error answer with an HTTP trailer (`Grpc-Trailer-Content-Type`) after the last chunk,
/// which ureq's chunked decoder rejects, although the JSON before it is complete.
pub fn read_body(reader: impl Read) -> Result<Vec<u8>, (Vec<u8>, std::io::Error)> {
    let mut body = Vec::new();
    match reader.take(MAX_BODY as u64 + 1).read_to_end(&mut body) {
        Ok(_) => Ok(body),
        Err(e) => Err((body, e)),
    }
}

pub fn too_large(what: &str) -> EtcdError {
    EtcdError::TooLarge(format!("{what} is larger than {} MiB", MAX_BODY >> 20))
}

/// One line of a streamed body.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    Text(Vec<u8>),
    /// The stream ended (with no partial line left).
    End,
    /// The line grew past [`MAX_BODY`] before its newline.
    TooLong,
}

/// Reads the next non-empty line (without its newline). A last line without a newline is
/// still a line: the gateway ends a failed stream with an error object and no newline.
pub fn read_line(reader: &mut impl BufRead) -> Result<Line, std::io::Error> {
    let mut line = Vec::new();
    loop {
        let (consumed, done) = {
            let buf = reader.fill_buf()?;
            if buf.is_empty() {
                (0, true)
            } else if let Some(nl) = buf.iter().position(|&b| b == b'\n') {
                line.extend_from_slice(&buf[..nl]);
                (nl + 1, true)
            } else {
                line.extend_from_slice(buf);
                (buf.len(), false)
            }
        };
        let at_end = consumed == 0;
        reader.consume(consumed);
        if line.len() > MAX_BODY {
            return Ok(Line::TooLong);
        }
        if done {
            let text = line.trim_ascii();
            if !text.is_empty() {
                return Ok(Line::Text(text.to_vec()));
            }
            if at_end {
                return Ok(Line::End);
            }
            line.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_prefix_ranges_up_to_its_last_byte_plus_one() {
        assert_eq!(prefix_end(b"/jit/v1/g/"), b"/jit/v1/g0");
        assert_eq!(prefix_end(b"a\xff\xff"), b"b");
        assert_eq!(prefix_end(b"\xff"), b"\0");
        assert_eq!(prefix_end(b""), b"\0");
    }

    #[test]
    fn int64_fields_arrive_as_strings_numbers_or_not_at_all() {
        let v = json!({"a": "12", "b": 7, "c": "x", "d": true});
        assert_eq!(int(&v, "a").unwrap(), 12);
        assert_eq!(int(&v, "b").unwrap(), 7);
        assert_eq!(int(&v, "missing").unwrap(), 0);
        assert!(int(&v, "c").is_err());
        assert!(int(&v, "d").is_err());
    }

    #[test]
    fn a_kv_without_value_is_empty_and_bad_base64_is_refused() {
        let v = json!({"key": b64(b"/k"), "mod_revision": "9"});
        let kv = kv(&v).unwrap();
        assert_eq!(kv.key, b"/k");
        assert!(kv.value.is_empty());
        assert_eq!(kv.mod_revision, 9);
        assert_eq!(kv.create_revision, 0);
        assert!(bytes(&json!({"key": "%%%"}), "key").is_err());
    }

    #[test]
    fn lines_split_on_newlines_skip_blanks_and_keep_a_last_unterminated_one() {
        let mut r = std::io::BufReader::with_capacity(
            4,
            &b"{\"a\":1}\n\n  \n{\"b\":2}\n{\"error\":{}}"[..],
        );
        assert_eq!(
            read_line(&mut r).unwrap(),
            Line::Text(b"{\"a\":1}".to_vec())
        );
        assert_eq!(
            read_line(&mut r).unwrap(),
            Line::Text(b"{\"b\":2}".to_vec())
        );
        assert_eq!(
            read_line(&mut r).unwrap(),
            Line::Text(b"{\"error\":{}}".to_vec())
        );
        assert_eq!(read_line(&mut r).unwrap(), Line::End);
    }

    #[test]
    fn a_line_longer_than_the_bound_is_refused_before_it_is_all_read() {
        let huge = vec![b'x'; MAX_BODY + 10];
        let mut r = std::io::BufReader::new(&huge[..]);
        assert_eq!(read_line(&mut r).unwrap(), Line::TooLong);
    }
}
