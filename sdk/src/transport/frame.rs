//! The wire frame: `length (u32 BE) | major (u16 BE) | minor (u16 BE) | kind (u8) | payload`.
//!
//! `length` counts the bytes after itself (header rest + payload), so a reader knows the whole
//! frame size from the first four bytes and rejects an oversized frame before allocating.
//! Payloads are serde + bincode 2 (`standard` config, varint integers). See `docs/protocol.md`
//! for the versioning rules; in short: a frame of another major version is refused, a frame of
//! a newer minor may carry kinds we do not know (skipped) and payloads longer than we expect
//! (trailing bytes ignored), which is how optional fields are added.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Protocol major version: changes only with incompatible wire changes; peers of different
/// majors refuse each other.
pub const PROTOCOL_MAJOR: u16 = 1;
/// Protocol minor version: compatible additions (new optional kinds, appended fields).
/// 1.1: every player message ends with its sender's life (`session::encode_player`).
pub const PROTOCOL_MINOR: u16 = 1;
/// TLS ALPN identifier: the protocol name and its major version.
pub const ALPN: &[u8] = b"baton/1";
/// Majors, past and future, whose ALPN an acceptor takes at the TLS layer (its own first), so
/// that a peer of another major is refused by the join handshake with an error naming both
/// versions instead of by a bare TLS alert.
const ALPN_MAJORS_RECOGNISED: std::ops::RangeInclusive<u16> = 1..=PROTOCOL_MAJOR + 15;

/// The ALPN of protocol major `major`: `baton/<major>`.
pub fn alpn_of(major: u16) -> Vec<u8> {
    format!("baton/{major}").into_bytes()
}

/// The ALPNs an acceptor offers to choose from, its own first (the server's order decides).
pub fn accepted_alpns() -> Vec<Vec<u8>> {
    std::iter::once(ALPN.to_vec())
        .chain(
            ALPN_MAJORS_RECOGNISED
                .filter(|major| *major != PROTOCOL_MAJOR)
                .map(alpn_of),
        )
        .collect()
}
/// Bytes of the length prefix.
pub const LENGTH_PREFIX_BYTES: usize = 4;
/// Bytes of the header after the length prefix (major, minor, kind).
pub const HEADER_BYTES: usize = 5;
/// Hard ceiling on `TransportConfig::max_frame_bytes`; also the bincode allocation limit, so
/// no single decode can ask for more memory than this whatever a frame claims.
pub const FRAME_BYTES_LIMIT: usize = 16 * 1024 * 1024;
/// Largest hello or error frame accepted (they are small; a larger one is an attack).
pub const CONTROL_FRAME_BYTES_MAX: usize = 1024;
/// Longest error message sent in an error frame.
pub const ERROR_MESSAGE_BYTES_MAX: usize = 256;

/// Frame kinds known to this version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameKind {
    /// Join handshake: the first frame on each direction's stream.
    Hello = 1,
    /// An application (Raft) message.
    Message = 2,
    /// The sender is closing the connection for the stated reason.
    Error = 3,
}

impl FrameKind {
    /// The kind for a wire byte, if this version knows it.
    pub fn from_u8(kind: u8) -> Option<FrameKind> {
        match kind {
            1 => Some(FrameKind::Hello),
            2 => Some(FrameKind::Message),
            3 => Some(FrameKind::Error),
            _ => None,
        }
    }
}

/// A decoded frame header (the length prefix plus the fixed fields after it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Bytes after the length prefix (header rest + payload).
    pub length: u32,
    /// Sender's major version.
    pub major: u16,
    /// Sender's minor version.
    pub minor: u16,
    /// Frame kind byte (may be unknown to us if `minor` is newer).
    pub kind: u8,
}

impl FrameHeader {
    /// Payload length in bytes.
    pub fn payload_len(&self) -> usize {
        self.length as usize - HEADER_BYTES
    }
}

/// A frame whose header is valid and whose payload is not decoded yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFrame {
    /// The header.
    pub header: FrameHeader,
    /// The payload bytes.
    pub payload: Vec<u8>,
}

/// What can be wrong with a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The length prefix exceeds the maximum frame size.
    #[error("frame of {length} bytes exceeds the maximum of {max}")]
    TooLarge {
        /// Claimed length.
        length: u64,
        /// Configured maximum.
        max: usize,
    },
    /// The length prefix is too small to hold a header.
    #[error("frame length {length} is shorter than the {HEADER_BYTES}-byte header")]
    TooShort {
        /// Claimed length.
        length: u32,
    },
    /// The frame's major version is not ours.
    #[error("protocol major version {theirs} is not supported (this node speaks {ours})")]
    MajorMismatch {
        /// Our major.
        ours: u16,
        /// The frame's major.
        theirs: u16,
    },
    /// The input ended inside a frame.
    #[error("truncated frame: needed {needed} bytes, had {available}")]
    Truncated {
        /// Bytes the frame needs.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// A kind we do not know, in a frame whose minor version says we should.
    #[error("unknown frame kind {kind} at minor version {minor}")]
    UnknownKind {
        /// The kind byte.
        kind: u8,
        /// The frame's minor version.
        minor: u16,
    },
    /// A payload that does not decode as its kind's type.
    #[error("malformed payload: {0}")]
    Payload(String),
}

/// Checks the 9 bytes of length prefix + header against the size limit and our major.
pub fn parse_header(
    bytes: &[u8; LENGTH_PREFIX_BYTES + HEADER_BYTES],
    max_frame_bytes: usize,
) -> Result<FrameHeader, FrameError> {
    let length = check_length([bytes[0], bytes[1], bytes[2], bytes[3]], max_frame_bytes)?;
    let major = u16::from_be_bytes([bytes[4], bytes[5]]);
    let minor = u16::from_be_bytes([bytes[6], bytes[7]]);
    if major != PROTOCOL_MAJOR {
        return Err(FrameError::MajorMismatch {
            ours: PROTOCOL_MAJOR,
            theirs: major,
        });
    }
    Ok(FrameHeader {
        length,
        major,
        minor,
        kind: bytes[8],
    })
}

/// Validates a length prefix: not smaller than a header, not larger than the limit.
pub fn check_length(
    prefix: [u8; LENGTH_PREFIX_BYTES],
    max_frame_bytes: usize,
) -> Result<u32, FrameError> {
    let length = u32::from_be_bytes(prefix);
    let max = max_frame_bytes.min(FRAME_BYTES_LIMIT);
    if length as usize > max {
        return Err(FrameError::TooLarge {
            length: u64::from(length),
            max,
        });
    }
    if (length as usize) < HEADER_BYTES {
        return Err(FrameError::TooShort { length });
    }
    Ok(length)
}

/// Decodes one frame from the start of `buf`; returns it and the bytes consumed.
///
/// This is the decoder the fuzz target drives; the stream reader applies the same checks.
pub fn decode_frame(buf: &[u8], max_frame_bytes: usize) -> Result<(RawFrame, usize), FrameError> {
    const FIXED: usize = LENGTH_PREFIX_BYTES + HEADER_BYTES;
    if buf.len() < LENGTH_PREFIX_BYTES {
        return Err(FrameError::Truncated {
            needed: LENGTH_PREFIX_BYTES,
            available: buf.len(),
        });
    }
    // Check the length alone first so an oversized prefix is reported as such even when the
    // rest of the header is missing.
    check_length([buf[0], buf[1], buf[2], buf[3]], max_frame_bytes)?;
    if buf.len() < FIXED {
        return Err(FrameError::Truncated {
            needed: FIXED,
            available: buf.len(),
        });
    }
    let mut fixed = [0u8; FIXED];
    fixed.copy_from_slice(&buf[..FIXED]);
    let header = parse_header(&fixed, max_frame_bytes)?;
    let total = LENGTH_PREFIX_BYTES + header.length as usize;
    if buf.len() < total {
        return Err(FrameError::Truncated {
            needed: total,
            available: buf.len(),
        });
    }
    let payload = buf[FIXED..total].to_vec();
    Ok((RawFrame { header, payload }, total))
}

/// Encodes a frame of our version.
pub fn encode_frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    encode_frame_with_version(PROTOCOL_MAJOR, PROTOCOL_MINOR, kind, payload)
}

/// Encodes a frame with an explicit version (tests use other versions).
pub fn encode_frame_with_version(major: u16, minor: u16, kind: u8, payload: &[u8]) -> Vec<u8> {
    let length = (HEADER_BYTES + payload.len()) as u32;
    let mut out = Vec::with_capacity(LENGTH_PREFIX_BYTES + length as usize);
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(&major.to_be_bytes());
    out.extend_from_slice(&minor.to_be_bytes());
    out.push(kind);
    out.extend_from_slice(payload);
    out
}

fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<FRAME_BYTES_LIMIT>()
}

/// Serializes a payload with the wire's bincode configuration.
pub fn encode_payload<T: Serialize>(value: &T) -> Result<Vec<u8>, FrameError> {
    bincode::serde::encode_to_vec(value, bincode_config())
        .map_err(|e| FrameError::Payload(e.to_string()))
}

/// Deserializes a payload; bytes after the value are ignored (fields appended by a newer minor).
pub fn decode_payload<T: DeserializeOwned>(payload: &[u8]) -> Result<T, FrameError> {
    bincode::serde::decode_from_slice::<T, _>(payload, bincode_config())
        .map(|(value, _consumed)| value)
        .map_err(|e| FrameError::Payload(e.to_string()))
}

/// Payload of a [`FrameKind::Hello`] frame (version 1.0 fields; later minors append).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The session the sender wants to join.
    pub session_id: [u8; 16],
    /// Random per process start; tells a restarted peer apart from a duplicate connection.
    pub incarnation: u64,
    /// 0 = the sender dialed this connection, 1 = the sender accepted it.
    pub role: u8,
    /// HMAC-SHA256 under the session secret over the join transcript.
    pub proof: [u8; 32],
}

/// Payload of a [`FrameKind::Error`] frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorFrame {
    /// A [`super::CloseCode`] value.
    pub code: u32,
    /// Human-readable reason (at most [`ERROR_MESSAGE_BYTES_MAX`] bytes).
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::{Rng, RngCore, SeedableRng};

    const MAX: usize = 64 * 1024;

    proptest! {
        #[test]
        fn frames_round_trip(kind in any::<u8>(), minor in any::<u16>(), payload in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let bytes = encode_frame_with_version(PROTOCOL_MAJOR, minor, kind, &payload);
            let (frame, used) = decode_frame(&bytes, MAX).unwrap();
            prop_assert_eq!(used, bytes.len());
            prop_assert_eq!(frame.header.kind, kind);
            prop_assert_eq!(frame.header.minor, minor);
            prop_assert_eq!(frame.payload, payload);
        }

        #[test]
        fn hello_payload_round_trips(session in any::<[u8; 16]>(), incarnation in any::<u64>(), role in 0u8..2, proof in any::<[u8; 32]>()) {
            let hello = Hello { session_id: session, incarnation, role, proof };
            let bytes = encode_frame(FrameKind::Hello as u8, &encode_payload(&hello).unwrap());
            let (frame, _) = decode_frame(&bytes, MAX).unwrap();
            prop_assert_eq!(decode_payload::<Hello>(&frame.payload).unwrap(), hello);
        }

        #[test]
        fn every_strict_prefix_is_truncated(payload in proptest::collection::vec(any::<u8>(), 0..256), cut in any::<prop::sample::Index>()) {
            let bytes = encode_frame(FrameKind::Message as u8, &payload);
            let cut = cut.index(bytes.len());
            let is_truncated = matches!(decode_frame(&bytes[..cut], MAX), Err(FrameError::Truncated { .. }));
            prop_assert!(is_truncated);
        }
    }

    #[test]
    fn random_bytes_never_panic_the_decoder() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0xba70);
        let rounds_max = 20_000;
        for _ in 0..rounds_max {
            let len = rng.random_range(0..64);
            let mut buf = vec![0u8; len];
            rng.fill_bytes(&mut buf);
            if let Ok((frame, used)) = decode_frame(&buf, MAX) {
                assert!(used <= buf.len());
                assert_eq!(
                    used,
                    LENGTH_PREFIX_BYTES + HEADER_BYTES + frame.payload.len()
                );
                let _ = decode_payload::<Hello>(&frame.payload);
                let _ = decode_payload::<ErrorFrame>(&frame.payload);
                let _ = decode_payload::<Vec<String>>(&frame.payload);
            }
        }
    }

    #[test]
    fn oversized_length_is_rejected_before_the_body_arrives() {
        let prefix = u32::MAX.to_be_bytes();
        assert!(matches!(
            decode_frame(&prefix, MAX),
            Err(FrameError::TooLarge { .. })
        ));
    }

    #[test]
    fn another_major_is_refused() {
        let bytes =
            encode_frame_with_version(PROTOCOL_MAJOR + 1, 0, FrameKind::Message as u8, b"x");
        assert_eq!(
            decode_frame(&bytes, MAX),
            Err(FrameError::MajorMismatch {
                ours: PROTOCOL_MAJOR,
                theirs: PROTOCOL_MAJOR + 1
            })
        );
    }

    #[test]
    fn a_newer_minor_may_append_fields() {
        #[derive(Serialize)]
        struct HelloV1_1 {
            session_id: [u8; 16],
            incarnation: u64,
            role: u8,
            proof: [u8; 32],
            added_in_1_1: Vec<u32>,
        }
        let newer = HelloV1_1 {
            session_id: [7; 16],
            incarnation: 9,
            role: 1,
            proof: [3; 32],
            added_in_1_1: vec![1, 2, 3],
        };
        let decoded: Hello = decode_payload(&encode_payload(&newer).unwrap()).unwrap();
        assert_eq!(
            decoded,
            Hello {
                session_id: [7; 16],
                incarnation: 9,
                role: 1,
                proof: [3; 32]
            }
        );
    }

    #[test]
    fn huge_claimed_collection_is_refused_without_allocating_it() {
        // A varint length of u64::MAX followed by nothing.
        let payload = [0xffu8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        assert!(decode_payload::<Vec<u8>>(&payload).is_err());
    }
}
