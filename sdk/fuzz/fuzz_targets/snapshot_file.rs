//! The snapshot file decoder must never panic or over-allocate on arbitrary bytes.
#![no_main]

use baton::storage::snapshot_file::{decode_snapshot, encode_snapshot};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(snapshot) = decode_snapshot(data) {
        assert_eq!(
            decode_snapshot(&encode_snapshot(&snapshot)).ok(),
            Some(snapshot)
        );
    }
});
