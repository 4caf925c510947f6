//! The rendezvous protocol and the service's state (`baton-rendezvous` runs it on a socket).
//!
//! Players of a session register under its session id with their candidate addresses; the
//! service adds the address it sees each registration come from (the server-reflexive
//! candidate), tells the registrant about every other member, and tells every other member
//! about a registrant that is new or whose candidates changed — that message is the signal
//! for both sides of the pair to start punching at once.
//!
//! **Soft state only.** A member that stops registering is forgotten after
//! `member_ttl`; a session with no member left is gone. Nothing is written anywhere and
//! instances share nothing, so a studio runs as many as it likes behind one name.
//!
//! **Proof without the secret.** A registration carries the session's [`RendezvousKey`]
//! (a one-way function of the secret) and the service checks that the session id is
//! [`SessionId::of_key`] of it: no state to squat on, and a registration for another
//! session's id is refused without the service ever learning that session's secret.
//!
//! **Bounded.** Every datagram is at most [`DATAGRAM_BYTES_MAX`]; candidates per member,
//! members per session and sessions per instance are capped; each source IP has a token
//! bucket, and the table of buckets is capped too. What the service holds is therefore at
//! most `sessions_max × MEMBERS_PER_SESSION_MAX` members, whatever arrives.
//!
//! Wire form: `[RENDEZVOUS_MAGIC, RENDEZVOUS_VERSION]` then a bincode 2 (standard config)
//! [`ToServer`] or [`ToClient`]. The first byte is outside the ranges RFC 9443 gives STUN
//! (0–3), TURN ChannelData (64–79) and QUIC (64–255), so the shared socket can never take
//! one for the other.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::raft::NodeId;
use crate::transport::{RendezvousKey, SessionId, RENDEZVOUS_KEY_BYTES, SESSION_ID_BYTES};

/// First byte of every rendezvous datagram.
pub const RENDEZVOUS_MAGIC: u8 = 0x0b;
/// Second byte: the rendezvous protocol version.
pub const RENDEZVOUS_VERSION: u8 = 1;
/// Largest rendezvous datagram sent or accepted (fits any path MTU without fragmenting).
pub const DATAGRAM_BYTES_MAX: usize = 1200;
/// Most candidates one member may post.
pub const CANDIDATES_MAX: usize = 4;
/// Most members one session may have registered at once.
pub const MEMBERS_PER_SESSION_MAX: usize = 16;

/// How a candidate address reaches its node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CandidateKind {
    /// An address of the node's own interface.
    Host,
    /// The address the rendezvous service saw the node's datagrams come from (its NAT's
    /// mapping).
    Reflexive,
    /// An address on a TURN server relaying to the node.
    Relayed,
}

/// One address where a node may be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Candidate {
    /// The address.
    pub addr: SocketAddr,
    /// How it reaches the node.
    pub kind: CandidateKind,
}

/// Short-lived TURN credentials (coturn's `use-auth-secret` scheme, the "TURN REST API"):
/// username `expiry-unix-seconds:label`, password base64(HMAC-SHA1(shared secret, username)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TurnGrant {
    /// The TURN server (UDP).
    pub server: SocketAddr,
    /// Username, valid until the Unix time it starts with.
    pub username: String,
    /// Password for that username.
    pub password: String,
}

/// A player's message to the service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToServer {
    /// Register (or refresh) `node` in `session` with these candidates.
    Register {
        /// The session id.
        session: [u8; SESSION_ID_BYTES],
        /// The session's rendezvous key; the id must be derived from it.
        key: [u8; RENDEZVOUS_KEY_BYTES],
        /// The registering node.
        node: NodeId,
        /// Its host and relayed candidates (the service adds the reflexive one).
        candidates: Vec<Candidate>,
    },
}

/// Why the service refused a registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Refusal {
    /// The session id is not derived from the key shown.
    BadKey,
    /// More than [`CANDIDATES_MAX`] candidates.
    TooManyCandidates,
    /// The session already has [`MEMBERS_PER_SESSION_MAX`] members.
    SessionFull,
    /// This instance holds as many sessions as it may.
    Overloaded,
}

/// The service's message to a player.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToClient {
    /// The registration stands until `ttl_ms` from now.
    Registered {
        /// The session id.
        session: [u8; SESSION_ID_BYTES],
        /// The address the registration came from (the node's reflexive candidate).
        observed: SocketAddr,
        /// How long the registration lasts without a refresh.
        ttl_ms: u32,
        /// Credentials for the studio's TURN server, if it has one.
        turn: Option<TurnGrant>,
    },
    /// Another member of the session, where it may be reached: punch toward it now.
    Peer {
        /// The session id.
        session: [u8; SESSION_ID_BYTES],
        /// The member.
        node: NodeId,
        /// Its candidates, reflexive one included.
        candidates: Vec<Candidate>,
    },
    /// The registration was refused.
    Refused {
        /// The session id.
        session: [u8; SESSION_ID_BYTES],
        /// Why.
        reason: Refusal,
    },
}

/// Why a datagram did not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Longer than [`DATAGRAM_BYTES_MAX`].
    #[error("datagram of {0} bytes is over the limit")]
    TooLong(usize),
    /// Not a rendezvous datagram (wrong first byte) or another version.
    #[error("not a rendezvous datagram of version {RENDEZVOUS_VERSION}")]
    NotRendezvous,
    /// The payload did not decode.
    #[error("malformed rendezvous message: {0}")]
    Malformed(String),
}

fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<DATAGRAM_BYTES_MAX>()
}

/// A message in its wire form, or `None` if it would not fit one datagram.
pub fn encode<T: Serialize>(message: &T) -> Option<Vec<u8>> {
    let mut out = vec![RENDEZVOUS_MAGIC, RENDEZVOUS_VERSION];
    let body = bincode::serde::encode_to_vec(message, bincode_config()).ok()?;
    out.extend_from_slice(&body);
    (out.len() <= DATAGRAM_BYTES_MAX).then_some(out)
}

/// A message from its wire form.
pub fn decode<T: serde::de::DeserializeOwned>(datagram: &[u8]) -> Result<T, DecodeError> {
    if datagram.len() > DATAGRAM_BYTES_MAX {
        return Err(DecodeError::TooLong(datagram.len()));
    }
    match datagram {
        [RENDEZVOUS_MAGIC, RENDEZVOUS_VERSION, body @ ..] => {
            bincode::serde::decode_from_slice(body, bincode_config())
                .map(|(message, _)| message)
                .map_err(|e| DecodeError::Malformed(e.to_string()))
        }
        _ => Err(DecodeError::NotRendezvous),
    }
}

/// The TURN side of a rendezvous instance: the secret it shares with coturn
/// (`static-auth-secret`), never sent to anyone.
#[derive(Clone)]
pub struct TurnSecret {
    /// The TURN server players should use.
    pub server: SocketAddr,
    /// coturn's `static-auth-secret`.
    pub secret: String,
    /// How long a granted username stays valid.
    pub ttl: Duration,
}

impl std::fmt::Debug for TurnSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnSecret")
            .field("server", &self.server)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl TurnSecret {
    /// A grant for `label`, valid until `unix_now + ttl`.
    pub fn grant(&self, unix_now: u64, label: &str) -> TurnGrant {
        use base64::Engine;
        let username = format!("{}:{label}", unix_now + self.ttl.as_secs());
        let key = ring::hmac::Key::new(
            ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            self.secret.as_bytes(),
        );
        let tag = ring::hmac::sign(&key, username.as_bytes());
        TurnGrant {
            server: self.server,
            password: base64::engine::general_purpose::STANDARD.encode(tag.as_ref()),
            username,
        }
    }
}

/// Limits and settings of a rendezvous instance.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// How long a registration lasts without a refresh. Default 30 s.
    pub member_ttl: Duration,
    /// Most sessions held at once. Default 10 000.
    pub sessions_max: usize,
    /// Most source IPs tracked for rate limiting. Default 65 536.
    pub sources_max: usize,
    /// Datagrams per second each source IP may send, sustained. Default 20.
    pub source_rate_per_s: f64,
    /// Datagrams a source IP may send in a burst. Default 40.
    pub source_burst: f64,
    /// The TURN server and its shared secret, if the studio runs one.
    pub turn: Option<TurnSecret>,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            member_ttl: Duration::from_secs(30),
            sessions_max: 10_000,
            sources_max: 65_536,
            source_rate_per_s: 20.0,
            source_burst: 40.0,
            turn: None,
        }
    }
}

/// What an instance has done and holds, for its operator (and the tests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RegistryStats {
    /// Sessions held now.
    pub sessions: usize,
    /// Members held now, over all sessions.
    pub members: usize,
    /// Source IPs tracked now.
    pub sources: usize,
    /// Registrations accepted.
    pub accepted: u64,
    /// Registrations refused (bad key, too many candidates, full, overloaded).
    pub refused: u64,
    /// Datagrams that did not decode.
    pub malformed: u64,
    /// Datagrams dropped by the rate limit.
    pub rate_limited: u64,
}

#[derive(Debug)]
struct Member {
    reply: SocketAddr,
    candidates: Vec<Candidate>,
    expires: Instant,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The state of one rendezvous instance, sans I/O: feed it datagrams with
/// [`handle`](Registry::handle), send what it returns, call [`expire`](Registry::expire)
/// now and then.
#[derive(Debug)]
pub struct Registry {
    config: RegistryConfig,
    sessions: HashMap<[u8; SESSION_ID_BYTES], HashMap<NodeId, Member>>,
    sources: HashMap<IpAddr, Bucket>,
    stats: RegistryStats,
}

/// Datagrams to send: (destination, wire bytes).
pub type Outgoing = Vec<(SocketAddr, Vec<u8>)>;

impl Registry {
    /// An empty instance.
    pub fn new(config: RegistryConfig) -> Registry {
        Registry {
            config,
            sessions: HashMap::new(),
            sources: HashMap::new(),
            stats: RegistryStats::default(),
        }
    }

    /// Counters and sizes.
    pub fn stats(&self) -> RegistryStats {
        RegistryStats {
            sessions: self.sessions.len(),
            members: self.sessions.values().map(HashMap::len).sum(),
            sources: self.sources.len(),
            ..self.stats
        }
    }

    /// Bytes the instance holds for its tables, approximately (entries times their sizes,
    /// candidate vectors at their capacity): what the tests bound and the docs report.
    pub fn approx_bytes(&self) -> usize {
        let member = std::mem::size_of::<(NodeId, Member)>();
        let candidates: usize = self
            .sessions
            .values()
            .flat_map(HashMap::values)
            .map(|m| m.candidates.capacity() * std::mem::size_of::<Candidate>())
            .sum();
        let sessions = self.sessions.capacity()
            * std::mem::size_of::<([u8; SESSION_ID_BYTES], HashMap<NodeId, Member>)>();
        let members: usize = self.sessions.values().map(|m| m.capacity() * member).sum();
        let sources = self.sources.capacity() * std::mem::size_of::<(IpAddr, Bucket)>();
        sessions + members + candidates + sources
    }

    /// Whether `from` may send one more datagram now.
    fn admit(&mut self, now: Instant, from: IpAddr) -> bool {
        let (rate, burst) = (self.config.source_rate_per_s, self.config.source_burst);
        if !self.sources.contains_key(&from) && self.sources.len() >= self.config.sources_max {
            // Buckets that have refilled hold nothing worth keeping.
            self.sources
                .retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate < burst);
            if self.sources.len() >= self.config.sources_max {
                return false;
            }
        }
        let bucket = self.sources.entry(from).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        bucket.tokens =
            (bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * rate).min(burst);
        bucket.at = now;
        if bucket.tokens < 1.0 {
            return false;
        }
        bucket.tokens -= 1.0;
        true
    }

    /// Handles one datagram from `from` at `now` (`unix_now` in seconds, for TURN
    /// usernames); returns what to send.
    pub fn handle(
        &mut self,
        now: Instant,
        unix_now: u64,
        from: SocketAddr,
        datagram: &[u8],
    ) -> Outgoing {
        if !self.admit(now, from.ip()) {
            self.stats.rate_limited += 1;
            return Vec::new();
        }
        match decode::<ToServer>(datagram) {
            Ok(ToServer::Register {
                session,
                key,
                node,
                candidates,
            }) => self.register(now, unix_now, from, session, key, node, candidates),
            Err(e) => {
                self.stats.malformed += 1;
                tracing::debug!(%from, error = %e, "undecodable datagram ignored");
                Vec::new()
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn register(
        &mut self,
        now: Instant,
        unix_now: u64,
        from: SocketAddr,
        session: [u8; SESSION_ID_BYTES],
        key: [u8; RENDEZVOUS_KEY_BYTES],
        node: NodeId,
        mut candidates: Vec<Candidate>,
    ) -> Outgoing {
        let refuse = |stats: &mut RegistryStats, reason| {
            stats.refused += 1;
            tracing::debug!(%from, ?reason, "registration refused");
            encode(&ToClient::Refused { session, reason })
                .map(|bytes| vec![(from, bytes)])
                .unwrap_or_default()
        };
        if SessionId::of_key(&RendezvousKey(key)).0 != session {
            return refuse(&mut self.stats, Refusal::BadKey);
        }
        if candidates.len() > CANDIDATES_MAX {
            return refuse(&mut self.stats, Refusal::TooManyCandidates);
        }
        candidates.retain(|c| !c.addr.ip().is_unspecified() && c.addr.port() != 0);
        let observed = Candidate {
            addr: from,
            kind: CandidateKind::Reflexive,
        };
        if !candidates.iter().any(|c| c.addr == from) {
            candidates.push(observed);
        }
        if !self.sessions.contains_key(&session) && self.sessions.len() >= self.config.sessions_max
        {
            return refuse(&mut self.stats, Refusal::Overloaded);
        }
        let members = self.sessions.entry(session).or_default();
        if !members.contains_key(&node) && members.len() >= MEMBERS_PER_SESSION_MAX {
            if members.is_empty() {
                self.sessions.remove(&session);
            }
            return refuse(&mut self.stats, Refusal::SessionFull);
        }
        self.stats.accepted += 1;
        let expires = now + self.config.member_ttl;
        let changed = match members.get_mut(&node) {
            Some(member) if member.reply == from && member.candidates == candidates => {
                member.expires = expires;
                false
            }
            _ => {
                members.insert(
                    node,
                    Member {
                        reply: from,
                        candidates: candidates.clone(),
                        expires,
                    },
                );
                true
            }
        };
        let label = format!("{node:016x}");
        let turn = self
            .config
            .turn
            .as_ref()
            .map(|secret| secret.grant(unix_now, &label));
        let mut out = Outgoing::new();
        let ttl_ms = u32::try_from(self.config.member_ttl.as_millis()).unwrap_or(u32::MAX);
        out.extend(
            encode(&ToClient::Registered {
                session,
                observed: from,
                ttl_ms,
                turn,
            })
            .map(|bytes| (from, bytes)),
        );
        for (other, member) in members.iter().filter(|(id, _)| **id != node) {
            out.extend(peer_message(session, *other, &member.candidates).map(|b| (from, b)));
            if changed {
                out.extend(peer_message(session, node, &candidates).map(|b| (member.reply, b)));
            }
        }
        if changed {
            tracing::debug!(%from, node = %label, "member registered or moved");
        }
        out
    }

    /// Forgets members whose registration ran out, and sessions left empty.
    pub fn expire(&mut self, now: Instant) {
        for members in self.sessions.values_mut() {
            members.retain(|_, m| m.expires > now);
        }
        self.sessions.retain(|_, members| !members.is_empty());
        let rate = self.config.source_rate_per_s;
        let burst = self.config.source_burst;
        self.sources
            .retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate < burst);
    }
}

fn peer_message(
    session: [u8; SESSION_ID_BYTES],
    node: NodeId,
    candidates: &[Candidate],
) -> Option<Vec<u8>> {
    encode(&ToClient::Peer {
        session,
        node,
        candidates: candidates.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::SessionCredentials;

    fn addr(last: u8, port: u16) -> SocketAddr {
        SocketAddr::from(([203, 0, 113, last], port))
    }

    fn register(
        credentials: &SessionCredentials,
        node: NodeId,
        candidates: &[Candidate],
    ) -> Vec<u8> {
        encode(&ToServer::Register {
            session: credentials.session_id.0,
            key: credentials.secret.rendezvous_key().0,
            node,
            candidates: candidates.to_vec(),
        })
        .unwrap()
    }

    fn replies(out: &Outgoing, to: SocketAddr) -> Vec<ToClient> {
        out.iter()
            .filter(|(dest, _)| *dest == to)
            .map(|(_, bytes)| decode(bytes).unwrap())
            .collect()
    }

    #[test]
    fn both_sides_of_a_pair_learn_each_other_with_the_observed_address() {
        let mut registry = Registry::new(RegistryConfig::default());
        let session = SessionCredentials::generate();
        let now = Instant::now();
        let (a, b) = (addr(1, 4000), addr(2, 5000));
        let out = registry.handle(now, 0, a, &register(&session, 1, &[]));
        assert!(
            matches!(replies(&out, a)[..], [ToClient::Registered { observed, .. }] if observed == a)
        );
        let out = registry.handle(now, 0, b, &register(&session, 2, &[]));
        let to_a = replies(&out, a);
        let to_b = replies(&out, b);
        let reflexive = |at| Candidate {
            addr: at,
            kind: CandidateKind::Reflexive,
        };
        assert_eq!(
            to_a,
            [ToClient::Peer {
                session: session.session_id.0,
                node: 2,
                candidates: vec![reflexive(b)]
            }]
        );
        assert!(to_b.contains(&ToClient::Peer {
            session: session.session_id.0,
            node: 1,
            candidates: vec![reflexive(a)]
        }));
        // A refresh that changes nothing tells nobody else anything.
        let out = registry.handle(now, 0, b, &register(&session, 2, &[]));
        assert!(replies(&out, a).is_empty());
        assert_eq!(registry.stats().members, 2);
    }

    #[test]
    fn a_registration_without_the_sessions_key_is_refused_and_reveals_nobody() {
        let mut registry = Registry::new(RegistryConfig::default());
        let victim = SessionCredentials::generate();
        let now = Instant::now();
        registry.handle(now, 0, addr(1, 1), &register(&victim, 1, &[]));
        let attacker = SessionCredentials::generate();
        let forged = encode(&ToServer::Register {
            session: victim.session_id.0,
            key: attacker.secret.rendezvous_key().0,
            node: 1,
            candidates: vec![],
        })
        .unwrap();
        let out = registry.handle(now, 0, addr(9, 9), &forged);
        assert_eq!(
            replies(&out, addr(9, 9)),
            [ToClient::Refused {
                session: victim.session_id.0,
                reason: Refusal::BadKey
            }]
        );
        assert_eq!(out.len(), 1, "nothing reaches the victim's members");
        assert_eq!(registry.stats().refused, 1);
    }

    #[test]
    fn oversized_lists_garbage_and_floods_are_refused_and_memory_stays_bounded() {
        let config = RegistryConfig {
            sessions_max: 100,
            sources_max: 50,
            ..RegistryConfig::default()
        };
        let mut registry = Registry::new(config);
        let now = Instant::now();
        let session = SessionCredentials::generate();
        let many: Vec<Candidate> = (0..CANDIDATES_MAX as u16 + 1)
            .map(|port| Candidate {
                addr: addr(1, port + 1),
                kind: CandidateKind::Host,
            })
            .collect();
        let out = registry.handle(now, 0, addr(1, 1), &register(&session, 1, &many));
        assert!(matches!(
            replies(&out, addr(1, 1))[..],
            [ToClient::Refused {
                reason: Refusal::TooManyCandidates,
                ..
            }]
        ));
        for garbage in [
            &b""[..],
            &[0u8; 1][..],
            &[RENDEZVOUS_MAGIC, 1, 0xff, 0xff][..],
            &[7u8; 2000][..],
        ] {
            assert!(registry.handle(now, 0, addr(2, 2), garbage).is_empty());
        }
        // One source flooding: the bucket stops it after its burst.
        let mut answered = 0;
        for n in 0..1000u64 {
            let flood = SessionCredentials::generate();
            if !registry
                .handle(now, 0, addr(3, 3), &register(&flood, n, &[]))
                .is_empty()
            {
                answered += 1;
            }
        }
        assert!(answered <= 40, "answered {answered}");
        // The flood costs nobody else their service.
        let out = registry.handle(now, 0, addr(4, 4), &register(&session, 1, &[]));
        assert!(matches!(
            replies(&out, addr(4, 4))[..],
            [ToClient::Registered { .. }]
        ));
        // Many sources, many sessions: never more than the caps.
        for n in 0..20_000u32 {
            let from = SocketAddr::from(([10, (n >> 16) as u8, (n >> 8) as u8, n as u8], 1));
            let s = SessionCredentials::generate();
            registry.handle(now, 0, from, &register(&s, u64::from(n), &[]));
        }
        let stats = registry.stats();
        assert!(stats.sessions <= 100, "{stats:?}");
        assert!(stats.sources <= 50, "{stats:?}");
        assert!(stats.rate_limited > 0 && stats.malformed >= 3, "{stats:?}");
        eprintln!(
            "after the floods: {stats:?}, {} table bytes",
            registry.approx_bytes()
        );
        assert!(
            registry.approx_bytes() < 200 * 1024,
            "{} bytes",
            registry.approx_bytes()
        );
    }

    #[test]
    fn registrations_expire_and_take_their_session_along() {
        let mut registry = Registry::new(RegistryConfig::default());
        let now = Instant::now();
        let session = SessionCredentials::generate();
        registry.handle(now, 0, addr(1, 1), &register(&session, 1, &[]));
        registry.expire(now + Duration::from_secs(29));
        assert_eq!(registry.stats().members, 1);
        registry.expire(now + Duration::from_secs(31));
        assert_eq!(registry.stats().sessions, 0);
    }

    #[test]
    fn turn_grants_follow_the_rest_api_scheme() {
        let secret = TurnSecret {
            server: addr(5, 3478),
            secret: "S".into(),
            ttl: Duration::from_secs(600),
        };
        let grant = secret.grant(1_000, "node");
        assert_eq!(grant.username, "1600:node");
        // base64(HMAC-SHA1("S", "1600:node")), computed independently with Python's hmac.
        assert_eq!(grant.password, "DMY/uCTP8cLy2jYZfr1aHReMkOc=");
        assert!(!format!("{secret:?}").contains("\"S\""));
    }
}
