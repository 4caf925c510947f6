//! The subset of STUN (RFC 8489) and TURN (RFC 8656) a Baton node needs as a client over
//! UDP: Binding, Allocate, Refresh and ChannelBind requests with long-term credentials, and
//! their answers. ChannelData itself is in `socket` (it never leaves the fast path).
//!
//! Hand-written rather than taken from a crate: the sans-IO TURN client crates we found
//! either own the socket (webrtc-rs `turn`) or change their API with every minor release
//! (`turn-client-proto`), and what a node needs is five message kinds over one socket that
//! quinn already drives.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The fixed value in every STUN header (RFC 8489 §5).
pub const MAGIC_COOKIE: u32 = 0x2112_a442;
/// Bytes of a STUN header.
pub const HEADER_BYTES: usize = 20;

/// Binding (RFC 8489).
pub const BINDING: u16 = 0x001;
/// Allocate (RFC 8656).
pub const ALLOCATE: u16 = 0x003;
/// Refresh (RFC 8656).
pub const REFRESH: u16 = 0x004;
/// ChannelBind (RFC 8656).
pub const CHANNEL_BIND: u16 = 0x009;

/// The class of a STUN message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// A request.
    Request,
    /// An indication.
    Indication,
    /// A success response.
    Success,
    /// An error response.
    Error,
}

impl Class {
    fn bits(self) -> u16 {
        match self {
            Class::Request => 0b00,
            Class::Indication => 0b01,
            Class::Success => 0b10,
            Class::Error => 0b11,
        }
    }

    fn from_bits(bits: u16) -> Class {
        match bits {
            0b00 => Class::Request,
            0b01 => Class::Indication,
            0b10 => Class::Success,
            _ => Class::Error,
        }
    }
}

/// Attribute types used here.
pub mod attr {
    /// USERNAME.
    pub const USERNAME: u16 = 0x0006;
    /// MESSAGE-INTEGRITY (HMAC-SHA1).
    pub const MESSAGE_INTEGRITY: u16 = 0x0008;
    /// ERROR-CODE.
    pub const ERROR_CODE: u16 = 0x0009;
    /// CHANNEL-NUMBER.
    pub const CHANNEL_NUMBER: u16 = 0x000c;
    /// LIFETIME.
    pub const LIFETIME: u16 = 0x000d;
    /// XOR-PEER-ADDRESS.
    pub const XOR_PEER_ADDRESS: u16 = 0x0012;
    /// REALM.
    pub const REALM: u16 = 0x0014;
    /// NONCE.
    pub const NONCE: u16 = 0x0015;
    /// XOR-RELAYED-ADDRESS.
    pub const XOR_RELAYED_ADDRESS: u16 = 0x0016;
    /// REQUESTED-TRANSPORT.
    pub const REQUESTED_TRANSPORT: u16 = 0x0019;
    /// XOR-MAPPED-ADDRESS.
    pub const XOR_MAPPED_ADDRESS: u16 = 0x0020;
    /// FINGERPRINT (CRC-32 of the message, XOR 0x5354554e).
    pub const FINGERPRINT: u16 = 0x8028;
}

/// The value FINGERPRINT's CRC is XORed with (RFC 8489 §14.7).
const FINGERPRINT_XOR: u32 = 0x5354_554e;
/// Bytes of a MESSAGE-INTEGRITY attribute: header and HMAC-SHA1.
const INTEGRITY_ATTRIBUTE_BYTES: usize = 24;

/// Why an answer to an authenticated request is not taken for the server's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    /// A success (or an error other than a challenge) without MESSAGE-INTEGRITY: anyone
    /// who saw the request could have sent it.
    #[error("TURN answer without MESSAGE-INTEGRITY refused (unauthenticated)")]
    IntegrityMissing,
    /// MESSAGE-INTEGRITY does not verify under our key: forged, or altered on the way.
    #[error("TURN answer whose MESSAGE-INTEGRITY does not verify refused (forged or altered)")]
    IntegrityMismatch,
    /// FINGERPRINT is present and wrong: damaged, or not a STUN message at all.
    #[error("STUN answer whose FINGERPRINT does not match refused")]
    FingerprintMismatch,
    /// Not a STUN message.
    #[error(transparent)]
    Malformed(#[from] StunError),
}

/// Checks a STUN answer in its wire form before anything in it is believed: a FINGERPRINT,
/// if present, must match; with `key` (the answer to a request sent with long-term
/// credentials) MESSAGE-INTEGRITY must verify, except on the unauthenticated challenges
/// RFC 8489 §9.2.5 lets a server send (401 Unauthenticated, 438 Stale Nonce), which carry
/// only a new nonce to retry with.
pub fn check_answer(bytes: &[u8], key: Option<&[u8]>) -> Result<Message, AnswerError> {
    let message = Message::decode(bytes)?;
    let spans = attribute_spans(bytes)?;
    if let Some(&(at, _)) = spans.iter().find(|(_, kind)| *kind == attr::FINGERPRINT) {
        let stated = bytes.get(at + 4..at + 8).ok_or(StunError::Truncated)?;
        let crc = crc32fast::hash(&bytes[..at]) ^ FINGERPRINT_XOR;
        if stated != crc.to_be_bytes() {
            return Err(AnswerError::FingerprintMismatch);
        }
    }
    let Some(key) = key else {
        return Ok(message);
    };
    let Some(&(at, _)) = spans
        .iter()
        .find(|(_, kind)| *kind == attr::MESSAGE_INTEGRITY)
    else {
        let challenge =
            message.class == Class::Error && matches!(message.error_code(), Some(401 | 438));
        return match challenge {
            true => Ok(message),
            false => Err(AnswerError::IntegrityMissing),
        };
    };
    let stated = bytes
        .get(at + 4..at + INTEGRITY_ATTRIBUTE_BYTES)
        .ok_or(StunError::Truncated)?;
    // The HMAC covers everything before the attribute, with the header's length counting
    // up to the attribute's end (RFC 8489 §14.5).
    let mut signed = bytes[..at].to_vec();
    set_length(&mut signed, INTEGRITY_ATTRIBUTE_BYTES);
    let hmac_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, key);
    ring::hmac::verify(&hmac_key, &signed, stated).map_err(|_| AnswerError::IntegrityMismatch)?;
    Ok(message)
}

/// Where each attribute of a decodable message starts, and its type.
fn attribute_spans(bytes: &[u8]) -> Result<Vec<(usize, u16)>, StunError> {
    let length = usize::from(u16::from_be_bytes([bytes[2], bytes[3]]));
    let end = HEADER_BYTES + length;
    let mut spans = Vec::new();
    let mut at = HEADER_BYTES;
    while at < end {
        let header = bytes.get(at..at + 4).ok_or(StunError::Truncated)?;
        let kind = u16::from_be_bytes([header[0], header[1]]);
        let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
        spans.push((at, kind));
        at += (4 + len + 3) & !3;
    }
    Ok(spans)
}

/// A STUN message: header fields and attributes in order (values without padding).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The method (12 bits).
    pub method: u16,
    /// The class.
    pub class: Class,
    /// The transaction id.
    pub transaction: [u8; 12],
    /// (type, value) pairs.
    pub attributes: Vec<(u16, Vec<u8>)>,
}

/// Why bytes are not a STUN message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StunError {
    /// Shorter than a header, a length that disagrees with the datagram, or a bad cookie.
    #[error("not a STUN message")]
    NotStun,
    /// An attribute runs past the end.
    #[error("truncated STUN attribute")]
    Truncated,
}

impl Message {
    /// A request of `method` with a random transaction id.
    pub fn request(method: u16) -> Message {
        Message {
            method,
            class: Class::Request,
            transaction: rand::random(),
            attributes: Vec::new(),
        }
    }

    /// Appends an attribute.
    pub fn with(mut self, kind: u16, value: Vec<u8>) -> Message {
        self.attributes.push((kind, value));
        self
    }

    /// The first value of attribute `kind`.
    pub fn get(&self, kind: u16) -> Option<&[u8]> {
        self.attributes
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, v)| v.as_slice())
    }

    /// The error code of an error response (e.g. 401, 438).
    pub fn error_code(&self) -> Option<u16> {
        let value = self.get(attr::ERROR_CODE)?;
        let class = u16::from(*value.get(2)? & 0x07);
        let number = u16::from(*value.get(3)?);
        Some(class * 100 + number)
    }

    /// An XOR-encoded address attribute.
    pub fn xor_addr(&self, kind: u16) -> Option<SocketAddr> {
        decode_xor_addr(self.get(kind)?, &self.transaction)
    }

    /// The wire form; with `key`, a MESSAGE-INTEGRITY attribute follows the others, and a
    /// FINGERPRINT ends every message (it tells STUN from the other protocols on the shared
    /// socket, RFC 8489 §7, and coturn answers in kind, so its answers are checked too).
    pub fn encode(&self, key: Option<&[u8]>) -> Vec<u8> {
        let kind = self.method;
        let class = self.class.bits();
        let message_type = (kind & 0x000f)
            | ((kind & 0x0070) << 1)
            | ((kind & 0x0f80) << 2)
            | ((class & 0b01) << 4)
            | ((class & 0b10) << 7);
        let mut out = Vec::with_capacity(HEADER_BYTES + 64);
        out.extend_from_slice(&message_type.to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        out.extend_from_slice(&self.transaction);
        for (kind, value) in &self.attributes {
            push_attribute(&mut out, *kind, value);
        }
        if let Some(key) = key {
            // The length covers the integrity attribute itself (RFC 8489 §14.5).
            set_length(&mut out, 24);
            let hmac_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, key);
            let tag = ring::hmac::sign(&hmac_key, &out);
            push_attribute(&mut out, attr::MESSAGE_INTEGRITY, tag.as_ref());
        }
        set_length(&mut out, 8);
        let crc = crc32fast::hash(&out) ^ FINGERPRINT_XOR;
        push_attribute(&mut out, attr::FINGERPRINT, &crc.to_be_bytes());
        set_length(&mut out, 0);
        out
    }

    /// Parses one message.
    pub fn decode(bytes: &[u8]) -> Result<Message, StunError> {
        if bytes.len() < HEADER_BYTES || bytes[0] & 0xc0 != 0 {
            return Err(StunError::NotStun);
        }
        let message_type = u16::from_be_bytes([bytes[0], bytes[1]]);
        let length = usize::from(u16::from_be_bytes([bytes[2], bytes[3]]));
        let cookie = u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
        if cookie != MAGIC_COOKIE || HEADER_BYTES + length > bytes.len() || length % 4 != 0 {
            return Err(StunError::NotStun);
        }
        let method = (message_type & 0x000f)
            | ((message_type >> 1) & 0x0070)
            | ((message_type >> 2) & 0x0f80);
        let class = Class::from_bits(((message_type >> 4) & 0b01) | ((message_type >> 7) & 0b10));
        let mut transaction = [0u8; 12];
        transaction.copy_from_slice(&bytes[8..HEADER_BYTES]);
        let mut attributes = Vec::new();
        let mut rest = &bytes[HEADER_BYTES..HEADER_BYTES + length];
        while !rest.is_empty() {
            let header = rest.get(..4).ok_or(StunError::Truncated)?;
            let kind = u16::from_be_bytes([header[0], header[1]]);
            let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
            let value = rest.get(4..4 + len).ok_or(StunError::Truncated)?;
            attributes.push((kind, value.to_vec()));
            let padded = (4 + len + 3) & !3;
            rest = rest.get(padded..).unwrap_or_default();
        }
        Ok(Message {
            method,
            class,
            transaction,
            attributes,
        })
    }
}

fn push_attribute(out: &mut Vec<u8>, kind: u16, value: &[u8]) {
    out.extend_from_slice(&kind.to_be_bytes());
    // Attribute values here are addresses, names and nonces, far below 64 KiB.
    out.extend_from_slice(&(value.len() as u16).to_be_bytes());
    out.extend_from_slice(value);
    out.resize((out.len() + 3) & !3, 0);
}

/// Writes the header's length field: the attributes so far plus `extra` bytes.
fn set_length(out: &mut [u8], extra: usize) {
    let length = (out.len() - HEADER_BYTES + extra) as u16;
    out[2..4].copy_from_slice(&length.to_be_bytes());
}

/// The long-term credential key: MD5(username ":" realm ":" password) (RFC 8489 §9.2.2).
pub fn long_term_key(username: &str, realm: &str, password: &str) -> Vec<u8> {
    use md5::Digest;
    md5::Md5::digest(format!("{username}:{realm}:{password}").as_bytes()).to_vec()
}

/// An address in XOR form (RFC 8489 §14.2).
pub fn encode_xor_addr(addr: SocketAddr, transaction: &[u8; 12]) -> Vec<u8> {
    let port = addr.port() ^ (MAGIC_COOKIE >> 16) as u16;
    let mut out = vec![0];
    match addr.ip() {
        IpAddr::V4(ip) => {
            out.push(1);
            out.extend_from_slice(&port.to_be_bytes());
            let x = u32::from(ip) ^ MAGIC_COOKIE;
            out.extend_from_slice(&x.to_be_bytes());
        }
        IpAddr::V6(ip) => {
            out.push(2);
            out.extend_from_slice(&port.to_be_bytes());
            let mut mask = [0u8; 16];
            mask[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
            mask[4..].copy_from_slice(transaction);
            out.extend(ip.octets().iter().zip(mask).map(|(a, m)| a ^ m));
        }
    }
    out
}

fn decode_xor_addr(value: &[u8], transaction: &[u8; 12]) -> Option<SocketAddr> {
    let family = *value.get(1)?;
    let port = u16::from_be_bytes([*value.get(2)?, *value.get(3)?]) ^ (MAGIC_COOKIE >> 16) as u16;
    match family {
        1 => {
            let raw: [u8; 4] = value.get(4..8)?.try_into().ok()?;
            let ip = Ipv4Addr::from(u32::from_be_bytes(raw) ^ MAGIC_COOKIE);
            Some(SocketAddr::new(ip.into(), port))
        }
        2 => {
            let raw: [u8; 16] = value.get(4..20)?.try_into().ok()?;
            let mut mask = [0u8; 16];
            mask[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
            mask[4..].copy_from_slice(transaction);
            let mut octets = [0u8; 16];
            for (o, (a, m)) in octets.iter_mut().zip(raw.iter().zip(mask)) {
                *o = a ^ m;
            }
            Some(SocketAddr::new(Ipv6Addr::from(octets).into(), port))
        }
        _ => None,
    }
}

/// Whether `bytes` starts like a STUN message (RFC 9443: first byte 0–3, the cookie).
pub fn looks_like_stun(bytes: &[u8]) -> bool {
    bytes.len() >= HEADER_BYTES
        && bytes[0] < 4
        && u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) == MAGIC_COOKIE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_with_integrity_last() {
        let peer: SocketAddr = "203.0.113.7:4000".parse().unwrap();
        let request = Message::request(CHANNEL_BIND)
            .with(attr::CHANNEL_NUMBER, vec![0x40, 0x00, 0, 0])
            .with(attr::USERNAME, b"1600:node".to_vec());
        let request = Message {
            attributes: {
                let mut a = request.attributes.clone();
                a.push((
                    attr::XOR_PEER_ADDRESS,
                    encode_xor_addr(peer, &request.transaction),
                ));
                a
            },
            ..request
        };
        let key = long_term_key("1600:node", "R", "pw");
        let bytes = request.encode(Some(&key));
        assert!(looks_like_stun(&bytes));
        let back = Message::decode(&bytes).unwrap();
        assert_eq!(back.method, CHANNEL_BIND);
        assert_eq!(back.class, Class::Request);
        assert_eq!(back.xor_addr(attr::XOR_PEER_ADDRESS), Some(peer));
        assert_eq!(back.get(attr::USERNAME), Some(&b"1600:node"[..]));
        // The integrity covers everything before it, with the header's length counting up
        // to its end; the fingerprint comes last.
        let kinds: Vec<u16> = back.attributes.iter().map(|(kind, _)| *kind).collect();
        assert_eq!(
            kinds[kinds.len() - 2..],
            [attr::MESSAGE_INTEGRITY, attr::FINGERPRINT]
        );
        let tag = back.get(attr::MESSAGE_INTEGRITY).unwrap();
        let mut covered = bytes[..bytes.len() - 24 - 8].to_vec();
        set_length(&mut covered, 24);
        let hmac_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &key);
        assert!(ring::hmac::verify(&hmac_key, &covered, tag).is_ok());
        assert_eq!(check_answer(&bytes, Some(&key)), Ok(back));
    }

    /// A success answer to an Allocate, as a TURN server would send it under `key`.
    fn allocate_answer(transaction: [u8; 12], key: Option<&[u8]>) -> Vec<u8> {
        let relayed: SocketAddr = "192.0.2.2:49160".parse().unwrap();
        Message {
            method: ALLOCATE,
            class: Class::Success,
            transaction,
            attributes: vec![
                (
                    attr::XOR_RELAYED_ADDRESS,
                    encode_xor_addr(relayed, &transaction),
                ),
                (attr::LIFETIME, 600u32.to_be_bytes().to_vec()),
            ],
        }
        .encode(key)
    }

    #[test]
    fn forged_unauthenticated_or_altered_turn_answers_are_refused() {
        let key = long_term_key("1600:node", "baton", "pw");
        let transaction = [7; 12];
        let genuine = allocate_answer(transaction, Some(&key));
        assert!(check_answer(&genuine, Some(&key)).is_ok());
        // Someone who saw the request but holds no key: signed under another, or not at all.
        let wrong = long_term_key("1600:node", "baton", "guess");
        assert_eq!(
            check_answer(&allocate_answer(transaction, Some(&wrong)), Some(&key)),
            Err(AnswerError::IntegrityMismatch)
        );
        assert_eq!(
            check_answer(&allocate_answer(transaction, None), Some(&key)),
            Err(AnswerError::IntegrityMissing)
        );
        // A relayed address rewritten on the way, fingerprint recomputed to match.
        let mut altered = genuine.clone();
        altered[HEADER_BYTES + 4 + 7] ^= 0x01;
        let fingerprint_at = altered.len() - 8;
        let crc = crc32fast::hash(&altered[..fingerprint_at]) ^ FINGERPRINT_XOR;
        altered[fingerprint_at + 4..].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(
            check_answer(&altered, Some(&key)),
            Err(AnswerError::IntegrityMismatch)
        );
        // ...or without the fingerprint fixed: the fingerprint says so first.
        let mut damaged = genuine.clone();
        damaged[HEADER_BYTES + 4 + 7] ^= 0x01;
        assert_eq!(
            check_answer(&damaged, Some(&key)),
            Err(AnswerError::FingerprintMismatch)
        );
        assert_eq!(
            check_answer(&damaged, None),
            Err(AnswerError::FingerprintMismatch)
        );
    }

    #[test]
    fn a_challenge_needs_no_integrity_but_other_errors_do() {
        let key = long_term_key("1600:node", "baton", "pw");
        let error = |code: [u8; 4]| {
            Message {
                method: ALLOCATE,
                class: Class::Error,
                transaction: [9; 12],
                attributes: vec![
                    (attr::ERROR_CODE, code.to_vec()),
                    (attr::NONCE, b"fresh".to_vec()),
                ],
            }
            .encode(None)
        };
        let stale = error([0, 0, 4, 38]);
        assert_eq!(
            check_answer(&stale, Some(&key)).unwrap().error_code(),
            Some(438)
        );
        assert!(check_answer(&error([0, 0, 4, 1]), Some(&key)).is_ok());
        // A forged "403 Forbidden" would end the allocation attempt: refused.
        assert_eq!(
            check_answer(&error([0, 0, 4, 3]), Some(&key)),
            Err(AnswerError::IntegrityMissing)
        );
        // Unauthenticated requests (Binding) get unauthenticated answers.
        assert!(check_answer(&error([0, 0, 4, 3]), None).is_ok());
    }

    #[test]
    fn class_and_method_bits_interleave_as_the_rfc_says() {
        // An Allocate error response is 0x0113 (RFC 8656 §17 examples).
        let error = Message {
            method: ALLOCATE,
            class: Class::Error,
            transaction: [0; 12],
            attributes: vec![(attr::ERROR_CODE, vec![0, 0, 4, 1])],
        };
        let bytes = error.encode(None);
        assert_eq!(&bytes[..2], &[0x01, 0x13]);
        let back = Message::decode(&bytes).unwrap();
        assert_eq!((back.method, back.class), (ALLOCATE, Class::Error));
        assert_eq!(back.error_code(), Some(401));
        // A Binding success is 0x0101.
        let success = Message {
            class: Class::Success,
            method: BINDING,
            ..error
        };
        assert_eq!(&success.encode(None)[..2], &[0x01, 0x01]);
    }

    #[test]
    fn garbage_is_not_stun() {
        assert_eq!(Message::decode(b"short"), Err(StunError::NotStun));
        let mut bytes = Message::request(BINDING).encode(None);
        bytes[4] ^= 1;
        assert_eq!(Message::decode(&bytes), Err(StunError::NotStun));
        let mut truncated = Message::request(BINDING)
            .with(attr::USERNAME, b"abcd".to_vec())
            .encode(None);
        truncated[22..24].copy_from_slice(&64u16.to_be_bytes());
        assert_eq!(Message::decode(&truncated), Err(StunError::Truncated));
        assert!(!looks_like_stun(&[0x40; 20]));
    }

    #[test]
    fn ipv6_xor_addresses_round_trip() {
        let addr: SocketAddr = "[2001:db8::1]:3478".parse().unwrap();
        let tx = [7u8; 12];
        assert_eq!(
            decode_xor_addr(&encode_xor_addr(addr, &tx), &tx),
            Some(addr)
        );
    }
}
