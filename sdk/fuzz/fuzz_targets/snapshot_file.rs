//! The snapshot file decoder must never panic or over-allocate on arbitrary bytes.
#![no_main]

use baton::storage::snapshot_file::{decode_snapshot, encode_snapshot, frame_raw_snapshot};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    // Mode byte: odd = the bytes are a body, framed with valid checksums so the fuzzer
    // reaches the body decoder; even = raw bytes.
    let framed;
    let data = match input.split_first() {
        Some((mode, rest)) if mode % 2 == 1 => {
            framed = frame_raw_snapshot(rest);
            &framed[..]
        }
        Some((_, rest)) => rest,
        None => input,
    };
    if let Ok(snapshot) = decode_snapshot(data) {
        assert_eq!(
            decode_snapshot(&encode_snapshot(&snapshot)).ok(),
            Some(snapshot)
        );
    }
});
