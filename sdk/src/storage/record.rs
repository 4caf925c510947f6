//! The write-ahead-log record codec.
//!
//! Layout of one record (little endian), [`RECORD_HEADER_BYTES`] of header then the payload:
//!
//! ```text
//! offset 0  u32  payload length in bytes (at most RECORD_PAYLOAD_BYTES_MAX)
//! offset 4  u8   record kind (1 checkpoint, 2 entry, 3 hard state, 4 snapshot marker, 5 commit)
//! offset 5  u32  CRC32C of the payload
//! offset 9  u32  CRC32C of bytes 0..9 (the header itself)
//! offset 13      payload: the record's body, bincode 2 (standard configuration)
//! ```
//!
//! The header has its own checksum so that a scan over damaged bytes can test every offset
//! cheaply (recovery uses it to tell a torn tail from a damaged middle), and so that a
//! garbage length is never trusted: the payload is only read after the header checks out,
//! and never past the end of the buffer. The decoder never panics and never allocates more
//! than the buffer it is given holds.

use baton_core::{Entry, HardState, Index, Term};
use serde::{Deserialize, Serialize};

/// Bytes of a record header.
pub const RECORD_HEADER_BYTES: usize = 13;
/// Largest payload a record may carry. Larger lengths are treated as damage.
pub const RECORD_PAYLOAD_BYTES_MAX: usize = 1 << 30;

const KIND_CHECKPOINT: u8 = 1;
const KIND_ENTRY: u8 = 2;
const KIND_HARD_STATE: u8 = 3;
const KIND_SNAPSHOT_MARKER: u8 = 4;
const KIND_COMMIT: u8 = 5;

fn codec_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<RECORD_PAYLOAD_BYTES_MAX>()
}

/// First record of every segment: the state of the log when the segment was started, so
/// that the oldest surviving segment can be replayed after older ones were deleted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Sequence number of the segment (must match its file name).
    pub segment_seq: u64,
    /// Index the next appended entry had when the segment was started.
    pub next_index: Index,
    /// Last index covered by the snapshot then (0: none).
    pub snapshot_index: Index,
    /// Term of that snapshot's last entry.
    pub snapshot_term: Term,
    /// Hard state then; a later hard-state record supersedes it.
    pub hard_state: HardState,
}

/// A snapshot became durable at this point of the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMarker {
    /// Last index the snapshot covers.
    pub last_index: Index,
    /// Term of that entry.
    pub last_term: Term,
    /// Whether the entries after `last_index` were kept (the log held `last_index` with
    /// `last_term`) or the whole log was dropped. Decided at write time, so replay never needs
    /// entries that may have been deleted since.
    pub log_kept: bool,
}

/// Ends a batch: the records since the previous commit take effect together, or not at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commit {
    /// Batch number, one more than the previous batch's.
    pub batch: u64,
    /// Byte offset in this segment up to which the data was known to be fsynced when this
    /// batch was written. Recovery uses it to tell a torn tail from a damaged middle.
    pub synced_through: u64,
}

/// A decoded record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WalRecord {
    /// See [`Checkpoint`].
    Checkpoint(Checkpoint),
    /// One log entry; it truncates the log from its index before being appended.
    Entry(Entry),
    /// The hard state from now on.
    HardState(HardState),
    /// See [`SnapshotMarker`].
    SnapshotMarker(SnapshotMarker),
    /// See [`Commit`].
    Commit(Commit),
}

/// A record to encode, borrowing its body (entries can be megabytes).
#[derive(Clone, Copy, Debug)]
pub enum RecordRef<'a> {
    /// See [`Checkpoint`].
    Checkpoint(&'a Checkpoint),
    /// One log entry.
    Entry(&'a Entry),
    /// The hard state.
    HardState(&'a HardState),
    /// See [`SnapshotMarker`].
    SnapshotMarker(&'a SnapshotMarker),
    /// See [`Commit`].
    Commit(&'a Commit),
}

/// Why bytes do not form a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The buffer ends inside the header or the payload.
    #[error("record truncated: needs {needed} bytes, {available} available")]
    Truncated {
        /// Bytes the record would need.
        needed: u64,
        /// Bytes there are.
        available: u64,
    },
    /// The header checksum does not match.
    #[error("header checksum mismatch")]
    HeaderChecksum,
    /// The payload checksum does not match.
    #[error("payload checksum mismatch")]
    PayloadChecksum,
    /// The length field exceeds [`RECORD_PAYLOAD_BYTES_MAX`].
    #[error("payload length {0} exceeds the maximum")]
    TooLarge(u64),
    /// The kind byte names no record kind.
    #[error("unknown record kind {0}")]
    UnknownKind(u8),
    /// The payload passed its checksum but is not a valid body for its kind.
    #[error("malformed payload: {0}")]
    Malformed(String),
}

/// Appends the encoding of `record` to `out`.
pub fn encode_record(record: RecordRef<'_>, out: &mut Vec<u8>) {
    let header_at = out.len();
    out.extend_from_slice(&[0u8; RECORD_HEADER_BYTES]);
    let payload_at = out.len();
    let (kind, encoded) = match record {
        RecordRef::Checkpoint(body) => (KIND_CHECKPOINT, encode_body(body, out)),
        RecordRef::Entry(body) => (KIND_ENTRY, encode_body(body, out)),
        RecordRef::HardState(body) => (KIND_HARD_STATE, encode_body(body, out)),
        RecordRef::SnapshotMarker(body) => (KIND_SNAPSHOT_MARKER, encode_body(body, out)),
        RecordRef::Commit(body) => (KIND_COMMIT, encode_body(body, out)),
    };
    // Encoding plain data types into a Vec cannot fail; if it ever did, the record would be
    // written with a payload that fails to decode and recovery would report it, so a debug
    // assertion is the right strength here.
    debug_assert!(encoded, "encoding a record body failed");
    let payload_len = out.len() - payload_at;
    let payload_crc = crc32c::crc32c(&out[payload_at..]);
    let header = &mut out[header_at..payload_at];
    header[0..4].copy_from_slice(&(payload_len as u32).to_le_bytes());
    header[4] = kind;
    header[5..9].copy_from_slice(&payload_crc.to_le_bytes());
    let header_crc = crc32c::crc32c(&header[0..9]);
    header[9..13].copy_from_slice(&header_crc.to_le_bytes());
}

/// Frames arbitrary `payload` bytes as a record of `kind` with valid checksums. For tests
/// and fuzzing: it lets them reach the body decoder past the checksums.
pub fn frame_raw_record(kind: u8, payload: &[u8], out: &mut Vec<u8>) {
    let mut header = [0u8; RECORD_HEADER_BYTES];
    header[0..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    header[4] = kind;
    header[5..9].copy_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    let header_crc = crc32c::crc32c(&header[0..9]);
    header[9..13].copy_from_slice(&header_crc.to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(payload);
}

fn encode_body<T: Serialize>(body: &T, out: &mut Vec<u8>) -> bool {
    bincode::serde::encode_into_std_write(body, out, codec_config()).is_ok()
}

/// Checks the header at the start of `buf`; returns (kind, payload length, payload crc).
fn decode_header(buf: &[u8]) -> Result<(u8, usize, u32), DecodeError> {
    let Some(header) = buf.get(..RECORD_HEADER_BYTES) else {
        return Err(DecodeError::Truncated {
            needed: RECORD_HEADER_BYTES as u64,
            available: buf.len() as u64,
        });
    };
    let le_u32 = |at: usize| {
        u32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    if crc32c::crc32c(&header[0..9]) != le_u32(9) {
        return Err(DecodeError::HeaderChecksum);
    }
    let payload_len = le_u32(0) as usize;
    if payload_len > RECORD_PAYLOAD_BYTES_MAX {
        return Err(DecodeError::TooLarge(payload_len as u64));
    }
    Ok((header[4], payload_len, le_u32(5)))
}

/// Decodes the record at the start of `buf`; returns it and the bytes it occupies.
pub fn decode_record(buf: &[u8]) -> Result<(WalRecord, usize), DecodeError> {
    let (kind, payload_len, payload_crc) = decode_header(buf)?;
    let total = RECORD_HEADER_BYTES + payload_len;
    let Some(payload) = buf.get(RECORD_HEADER_BYTES..total) else {
        return Err(DecodeError::Truncated {
            needed: total as u64,
            available: buf.len() as u64,
        });
    };
    if crc32c::crc32c(payload) != payload_crc {
        return Err(DecodeError::PayloadChecksum);
    }
    let record = match kind {
        KIND_CHECKPOINT => WalRecord::Checkpoint(decode_body(payload)?),
        KIND_ENTRY => WalRecord::Entry(decode_body(payload)?),
        KIND_HARD_STATE => WalRecord::HardState(decode_body(payload)?),
        KIND_SNAPSHOT_MARKER => WalRecord::SnapshotMarker(decode_body(payload)?),
        KIND_COMMIT => WalRecord::Commit(decode_body(payload)?),
        other => return Err(DecodeError::UnknownKind(other)),
    };
    Ok((record, total))
}

fn decode_body<T: serde::de::DeserializeOwned>(payload: &[u8]) -> Result<T, DecodeError> {
    let (body, used) = bincode::serde::decode_from_slice(payload, codec_config())
        .map_err(|error| DecodeError::Malformed(error.to_string()))?;
    if used != payload.len() {
        return Err(DecodeError::Malformed(format!(
            "{} trailing bytes after the body",
            payload.len() - used
        )));
    }
    Ok(body)
}

/// Searches `buf` from byte `from` on for an intact commit record (both checksums and the
/// body valid) and returns its offset and body. Every offset is tried, so this finds commits
/// hidden behind a damaged record whose length cannot be trusted. Cost: one 9-byte CRC per
/// offset, a full decode only where a header checks out.
pub fn find_commit_after(buf: &[u8], from: usize) -> Option<(usize, Commit)> {
    let last_start = buf.len().checked_sub(RECORD_HEADER_BYTES)?;
    (from..=last_start).find_map(|offset| {
        let rest = &buf[offset..];
        match decode_header(rest) {
            Ok((KIND_COMMIT, _, _)) => match decode_record(rest) {
                Ok((WalRecord::Commit(commit), _)) => Some((offset, commit)),
                _ => None,
            },
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_core::EntryPayload;
    use rand::{Rng, SeedableRng};

    fn sample_records() -> Vec<WalRecord> {
        vec![
            WalRecord::Checkpoint(Checkpoint {
                segment_seq: 7,
                next_index: 42,
                snapshot_index: 30,
                snapshot_term: 3,
                hard_state: HardState {
                    term: 4,
                    vote: Some(2),
                    commit: 40,
                },
            }),
            WalRecord::Entry(Entry {
                term: 4,
                index: 42,
                payload: EntryPayload::Noop,
            }),
            WalRecord::Entry(Entry {
                term: 4,
                index: 43,
                payload: EntryPayload::Command {
                    tag: None,
                    data: vec![],
                },
            }),
            WalRecord::HardState(HardState {
                term: 5,
                vote: None,
                commit: 43,
            }),
            WalRecord::SnapshotMarker(SnapshotMarker {
                last_index: 43,
                last_term: 4,
                log_kept: true,
            }),
            WalRecord::Commit(Commit {
                batch: 9,
                synced_through: 1234,
            }),
        ]
    }

    fn encode(record: &WalRecord, out: &mut Vec<u8>) {
        let as_ref = match record {
            WalRecord::Checkpoint(body) => RecordRef::Checkpoint(body),
            WalRecord::Entry(body) => RecordRef::Entry(body),
            WalRecord::HardState(body) => RecordRef::HardState(body),
            WalRecord::SnapshotMarker(body) => RecordRef::SnapshotMarker(body),
            WalRecord::Commit(body) => RecordRef::Commit(body),
        };
        encode_record(as_ref, out);
    }

    #[test]
    fn every_kind_round_trips_back_to_back() {
        let records = sample_records();
        let mut buf = Vec::new();
        for record in &records {
            encode(record, &mut buf);
        }
        let mut offset = 0;
        for expected in &records {
            let (decoded, used) = decode_record(&buf[offset..]).unwrap();
            assert_eq!(&decoded, expected);
            offset += used;
        }
        assert_eq!(offset, buf.len());
    }

    #[test]
    fn every_prefix_of_a_record_is_truncated_not_misread() {
        let mut buf = Vec::new();
        encode(&sample_records()[2], &mut buf);
        for cut in 0..buf.len() {
            assert!(
                matches!(
                    decode_record(&buf[..cut]),
                    Err(DecodeError::Truncated { .. })
                ),
                "prefix of {cut} bytes"
            );
        }
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let mut buf = Vec::new();
        encode(&sample_records()[0], &mut buf);
        for byte in 0..buf.len() {
            for bit in 0..8 {
                let mut damaged = buf.clone();
                damaged[byte] ^= 1 << bit;
                match decode_record(&damaged) {
                    Err(_) => {}
                    Ok((record, _)) => panic!("flip at {byte}:{bit} decoded as {record:?}"),
                }
            }
        }
    }

    #[test]
    fn a_lying_length_is_refused_without_allocating() {
        let mut header = [0u8; RECORD_HEADER_BYTES];
        header[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        header[4] = KIND_ENTRY;
        let crc = crc32c::crc32c(&header[0..9]);
        header[9..13].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(
            decode_record(&header),
            Err(DecodeError::TooLarge(u64::from(u32::MAX)))
        );
    }

    #[test]
    fn a_commit_is_found_behind_garbage() {
        let mut buf = vec![0xAB; 100];
        let at = buf.len();
        encode(&sample_records()[5], &mut buf);
        buf.extend_from_slice(&[0u8; 50]);
        let (found_at, commit) = find_commit_after(&buf, 0).unwrap();
        assert_eq!(found_at, at);
        assert_eq!(
            commit,
            Commit {
                batch: 9,
                synced_through: 1234
            }
        );
        assert_eq!(find_commit_after(&buf, at + 1), None);
    }

    /// CI's stand-in for the fuzz target: the decoder must return (never panic, never hang)
    /// on arbitrary bytes, including mutated valid records.
    #[test]
    fn decoder_survives_random_bytes() {
        let cases = 20_000;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x5eed_0001);
        let mut valid = Vec::new();
        for record in &sample_records() {
            encode(record, &mut valid);
        }
        for case in 0..cases {
            let bytes: Vec<u8> = if case % 2 == 0 {
                let len = rng.random_range(0..200);
                (0..len).map(|_| rng.random()).collect()
            } else {
                let mut mutated = valid.clone();
                let flips = rng.random_range(1..8);
                for _ in 0..flips {
                    let at = rng.random_range(0..mutated.len());
                    mutated[at] = rng.random();
                }
                let keep = rng.random_range(0..=mutated.len());
                mutated.truncate(keep);
                mutated
            };
            // Also behind valid checksums, so the body decoder sees garbage too.
            let mut framed = Vec::new();
            frame_raw_record(rng.random_range(0..7), &bytes, &mut framed);
            let _ = decode_record(&framed);
            let mut offset = 0;
            while let Ok((_, used)) = decode_record(&bytes[offset..]) {
                assert!(used >= RECORD_HEADER_BYTES);
                offset += used;
            }
            let _ = find_commit_after(&bytes, 0);
        }
    }
}
