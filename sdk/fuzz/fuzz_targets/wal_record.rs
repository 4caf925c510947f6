//! The WAL record decoder must never panic, hang or over-allocate on arbitrary bytes, and
//! whatever it accepts must re-encode to the same bytes.
#![no_main]

use baton::storage::record::{
    decode_record, encode_record, find_commit_after, frame_raw_record, RecordRef, WalRecord,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    // Mode byte: odd = the bytes are a kind and a body, framed with valid checksums so the
    // fuzzer reaches the body decoder; even = raw bytes, checksums and all.
    let framed;
    let data = match input.split_first() {
        Some((mode, rest)) if mode % 2 == 1 && !rest.is_empty() => {
            let mut buffer = Vec::new();
            frame_raw_record(rest[0] % 8, &rest[1..], &mut buffer);
            framed = buffer;
            &framed[..]
        }
        Some((_, rest)) => rest,
        None => input,
    };
    let mut offset = 0;
    while let Ok((record, used)) = decode_record(&data[offset..]) {
        let mut encoded = Vec::new();
        let as_ref = match &record {
            WalRecord::Checkpoint(body) => RecordRef::Checkpoint(body),
            WalRecord::Entry(body) => RecordRef::Entry(body),
            WalRecord::HardState(body) => RecordRef::HardState(body),
            WalRecord::SnapshotMarker(body) => RecordRef::SnapshotMarker(body),
            WalRecord::Commit(body) => RecordRef::Commit(body),
        };
        encode_record(as_ref, &mut encoded);
        let (again, again_used) = decode_record(&encoded).expect("a re-encoded record decodes");
        assert_eq!(again, record);
        assert_eq!(again_used, encoded.len());
        offset += used;
    }
    let _ = find_commit_after(data, 0);
});
