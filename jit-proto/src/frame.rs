//! Length-prefixed JSON frames: 4-byte big-endian length, then the document.

use std::fmt;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Instant;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::MAX_FRAME_BYTES;

#[derive(Debug)]
pub enum FrameError {
    /// The peer closed the connection before a whole frame arrived.
    Truncated,
    /// The announced length exceeds [`MAX_FRAME_BYTES`].
    TooLarge(usize),
    /// The body is not the JSON document we expect.
    Malformed(String),
    Io(io::Error),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Truncated => write!(f, "connection closed in the middle of a frame"),
            FrameError::TooLarge(n) => {
                write!(
                    f,
                    "frame of {n} bytes exceeds the limit of {MAX_FRAME_BYTES} bytes"
                )
            }
            FrameError::Malformed(e) => write!(f, "malformed message: {e}"),
            FrameError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for FrameError {}

impl From<io::Error> for FrameError {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            FrameError::Truncated
        } else {
            FrameError::Io(e)
        }
    }
}

/// Serialises `value` and writes it as one frame (a single `write_all`, so a frame is never
/// interleaved with another writer's).
pub fn write_frame<W: Write, T: Serialize>(w: &mut W, value: &T) -> Result<(), FrameError> {
    let body = serde_json::to_vec(value).map_err(|e| FrameError::Malformed(e.to_string()))?;
    if body.len() > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge(body.len()));
    }
    let mut buf = Vec::with_capacity(4 + body.len());
    // The length fits: it was just checked against MAX_FRAME_BYTES.
    buf.extend_from_slice(&(body.len() as u32).to_be_bytes());
    buf.extend_from_slice(&body);
    w.write_all(&buf)?;
    w.flush()?;
    Ok(())
}

/// Reads one frame's raw bytes, refusing oversized ones before reading their body.
pub fn read_frame_bytes<R: Read>(r: &mut R) -> Result<Vec<u8>, FrameError> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge(len));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    Ok(body)
}

/// Reads one frame and decodes it as `T`.
pub fn read_frame<R: Read, T: DeserializeOwned>(r: &mut R) -> Result<T, FrameError> {
    let body = read_frame_bytes(r)?;
    serde_json::from_slice(&body).map_err(|e| FrameError::Malformed(e.to_string()))
}

/// Reads from a socket under one overall deadline: the timeout is re-armed before every read,
/// so a peer that trickles bytes cannot stretch the time spent on one frame.
pub struct DeadlineReader<'a> {
    stream: &'a UnixStream,
    deadline: Instant,
}

impl<'a> DeadlineReader<'a> {
    pub fn new(stream: &'a UnixStream, deadline: Instant) -> Self {
        DeadlineReader { stream, deadline }
    }
}

impl Read for DeadlineReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "deadline passed"));
        }
        self.stream.set_read_timeout(Some(left))?;
        (&mut &*self.stream).read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{ClientMessage, Request};

    #[test]
    fn a_frame_round_trips() {
        let msg = ClientMessage::new(Request::Show { id: "abc".into() });
        let mut buf = Vec::new();
        write_frame(&mut buf, &msg).unwrap();
        assert_eq!(
            u32::from_be_bytes(buf[..4].try_into().unwrap()) as usize,
            buf.len() - 4
        );
        let back: ClientMessage = read_frame(&mut buf.as_slice()).unwrap();
        assert_eq!(back, msg);
    }

    #[test]
    fn an_oversized_length_is_refused_before_reading_the_body() {
        let mut buf = ((MAX_FRAME_BYTES + 1) as u32).to_be_bytes().to_vec();
        buf.extend_from_slice(b"{}");
        assert!(matches!(
            read_frame::<_, ClientMessage>(&mut buf.as_slice()),
            Err(FrameError::TooLarge(n)) if n == MAX_FRAME_BYTES + 1
        ));
    }

    #[test]
    fn a_truncated_frame_is_reported_as_such() {
        let mut buf = 10u32.to_be_bytes().to_vec();
        buf.extend_from_slice(b"{\"v\"");
        assert!(matches!(
            read_frame::<_, ClientMessage>(&mut buf.as_slice()),
            Err(FrameError::Truncated)
        ));
        assert!(matches!(
            read_frame::<_, ClientMessage>(&mut &b"\x00\x00"[..]),
            Err(FrameError::Truncated)
        ));
    }

    #[test]
    fn garbage_is_malformed() {
        let mut buf = 3u32.to_be_bytes().to_vec();
        buf.extend_from_slice(b"xyz");
        assert!(matches!(
            read_frame::<_, ClientMessage>(&mut buf.as_slice()),
            Err(FrameError::Malformed(_))
        ));
    }
}
