//! Fuzzes the wire-frame decoder and the payload decoders behind it.
//!
//! Run: `cd sdk/fuzz && cargo fuzz run -s none frame -- -max_total_time=60`
//! (`-s none` works on stable; the default sanitizer needs nightly).
#![no_main]

use baton::transport::frame::{
    decode_frame, decode_payload, ErrorFrame, Hello, FrameKind, HEADER_BYTES, LENGTH_PREFIX_BYTES,
};
use libfuzzer_sys::fuzz_target;

/// Frame size limit used while fuzzing: small, so the fuzzer reaches payloads quickly.
const FUZZ_MAX_FRAME_BYTES: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    // Each decoded frame consumes at least a header, so this loop is bounded by the input.
    while let Ok((frame, used)) = decode_frame(rest, FUZZ_MAX_FRAME_BYTES) {
        assert!(used >= LENGTH_PREFIX_BYTES + HEADER_BYTES && used <= rest.len());
        assert_eq!(used, LENGTH_PREFIX_BYTES + HEADER_BYTES + frame.payload.len());
        match FrameKind::from_u8(frame.header.kind) {
            Some(FrameKind::Hello) => {
                let _ = decode_payload::<Hello>(&frame.payload);
            }
            Some(FrameKind::Error) => {
                let _ = decode_payload::<ErrorFrame>(&frame.payload);
            }
            // A stand-in for the application's message type: nested collections and strings
            // exercise bincode's length handling.
            _ => {
                let _ = decode_payload::<Vec<(u64, String, Vec<u8>)>>(&frame.payload);
            }
        }
        rest = &rest[used..];
    }
});
