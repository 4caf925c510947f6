//! Session credentials (id + secret) and invite codes that carry them.
//!
//! An invite code is `baton1-` followed by Crockford base32 (lowercase, no padding) of:
//! `format (u8 = 1) | session id (16) | secret (32) | address count (u8) | addresses | checksum (4)`
//! where each address is `4 | ipv4 (4) | port (u16 BE)` or `6 | ipv6 (16) | port (u16 BE)` and the
//! checksum is the first 4 bytes of SHA-256 over everything before it. Decoding is
//! case-insensitive, accepts `o`/`O` for `0` and `i`/`l` for `1`, and ignores `-` and spaces, so a
//! code read aloud or re-typed still parses; the checksum catches typos.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use rand::RngCore;
use ring::digest;

/// Length of a session id in bytes.
pub const SESSION_ID_BYTES: usize = 16;
/// Length of a session secret in bytes.
pub const SESSION_SECRET_BYTES: usize = 32;
/// Most addresses one invite may carry.
pub const INVITE_ADDRS_MAX: usize = 8;
/// Most rendezvous service instances one invite may name.
pub const INVITE_RENDEZVOUS_MAX: usize = 4;
/// The human-visible prefix of an invite code; its digit names the code family (the
/// format version inside says what the code carries).
pub const INVITE_PREFIX: &str = "baton1-";

/// Credentials and bootstrap addresses.
const INVITE_FORMAT_VERSION: u8 = 1;
/// Version 1 followed by the rendezvous service instances (a count, then address records).
/// An invite without any is still written as version 1, so that older nodes keep reading it.
const INVITE_FORMAT_VERSION_RENDEZVOUS: u8 = 2;
const INVITE_CHECKSUM_BYTES: usize = 4;
const ADDR_TAG_V4: u8 = 4;
const ADDR_TAG_V6: u8 = 6;
const BASE32_ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
/// Longest invite code accepted for decoding: bounds the work done on pasted garbage.
const INVITE_CODE_CHARS_MAX: usize = 1024;

/// Public identifier of a session (not secret: it is advertised over mDNS).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub [u8; SESSION_ID_BYTES]);

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({self})")
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl FromStr for SessionId {
    type Err = InviteError;
    /// Parses the 32-hex-digit form printed by `Display`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.len() != SESSION_ID_BYTES * 2 || !s.is_ascii() {
            return Err(InviteError::BadSessionId);
        }
        let mut out = [0u8; SESSION_ID_BYTES];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16)
                .map_err(|_| InviteError::BadSessionId)?;
        }
        Ok(SessionId(out))
    }
}

/// The secret that proves membership of a session. Its `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionSecret(pub [u8; SESSION_SECRET_BYTES]);

impl fmt::Debug for SessionSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionSecret(<redacted>)")
    }
}

/// What a node needs to join a session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionCredentials {
    /// Public id of the session.
    pub session_id: SessionId,
    /// Shared secret; proves membership in the join handshake.
    pub secret: SessionSecret,
}

impl SessionCredentials {
    /// New random credentials from the operating system's CSPRNG (via `rand`'s thread RNG,
    /// which is reseeded from the OS).
    ///
    /// The session id is derived from the secret ([`SessionId::of_key`] of its
    /// [`rendezvous_key`](SessionSecret::rendezvous_key)), so a rendezvous service can check
    /// that whoever registers under the id holds the session's key, without ever seeing the
    /// secret and without remembering anything.
    pub fn generate() -> SessionCredentials {
        let mut secret = [0u8; SESSION_SECRET_BYTES];
        rand::rng().fill_bytes(&mut secret);
        let secret = SessionSecret(secret);
        SessionCredentials {
            session_id: SessionId::of_key(&secret.rendezvous_key()),
            secret,
        }
    }
}

/// Length of a [`RendezvousKey`] in bytes.
pub const RENDEZVOUS_KEY_BYTES: usize = 32;

/// What a player shows a rendezvous service to register under its session id: a one-way
/// function of the session secret (HMAC-SHA256 of a fixed label), so the service learns
/// neither the secret nor anything that passes the session's join proof.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RendezvousKey(pub [u8; RENDEZVOUS_KEY_BYTES]);

impl fmt::Debug for RendezvousKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RendezvousKey(<redacted>)")
    }
}

impl SessionSecret {
    /// The key this session registers with at a rendezvous service.
    pub fn rendezvous_key(&self) -> RendezvousKey {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.0);
        let tag = ring::hmac::sign(&key, b"baton rendezvous key v1");
        let mut out = [0u8; RENDEZVOUS_KEY_BYTES];
        out.copy_from_slice(tag.as_ref());
        RendezvousKey(out)
    }
}

impl SessionId {
    /// The session id that belongs to a rendezvous key: the first bytes of
    /// SHA-256(label | key). Anyone can check it; only a holder of the key can present it.
    pub fn of_key(key: &RendezvousKey) -> SessionId {
        let mut context = digest::Context::new(&digest::SHA256);
        context.update(b"baton session id v1");
        context.update(&key.0);
        let hash = context.finish();
        let mut id = [0u8; SESSION_ID_BYTES];
        id.copy_from_slice(&hash.as_ref()[..SESSION_ID_BYTES]);
        SessionId(id)
    }
}

/// Credentials plus where to find the session: everything a joiner needs, as one pasteable code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invite {
    /// The session's credentials.
    pub credentials: SessionCredentials,
    /// Bootstrap addresses (at most [`INVITE_ADDRS_MAX`]; extra ones are left out of the code).
    pub addrs: Vec<SocketAddr>,
    /// The rendezvous service instances of the session, for play over the Internet, in the
    /// order a member tries them: the one it registers on first, then the ones it moves to
    /// when that one stops answering. A joiner whose configuration names none uses these
    /// (`docs/internet-play.md`). At most [`INVITE_RENDEZVOUS_MAX`]; extra ones are left
    /// out of the code.
    pub rendezvous: Vec<SocketAddr>,
}

/// Why an invite code (or a session id string) was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InviteError {
    /// The code does not start with `baton1-`.
    #[error("not a Baton invite code (expected it to start with \"{INVITE_PREFIX}\")")]
    MissingPrefix,
    /// A character outside the base32 alphabet.
    #[error("invalid character {character:?} at position {position}")]
    BadCharacter {
        /// The offending character.
        character: char,
        /// Its position after the prefix.
        position: usize,
    },
    /// The code is too long to be an invite.
    #[error("invite code is too long")]
    TooLong,
    /// The code ended early.
    #[error("invite code is truncated")]
    Truncated,
    /// The checksum does not match: a typo or a damaged code.
    #[error("invite code checksum mismatch (typo?)")]
    BadChecksum,
    /// An invite format this version does not know.
    #[error("unsupported invite format version {0}")]
    UnsupportedVersion(u8),
    /// More addresses than allowed.
    #[error("invite carries {0} addresses, more than allowed")]
    TooManyAddrs(usize),
    /// An address record of unknown type.
    #[error("invalid address record type {0}")]
    BadAddrTag(u8),
    /// Bytes after the last field.
    #[error("invite code has trailing data")]
    TrailingBytes,
    /// A session id string that is not 32 hex digits.
    #[error("session id must be 32 hex digits")]
    BadSessionId,
}

impl Invite {
    fn to_bytes(&self) -> Vec<u8> {
        let addrs = &self.addrs[..self.addrs.len().min(INVITE_ADDRS_MAX)];
        let rendezvous = &self.rendezvous[..self.rendezvous.len().min(INVITE_RENDEZVOUS_MAX)];
        let mut out = Vec::with_capacity(64 + (addrs.len() + rendezvous.len()) * 19);
        out.push(match rendezvous.is_empty() {
            true => INVITE_FORMAT_VERSION,
            false => INVITE_FORMAT_VERSION_RENDEZVOUS,
        });
        out.extend_from_slice(&self.credentials.session_id.0);
        out.extend_from_slice(&self.credentials.secret.0);
        out.push(addrs.len() as u8);
        for addr in addrs {
            push_addr(&mut out, *addr);
        }
        if !rendezvous.is_empty() {
            out.push(rendezvous.len() as u8);
            for addr in rendezvous {
                push_addr(&mut out, *addr);
            }
        }
        let sum = digest::digest(&digest::SHA256, &out);
        out.extend_from_slice(&sum.as_ref()[..INVITE_CHECKSUM_BYTES]);
        out
    }

    fn from_bytes(bytes: &[u8]) -> Result<Invite, InviteError> {
        if bytes.len() < INVITE_CHECKSUM_BYTES {
            return Err(InviteError::Truncated);
        }
        let (body, sum) = bytes.split_at(bytes.len() - INVITE_CHECKSUM_BYTES);
        let expected = digest::digest(&digest::SHA256, body);
        if &expected.as_ref()[..INVITE_CHECKSUM_BYTES] != sum {
            return Err(InviteError::BadChecksum);
        }
        let mut reader = ByteReader { bytes: body };
        let version = reader.u8()?;
        if version != INVITE_FORMAT_VERSION && version != INVITE_FORMAT_VERSION_RENDEZVOUS {
            return Err(InviteError::UnsupportedVersion(version));
        }
        let mut session_id = [0u8; SESSION_ID_BYTES];
        session_id.copy_from_slice(reader.take(SESSION_ID_BYTES)?);
        let mut secret = [0u8; SESSION_SECRET_BYTES];
        secret.copy_from_slice(reader.take(SESSION_SECRET_BYTES)?);
        let count = reader.u8()? as usize;
        if count > INVITE_ADDRS_MAX {
            return Err(InviteError::TooManyAddrs(count));
        }
        let mut addrs = Vec::with_capacity(count);
        for _ in 0..count {
            addrs.push(reader.addr()?);
        }
        let mut rendezvous = Vec::new();
        if version == INVITE_FORMAT_VERSION_RENDEZVOUS {
            let count = reader.u8()? as usize;
            if count > INVITE_RENDEZVOUS_MAX {
                return Err(InviteError::TooManyAddrs(count));
            }
            for _ in 0..count {
                rendezvous.push(reader.addr()?);
            }
        }
        if !reader.bytes.is_empty() {
            return Err(InviteError::TrailingBytes);
        }
        Ok(Invite {
            credentials: SessionCredentials {
                session_id: SessionId(session_id),
                secret: SessionSecret(secret),
            },
            addrs,
            rendezvous,
        })
    }
}

/// One address record: tag, IP, port (big-endian).
fn push_addr(out: &mut Vec<u8>, addr: SocketAddr) {
    match addr.ip() {
        IpAddr::V4(ip) => {
            out.push(ADDR_TAG_V4);
            out.extend_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            out.push(ADDR_TAG_V6);
            out.extend_from_slice(&ip.octets());
        }
    }
    out.extend_from_slice(&addr.port().to_be_bytes());
}

struct ByteReader<'a> {
    bytes: &'a [u8],
}

impl<'a> ByteReader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], InviteError> {
        if self.bytes.len() < n {
            return Err(InviteError::Truncated);
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, InviteError> {
        Ok(self.take(1)?[0])
    }
    /// One address record: tag, IP, port.
    fn addr(&mut self) -> Result<SocketAddr, InviteError> {
        let ip = match self.u8()? {
            ADDR_TAG_V4 => {
                let mut o = [0u8; 4];
                o.copy_from_slice(self.take(4)?);
                IpAddr::V4(Ipv4Addr::from(o))
            }
            ADDR_TAG_V6 => {
                let mut o = [0u8; 16];
                o.copy_from_slice(self.take(16)?);
                IpAddr::V6(Ipv6Addr::from(o))
            }
            tag => return Err(InviteError::BadAddrTag(tag)),
        };
        let mut port = [0u8; 2];
        port.copy_from_slice(self.take(2)?);
        Ok(SocketAddr::new(ip, u16::from_be_bytes(port)))
    }
}

impl fmt::Display for Invite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(INVITE_PREFIX)?;
        f.write_str(&base32_encode(&self.to_bytes()))
    }
}

impl FromStr for Invite {
    type Err = InviteError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.len() > INVITE_CODE_CHARS_MAX {
            return Err(InviteError::TooLong);
        }
        let prefix_len = INVITE_PREFIX.len();
        match s.get(..prefix_len) {
            Some(p) if p.eq_ignore_ascii_case(INVITE_PREFIX) => {}
            _ => return Err(InviteError::MissingPrefix),
        }
        let bytes = base32_decode(&s[prefix_len..])?;
        Invite::from_bytes(&bytes)
    }
}

fn base32_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 8 / 5 + 1);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(BASE32_ALPHABET[((acc >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(BASE32_ALPHABET[((acc << (5 - bits)) & 31) as usize] as char);
    }
    out
}

fn base32_value(c: char) -> Option<u32> {
    let c = c.to_ascii_lowercase();
    let c = match c {
        'o' => '0',
        'i' | 'l' => '1',
        other => other,
    };
    BASE32_ALPHABET
        .iter()
        .position(|&a| a as char == c)
        .map(|p| p as u32)
}

fn base32_decode(text: &str) -> Result<Vec<u8>, InviteError> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for (position, character) in text.chars().enumerate() {
        if character == '-' || character == ' ' {
            continue;
        }
        let v = base32_value(character).ok_or(InviteError::BadCharacter {
            character,
            position,
        })?;
        acc = ((acc << 5) | v) & 0xffff;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Invite {
        Invite {
            credentials: SessionCredentials::generate(),
            addrs: vec![
                "127.0.0.1:7000".parse().unwrap(),
                "[::1]:7001".parse().unwrap(),
            ],
            rendezvous: Vec::new(),
        }
    }

    #[test]
    fn invite_round_trips() {
        let invite = sample();
        let code = invite.to_string();
        assert!(code.starts_with(INVITE_PREFIX));
        assert_eq!(code.parse::<Invite>().unwrap(), invite);
        assert_eq!(code.to_uppercase().parse::<Invite>().unwrap(), invite);
    }

    #[test]
    fn an_invite_names_its_rendezvous_service_and_one_without_stays_version_1() {
        let plain = sample();
        let bytes = plain.to_bytes();
        assert_eq!(bytes[0], INVITE_FORMAT_VERSION, "readable by older nodes");
        let invite = Invite {
            rendezvous: vec![
                "192.0.2.1:3479".parse().unwrap(),
                "192.0.2.3:3479".parse().unwrap(),
            ],
            ..plain
        };
        let with = invite.to_bytes();
        assert_eq!(with[0], INVITE_FORMAT_VERSION_RENDEZVOUS);
        // The same fields, then the rendezvous instances.
        assert_eq!(
            with[1..bytes.len() - INVITE_CHECKSUM_BYTES],
            bytes[1..bytes.len() - INVITE_CHECKSUM_BYTES]
        );
        assert_eq!(invite.to_string().parse::<Invite>().unwrap(), invite);
        let v6 = Invite {
            rendezvous: vec!["[2001:db8::1]:3479".parse().unwrap()],
            ..invite
        };
        assert_eq!(v6.to_string().parse::<Invite>().unwrap(), v6);
    }

    #[test]
    fn a_rendezvous_invite_cut_short_or_of_an_unknown_version_is_refused() {
        let invite = Invite {
            rendezvous: vec!["192.0.2.1:3479".parse().unwrap()],
            ..sample()
        };
        let mut body = invite.to_bytes();
        body.truncate(body.len() - INVITE_CHECKSUM_BYTES);
        let seal = |mut body: Vec<u8>| {
            let sum = digest::digest(&digest::SHA256, &body);
            body.extend_from_slice(&sum.as_ref()[..INVITE_CHECKSUM_BYTES]);
            body
        };
        // Without its rendezvous record (checksum recomputed): truncated, not misread.
        let short = seal(body[..body.len() - 7].to_vec());
        assert_eq!(Invite::from_bytes(&short), Err(InviteError::Truncated));
        body[0] = 3;
        assert_eq!(
            Invite::from_bytes(&seal(body)),
            Err(InviteError::UnsupportedVersion(3))
        );
    }

    #[test]
    fn a_typo_is_caught_by_the_checksum() {
        let code = sample().to_string();
        let mut chars: Vec<char> = code.chars().collect();
        let i = INVITE_PREFIX.len() + 10;
        chars[i] = if chars[i] == 'a' { 'b' } else { 'a' };
        let typo: String = chars.into_iter().collect();
        assert_eq!(typo.parse::<Invite>(), Err(InviteError::BadChecksum));
    }

    #[test]
    fn bad_codes_are_typed_errors() {
        assert_eq!("hello".parse::<Invite>(), Err(InviteError::MissingPrefix));
        assert!(matches!(
            "baton1-!!".parse::<Invite>(),
            Err(InviteError::BadCharacter { .. })
        ));
        let code = sample().to_string();
        assert!("baton1-".parse::<Invite>().is_err());
        assert!(code[..code.len() - 5].parse::<Invite>().is_err());
    }

    #[test]
    fn generated_ids_belong_to_their_secret_and_nothing_else() {
        let a = SessionCredentials::generate();
        let b = SessionCredentials::generate();
        assert_eq!(a.session_id, SessionId::of_key(&a.secret.rendezvous_key()));
        assert_ne!(a.session_id, SessionId::of_key(&b.secret.rendezvous_key()));
        assert_ne!(
            a.secret.rendezvous_key().0,
            a.secret.0,
            "the key is not the secret"
        );
        assert_eq!(
            format!("{:?}", a.secret.rendezvous_key()),
            "RendezvousKey(<redacted>)"
        );
    }

    #[test]
    fn secret_is_redacted_in_debug() {
        let creds = SessionCredentials::generate();
        let text = format!("{creds:?}");
        assert!(text.contains("redacted"));
        let hex: String = creds.secret.0.iter().map(|b| format!("{b:02x}")).collect();
        assert!(!text.contains(&hex));
    }

    #[test]
    fn session_id_parses_its_display() {
        let id = SessionCredentials::generate().session_id;
        assert_eq!(id.to_string().parse::<SessionId>().unwrap(), id);
    }
}
