//! The frame decoder and the request JSON, on whatever a peer sends.
//!
//! Properties: reading a frame from any bytes either yields exactly the announced body (never
//! more than MAX_FRAME_BYTES) or says why not (too large, truncated); the daemon's decoding of
//! a body either yields a request that survives its own encoding unchanged, or an error answer
//! that fits in a frame; a daemon answer a client decodes also survives re-encoding.
#![no_main]

use jit_proto::frame::{read_frame, read_frame_bytes, write_frame, FrameError};
use jit_proto::{ClientMessage, Response, MAX_FRAME_BYTES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    check_frame(data);
    // The same bytes as a body, so that mutations land in the JSON rather than the prefix.
    check_request(data);
    check_response(data);
});

fn check_frame(data: &[u8]) {
    let announced = data
        .get(..4)
        .map(|p| u32::from_be_bytes(p.try_into().unwrap()) as usize);
    match read_frame_bytes(&mut &data[..]) {
        Ok(body) => {
            let n = announced.expect("a frame was read without a length");
            assert!(n <= MAX_FRAME_BYTES);
            assert_eq!(body, data[4..4 + n]);
        }
        Err(FrameError::TooLarge(n)) => {
            assert_eq!(Some(n), announced);
            assert!(n > MAX_FRAME_BYTES);
        }
        Err(FrameError::Truncated) => {
            assert!(announced.is_none_or(|n| data.len() - 4 < n));
        }
        Err(e) => panic!("reading from memory failed otherwise: {e}"),
    }
}

fn check_request(body: &[u8]) {
    match jitd::fuzzing::decode_request(body) {
        Ok(msg) => {
            let mut frame = Vec::new();
            write_frame(&mut frame, &msg).expect("a decoded request re-encodes in one frame");
            let back: ClientMessage = read_frame(&mut &frame[..]).expect("and reads back");
            assert_eq!(back, msg);
            assert_eq!(jitd::fuzzing::decode_request(&frame[4..]), Ok(msg));
        }
        Err(answer) => {
            assert!(matches!(answer, Response::Error { .. }), "{answer:?}");
            let mut frame = Vec::new();
            write_frame(&mut frame, &answer).expect("the refusal fits in one frame");
        }
    }
}

fn check_response(body: &[u8]) {
    if let Ok(answer) = serde_json::from_slice::<Response>(body) {
        let text = serde_json::to_vec(&answer).expect("an answer re-encodes");
        let back: Response = serde_json::from_slice(&text).expect("and reads back");
        assert_eq!(back, answer);
    }
}
