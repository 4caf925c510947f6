//! QUIC transport between the players of a session: authenticated joining, framing and
//! per-peer ordered delivery, generic over the message type so it knows nothing of Raft.
//!
//! # Shape
//!
//! One quinn [`Endpoint`] per node is both client and server. Between two
//! nodes there is one QUIC connection, reused for everything; each side sends on one
//! unidirectional stream, so messages to a peer arrive in order. A connection becomes usable
//! only after the join handshake (see `handshake` and `docs/protocol.md`): mutual TLS with
//! self-signed certificates whose keys define the node ids, then a hello carrying an
//! HMAC-SHA256 proof of the session secret bound to the sender's key and to this very
//! connection. Until the peer's hello verifies, nothing is sent to it and nothing from it is
//! delivered.
//!
//! # Example
//!
//! ```no_run
//! use baton::transport::{Identity, Invite, SessionCredentials, Transport, TransportConfig, TransportEvent};
//! # async fn demo() -> Result<(), baton::transport::TransportError> {
//! // The host creates the session and shares an invite code.
//! let credentials = SessionCredentials::generate();
//! let (host, mut host_events) = Transport::<String>::bind(
//!     Identity::generate()?, credentials.clone(), TransportConfig::default()).await?;
//! let code = Invite { credentials, addrs: vec![host.local_addr()], rendezvous: vec![] }.to_string();
//!
//! // A player joins with the code.
//! let invite: Invite = code.parse().expect("a valid code");
//! let (player, _player_events) = Transport::<String>::bind(
//!     Identity::generate()?, invite.credentials, TransportConfig::default()).await?;
//! let host_id = player.connect(invite.addrs[0]).await?;
//! player.send(host_id, "hello".to_string());
//! while let Some(event) = host_events.recv().await {
//!     if let TransportEvent::Message { from, msg } = event {
//!         println!("{from:016x} says {msg}");
//!         break;
//!     }
//! }
//! player.shutdown().await;
//! host.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # Tasks
//!
//! Per known peer: a *dialer* (dials the peer's address with exponential backoff and jitter
//! while there is no live connection) and a *writer* (drains the peer's bounded send queue into
//! the current connection's stream). Per live connection: a *reader* (decodes frames and
//! delivers messages to the event channel, applying backpressure when it is full). One
//! *acceptor* per endpoint (handshakes bounded by `handshakes_in_flight_max`). All run until
//! [`Transport::shutdown`] or, for peer tasks, [`Transport::remove_peer`].
//!
//! # Duplicate connections
//!
//! When both sides dial at once, both connections may authenticate. Each side then keeps the
//! connection dialed by the lower node id and closes the other with
//! [`CloseCode::Duplicate`]; both sides reach the same answer without talking. A new connection
//! from a peer whose *incarnation* (random per process start, sent in the hello) differs from
//! the current one's always wins: the peer restarted and the old connection is stale.
//!
//! # Liveness numbers
//!
//! Raft heartbeats decide whether a peer is alive, not QUIC. Defaults: QUIC idle timeout 30 s
//! (well above any election timeout, so a slow patch never tears down the connection under
//! Raft), keep-alive every 5 s (keeps NAT bindings and lets a restarted peer's stateless reset
//! arrive within seconds). A restarted node with the same identity derives the same
//! stateless-reset and connection-id keys, so its peers' stale connections are reset as soon
//! as they next send.
//! Reconnect backoff 100 ms doubling to 5 s, each wait drawn uniformly from [b/2, b].

pub mod app_net;
pub mod fault;
pub mod frame;

mod credentials;
pub(crate) mod handshake;
mod identity;
mod stream;
mod tls;

#[doc(hidden)]
pub mod testing;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{AsyncUdpSocket, Connection, ConnectionError, Endpoint, SendStream, VarInt};
use rand::Rng;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::{mpsc, watch, Notify, Semaphore};
use tokio::task::{AbortHandle, JoinSet};

pub use app_net::{AppNet, NetAddr, NetConfig, NetDatagram, NetError, NetStats};
pub use credentials::{
    Invite, InviteError, RendezvousKey, SessionCredentials, SessionId, SessionSecret,
    INVITE_ADDRS_MAX, INVITE_PREFIX, INVITE_RENDEZVOUS_MAX, RENDEZVOUS_KEY_BYTES, SESSION_ID_BYTES,
    SESSION_SECRET_BYTES,
};
pub use fault::{FaultController, FaultStats};
pub use frame::{FrameError, ALPN, PROTOCOL_MAJOR, PROTOCOL_MINOR};
pub use handshake::HandshakeError;
pub use identity::{node_id_of_cert, CertParseError, Identity};

use crate::internet::socket::{Routes, SharedSocket};
use crate::internet::{
    Agent, InternetConfig, InternetStatus, NetworkSignal, PathKind, Punch, Request, PUNCH_QUEUE_MAX,
};
use crate::raft::NodeId;
use frame::{decode_payload, encode_frame, encode_payload, ErrorFrame, FrameKind};
use handshake::{Authenticated, LocalHello, Role};
use stream::{read_frame, ReadFrameError};

/// Reason codes sent in QUIC `CONNECTION_CLOSE` (application) frames and in error frames.
/// The numbers are part of the wire protocol and never change meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum CloseCode {
    /// Orderly shutdown of the sender.
    Shutdown = 0,
    /// A malformed frame or payload, or a frame that is not allowed here.
    ProtocolViolation = 1,
    /// A frame longer than the maximum frame size.
    FrameTooLarge = 2,
    /// The peer speaks another major protocol version.
    VersionMismatch = 3,
    /// The join proof did not verify.
    AuthFailed = 4,
    /// The certificate's key is not the node id the dialer expected.
    WrongIdentity = 5,
    /// No valid hello arrived in time.
    HelloTimeout = 6,
    /// Another connection between the same two nodes was kept instead.
    Duplicate = 7,
    /// The peer was removed from the address book.
    PeerRemoved = 8,
    /// The peer belongs to another session.
    SessionMismatch = 9,
    /// A node dialed itself.
    SelfConnection = 10,
    /// The peer told us it refuses us (error frame).
    PeerRefused = 11,
    /// The connection failed underneath (not sent by a peer; local classification).
    ConnectionLost = 12,
    /// Too many handshakes in flight.
    Overloaded = 13,
}

impl CloseCode {
    /// All codes, for lookups.
    const ALL: [CloseCode; 14] = [
        CloseCode::Shutdown,
        CloseCode::ProtocolViolation,
        CloseCode::FrameTooLarge,
        CloseCode::VersionMismatch,
        CloseCode::AuthFailed,
        CloseCode::WrongIdentity,
        CloseCode::HelloTimeout,
        CloseCode::Duplicate,
        CloseCode::PeerRemoved,
        CloseCode::SessionMismatch,
        CloseCode::SelfConnection,
        CloseCode::PeerRefused,
        CloseCode::ConnectionLost,
        CloseCode::Overloaded,
    ];

    /// The code for a wire value, if known.
    pub fn from_u64(value: u64) -> Option<CloseCode> {
        Self::ALL.into_iter().find(|c| *c as u64 == value)
    }

    /// The code a frame error closes the connection with.
    pub fn for_frame_error(error: &FrameError) -> CloseCode {
        match error {
            FrameError::TooLarge { .. } => CloseCode::FrameTooLarge,
            FrameError::MajorMismatch { .. } => CloseCode::VersionMismatch,
            _ => CloseCode::ProtocolViolation,
        }
    }

    fn varint(self) -> VarInt {
        VarInt::from_u32(self as u32)
    }

    /// Whether a handshake that ended with this code refused the credentials themselves,
    /// as opposed to failing for a reason a retry may not meet again.
    pub fn is_join_refusal(self) -> bool {
        matches!(self, CloseCode::AuthFailed | CloseCode::SessionMismatch)
    }
}

/// The refusal a dialer met, if the handshake failed because the credentials do not match:
/// detected by our own check of the peer's hello, or told by the peer's close code.
fn join_refusal(conn: &Connection, error: &HandshakeError) -> Option<TransportError> {
    if error.code.is_join_refusal() {
        return Some(TransportError::Refused {
            code: error.code,
            reason: error.reason.clone(),
        });
    }
    let Some(ConnectionError::ApplicationClosed(close)) = conn.close_reason() else {
        return None;
    };
    let code = CloseCode::from_u64(close.error_code.into_inner())?;
    code.is_join_refusal().then(|| TransportError::Refused {
        code,
        reason: String::from_utf8_lossy(&close.reason).into_owned(),
    })
}

/// Errors of the transport API.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// An operating-system I/O error.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The identity key or certificate could not be made or read.
    #[error("identity: {0}")]
    Identity(String),
    /// TLS configuration failed.
    #[error("TLS: {0}")]
    Tls(rustls::Error),
    /// The configuration is invalid.
    #[error("invalid transport configuration: {0}")]
    Config(String),
    /// A dial could not start.
    #[error("cannot dial: {0}")]
    Connect(#[from] quinn::ConnectError),
    /// The QUIC connection failed or was closed (including TLS/ALPN refusals).
    #[error("connection failed: {0}")]
    Connection(#[from] ConnectionError),
    /// The peer is not who the dialer expected.
    #[error("peer identity mismatch: expected node {expected:016x}, found {actual:016x}")]
    WrongIdentity {
        /// Expected node id.
        expected: NodeId,
        /// Node id derived from the peer's certificate.
        actual: NodeId,
    },
    /// The join handshake failed.
    #[error("join handshake failed: {0}")]
    Handshake(#[from] HandshakeError),
    /// The node we dialed refused our join proof, or we refused its (the two cannot be told
    /// apart from here): another session (`SessionMismatch`), or a proof that does not
    /// verify under our secret (`AuthFailed`). Retrying with the same credentials cannot
    /// succeed.
    #[error("refused by the peer ({code:?}): {reason}")]
    Refused {
        /// `AuthFailed` or `SessionMismatch`.
        code: CloseCode,
        /// What the closing side said.
        reason: String,
    },
    /// The operation did not complete in time.
    #[error("timed out: {0}")]
    Timeout(&'static str),
    /// The transport has been shut down.
    #[error("transport is shut down")]
    Shutdown,
}

/// What QUIC measured of one peer's connection. The packet counters run over the
/// connection's life: compare two readings for a rate, and start over when they go
/// backwards (a reconnect).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkStats {
    /// Smoothed round-trip time.
    pub rtt: Duration,
    /// UDP packets sent on the connection's path.
    pub sent_packets: u64,
    /// Packets QUIC declared lost (never acknowledged in time).
    pub lost_packets: u64,
    /// Whether the connection goes straight to the peer or through a TURN relay.
    pub path: PathKind,
}

/// Transport settings. `Default` gives values suited to a game session on a LAN or the
/// Internet; tests shorten the timeouts.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// Local UDP address. Default `127.0.0.1:0`; use `0.0.0.0:<port>` to be reachable on a LAN.
    pub bind: SocketAddr,
    /// Largest frame accepted or sent (length prefix value), capped at
    /// [`frame::FRAME_BYTES_LIMIT`]. Default 8 MiB.
    pub max_frame_bytes: usize,
    /// QUIC idle timeout. Default 30 s.
    pub idle_timeout: Duration,
    /// QUIC keep-alive interval. Default 5 s.
    pub keep_alive: Duration,
    /// First reconnect wait. Default 100 ms.
    pub reconnect_backoff_min: Duration,
    /// Longest reconnect wait. Default 5 s.
    pub reconnect_backoff_max: Duration,
    /// Frames queued per peer before new ones are dropped. Default 1024.
    pub send_queue_frames_max: usize,
    /// Capacity of the event channel. Default 4096.
    pub events_queue_max: usize,
    /// How long a new connection has to deliver a valid hello. Default 5 s.
    pub hello_timeout: Duration,
    /// Limit on a QUIC/TLS handshake (dial or accept). Default 10 s.
    pub connect_timeout: Duration,
    /// Concurrent inbound handshakes; more are refused. Default 64.
    pub handshakes_in_flight_max: usize,
    /// Test support: inject faults under QUIC.
    pub faults: Option<FaultController>,
    /// Play over the Internet: register with this rendezvous service from the node's one
    /// socket, punch through NATs toward the members it names, relay through TURN when
    /// punching cannot work. Default `None` (LAN and forwarded ports only).
    pub internet: Option<InternetConfig>,
    /// Carry QUIC over the application's own network instead of a UDP socket (`bind` is
    /// then ignored; the node's address is the network's, see [`app_net`]).
    pub app_net: Option<AppNet>,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            max_frame_bytes: 8 * 1024 * 1024,
            idle_timeout: Duration::from_secs(30),
            keep_alive: Duration::from_secs(5),
            reconnect_backoff_min: Duration::from_millis(100),
            reconnect_backoff_max: Duration::from_secs(5),
            send_queue_frames_max: 1024,
            events_queue_max: 4096,
            hello_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(10),
            handshakes_in_flight_max: 64,
            faults: None,
            internet: None,
            app_net: None,
        }
    }
}

impl TransportConfig {
    fn validate(&self) -> Result<(), TransportError> {
        let bad = |what: &str| Err(TransportError::Config(what.to_string()));
        if self.internet.is_some() && self.app_net.is_some() {
            // The application's network already solves reachability; rendezvous and TURN
            // would need a UDP socket it does not have.
            return bad("internet and app_net exclude each other");
        }
        if self.max_frame_bytes < frame::CONTROL_FRAME_BYTES_MAX
            || self.max_frame_bytes > frame::FRAME_BYTES_LIMIT
        {
            return bad("max_frame_bytes must be between 1 KiB and 16 MiB");
        }
        if self.keep_alive >= self.idle_timeout {
            return bad("keep_alive must be shorter than idle_timeout");
        }
        if self.reconnect_backoff_min.is_zero()
            || self.reconnect_backoff_min > self.reconnect_backoff_max
        {
            return bad("need 0 < reconnect_backoff_min <= reconnect_backoff_max");
        }
        if self.send_queue_frames_max == 0
            || self.events_queue_max == 0
            || self.handshakes_in_flight_max == 0
        {
            return bad("queue and handshake limits must be positive");
        }
        Ok(())
    }
}

/// What the transport reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportEvent<M> {
    /// A message from an authenticated peer.
    Message {
        /// Sender.
        from: NodeId,
        /// The message.
        msg: M,
    },
    /// An authenticated connection to `id` is up.
    PeerConnected {
        /// The peer.
        id: NodeId,
        /// Its address as seen from here.
        addr: SocketAddr,
    },
    /// The connection to `id` is gone (the dialer keeps trying if the address is known).
    PeerDisconnected {
        /// The peer.
        id: NodeId,
        /// Why.
        reason: String,
    },
}

/// One authenticated connection to a peer.
struct Link {
    serial: u64,
    conn: Connection,
    send: Mutex<Option<SendStream>>,
    peer_incarnation: u64,
    dialer: NodeId,
    remote: SocketAddr,
    path: PathKind,
}

impl Link {
    fn is_live(&self) -> bool {
        self.conn.close_reason().is_none()
    }
    fn take_send(&self) -> Option<SendStream> {
        self.send
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
    }
}

struct PeerSlot {
    addr: Option<SocketAddr>,
    queue: mpsc::Sender<Vec<u8>>,
    link: watch::Sender<Option<Arc<Link>>>,
    wake: Arc<Notify>,
    tasks: [AbortHandle; 2],
}

struct State {
    peers: HashMap<NodeId, PeerSlot>,
    closed: bool,
}

struct Inner<M> {
    endpoint: Endpoint,
    client_config: quinn::ClientConfig,
    node_id: NodeId,
    spki_sha256: [u8; 32],
    credentials: SessionCredentials,
    incarnation: u64,
    config: TransportConfig,
    local_addr: SocketAddr,
    events: mpsc::Sender<TransportEvent<M>>,
    state: Mutex<State>,
    /// Serializes connect/disconnect bookkeeping *and* the emission of its events, so
    /// `PeerConnected`/`PeerDisconnected` reach the channel in the order they happened.
    membership: tokio::sync::Mutex<()>,
    tasks: Mutex<JoinSet<()>>,
    runtime: tokio::runtime::Handle,
    shutdown: watch::Sender<bool>,
    next_link_serial: AtomicU64,
    handshakes: Arc<Semaphore>,
    internet: Option<InternetLink>,
    /// (peer, address) pairs a punch dial is running for (at most one each).
    punching: Mutex<HashSet<(NodeId, SocketAddr)>>,
    _message: PhantomData<fn() -> M>,
}

/// The transport's view of its Internet agent.
struct InternetLink {
    routes: Routes,
    status: watch::Receiver<InternetStatus>,
    network: NetworkSignal,
}

/// A node's QUIC transport. Cheap to clone; all clones drive the same endpoint.
///
/// Call [`shutdown`](Transport::shutdown) when done: the background tasks hold the endpoint
/// (and its UDP port) until then, or until the tokio runtime itself stops.
pub struct Transport<M> {
    inner: Arc<Inner<M>>,
}

impl<M> Clone for Transport<M> {
    fn clone(&self) -> Self {
        Transport {
            inner: self.inner.clone(),
        }
    }
}

impl<M> fmt::Debug for Transport<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("node_id", &format_args!("{:016x}", self.inner.node_id))
            .field("local_addr", &self.inner.local_addr)
            .finish_non_exhaustive()
    }
}

/// Builds the QUIC transport parameters shared by dials and accepts.
fn quic_transport_config(
    config: &TransportConfig,
) -> Result<quinn::TransportConfig, TransportError> {
    let mut transport = quinn::TransportConfig::default();
    let idle = quinn::IdleTimeout::try_from(config.idle_timeout)
        .map_err(|_| TransportError::Config("idle_timeout is too large".into()))?;
    transport.max_idle_timeout(Some(idle));
    transport.keep_alive_interval(Some(config.keep_alive));
    // Exactly one unidirectional stream each way; a peer may open nothing else.
    transport.max_concurrent_bidi_streams(VarInt::from_u32(0));
    transport.max_concurrent_uni_streams(VarInt::from_u32(1));
    transport.datagram_receive_buffer_size(None);
    if config.app_net.is_some() {
        // The application's network declared its datagram size: QUIC stays at its 1200
        // byte minimum (fragmented below it) and never probes for more.
        transport.initial_mtu(app_net::QUIC_DATAGRAM_BYTES as u16);
        transport.min_mtu(app_net::QUIC_DATAGRAM_BYTES as u16);
        transport.mtu_discovery_config(None);
    }
    Ok(transport)
}

pub(crate) fn make_client_config(
    identity: &Identity,
    alpn: &[u8],
    transport: Arc<quinn::TransportConfig>,
) -> Result<quinn::ClientConfig, TransportError> {
    let tls = tls::client_config(identity, alpn)?;
    let quic = QuicClientConfig::try_from(tls)
        .map_err(|e| TransportError::Config(format!("TLS suite unusable for QUIC: {e}")))?;
    let mut client = quinn::ClientConfig::new(Arc::new(quic));
    client.transport_config(transport);
    Ok(client)
}

fn make_server_config(
    identity: &Identity,
    transport: Arc<quinn::TransportConfig>,
) -> Result<quinn::ServerConfig, TransportError> {
    let tls = tls::server_config(identity, frame::accepted_alpns())?;
    let quic = QuicServerConfig::try_from(tls)
        .map_err(|e| TransportError::Config(format!("TLS suite unusable for QUIC: {e}")))?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(quic));
    server.transport_config(transport);
    Ok(server)
}

/// The QUIC endpoint: on a UDP socket bound to `bind`, or on the application's own
/// network `app_net`, with fault injection under it when `faults` is set. With `routes`
/// (Internet play) the socket is shared with the node's agent (`internet::socket`); the
/// socket the agent sends on is returned with the endpoint.
pub(crate) fn open_endpoint(
    bind: SocketAddr,
    identity: &Identity,
    server: Option<quinn::ServerConfig>,
    faults: Option<&FaultController>,
    routes: Option<&Routes>,
    app_net: Option<&AppNet>,
) -> Result<(Endpoint, Option<Arc<dyn AsyncUdpSocket>>), TransportError> {
    let io = |context: &'static str| move |source| TransportError::Io { context, source };
    let runtime: Arc<dyn quinn::Runtime> = Arc::new(quinn::TokioRuntime);
    let socket = match app_net {
        Some(net) => net.socket(),
        None => {
            let socket = std::net::UdpSocket::bind(bind).map_err(io("binding the UDP socket"))?;
            runtime
                .wrap_udp_socket(socket)
                .map_err(io("wrapping the UDP socket"))?
        }
    };
    let socket = match faults {
        None => socket,
        Some(controller) => Arc::new(
            fault::FaultySocket::new(
                socket,
                controller.clone(),
                tokio::runtime::Handle::current(),
            )
            .map_err(io("wrapping the UDP socket"))?,
        ),
    };
    // Reset key and connection-id key both derive from the identity, so a node restarted with
    // the same identity answers its predecessor's connections with stateless resets.
    let mut endpoint_config = quinn::EndpointConfig::new(Arc::new(identity.stateless_reset_key()));
    let cid_key = identity.connection_id_key();
    endpoint_config.cid_generator(move || {
        Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key))
    });
    let (quic_socket, service_socket): (Arc<dyn AsyncUdpSocket>, _) = match routes {
        Some(routes) => (
            Arc::new(SharedSocket::new(socket.clone(), routes.clone())),
            Some(socket),
        ),
        None => (socket, None),
    };
    let endpoint =
        Endpoint::new_with_abstract_socket(endpoint_config, server, quic_socket, runtime)
            .map_err(io("creating the QUIC endpoint"))?;
    Ok((endpoint, service_socket))
}

fn short_reason(reason: &str) -> &[u8] {
    const CLOSE_REASON_BYTES_MAX: usize = 200;
    let mut end = reason.len().min(CLOSE_REASON_BYTES_MAX);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason.as_bytes()[..end]
}

/// Closes one connection for a reason that is the peer's fault, and says so in the log.
fn refuse(conn: &Connection, peer: &dyn fmt::Display, code: CloseCode, reason: &str) {
    tracing::warn!(%peer, remote = %conn.remote_address(), ?code, reason, "closing connection");
    conn.close(code.varint(), short_reason(reason));
}

struct PeerLabel(Option<NodeId>);

impl fmt::Display for PeerLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(id) => write!(f, "{id:016x}"),
            None => f.write_str("unknown"),
        }
    }
}

/// Describes why a connection ended, from quinn's view.
fn describe_close(conn: &Connection) -> String {
    match conn.close_reason() {
        Some(ConnectionError::ApplicationClosed(close)) => {
            let code = CloseCode::from_u64(close.error_code.into_inner());
            format!(
                "closed by peer ({code:?}): {}",
                String::from_utf8_lossy(&close.reason)
            )
        }
        Some(ConnectionError::LocallyClosed) => "closed locally".to_string(),
        Some(other) => other.to_string(),
        None => "stream ended".to_string(),
    }
}

impl<M> Transport<M>
where
    M: Serialize + DeserializeOwned + Send + 'static,
{
    /// Binds the endpoint and starts accepting peers of this session.
    ///
    /// Returns the transport handle and the receiving end of its event channel. Must be called
    /// inside a tokio runtime.
    pub async fn bind(
        identity: Identity,
        credentials: SessionCredentials,
        config: TransportConfig,
    ) -> Result<(Transport<M>, mpsc::Receiver<TransportEvent<M>>), TransportError> {
        config.validate()?;
        let quic = Arc::new(quic_transport_config(&config)?);
        let server = make_server_config(&identity, quic.clone())?;
        let client_config = make_client_config(&identity, ALPN, quic)?;
        let routes = config.internet.as_ref().map(|_| Routes::new());
        let (endpoint, service_socket) = open_endpoint(
            config.bind,
            &identity,
            Some(server),
            config.faults.as_ref(),
            routes.as_ref().map(|(routes, _)| routes),
            config.app_net.as_ref(),
        )?;
        let local_addr = endpoint.local_addr().map_err(|source| TransportError::Io {
            context: "reading the local address",
            source,
        })?;
        let mut agent = None;
        let internet = match (config.internet.clone(), routes, service_socket) {
            (Some(internet), Some((routes, inbox)), Some(socket)) => {
                let (punch_tx, punch_rx) = mpsc::channel(PUNCH_QUEUE_MAX);
                let network = NetworkSignal::default();
                let (parts, status) = Agent::new(
                    internet,
                    socket,
                    routes.clone(),
                    inbox,
                    credentials.clone(),
                    identity.node_id(),
                    local_addr,
                    punch_tx,
                    network.clone(),
                );
                agent = Some((parts, punch_rx));
                Some(InternetLink {
                    routes,
                    status,
                    network,
                })
            }
            _ => None,
        };
        let (events_tx, events_rx) = mpsc::channel(config.events_queue_max);
        let inner = Arc::new(Inner {
            endpoint,
            client_config,
            node_id: identity.node_id(),
            spki_sha256: identity.spki_sha256(),
            credentials,
            incarnation: rand::rng().random(),
            handshakes: Arc::new(Semaphore::new(config.handshakes_in_flight_max)),
            config,
            local_addr,
            events: events_tx,
            state: Mutex::new(State {
                peers: HashMap::new(),
                closed: false,
            }),
            membership: tokio::sync::Mutex::new(()),
            tasks: Mutex::new(JoinSet::new()),
            runtime: tokio::runtime::Handle::current(),
            shutdown: watch::channel(false).0,
            next_link_serial: AtomicU64::new(1),
            internet,
            punching: Mutex::new(HashSet::new()),
            _message: PhantomData,
        });
        let acceptor = inner.clone();
        inner.spawn(async move { acceptor.run_acceptor().await });
        if let Some((mut agent, punch_rx)) = agent {
            // The public address must be known before the node announces one.
            agent.first_registration().await;
            inner.spawn(agent.run());
            let puncher = inner.clone();
            inner.spawn(async move { puncher.run_puncher(punch_rx).await });
        }
        tracing::info!(
            node = format_args!("{:016x}", inner.node_id),
            addr = %local_addr,
            "transport bound"
        );
        Ok((Transport { inner }, events_rx))
    }

    /// The bound UDP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// This node's id (derived from its identity key).
    pub fn node_id(&self) -> NodeId {
        self.inner.node_id
    }

    /// What the node knows of its place on the Internet, if it plays over the Internet.
    pub fn internet_status(&self) -> Option<InternetStatus> {
        self.inner
            .internet
            .as_ref()
            .map(|internet| internet.status.borrow().clone())
    }

    /// Tells the transport that the device's network changed (the OS or the platform said
    /// so: Wi-Fi to mobile data, a cable plugged in): when it plays over the Internet it
    /// registers with the rendezvous service at once, so its new public address reaches
    /// the others in a round trip instead of at the next `register_interval`; the links
    /// are then mended as for any address change. Returns whether there was anything to
    /// do (false on a LAN or over the application's network, where the game's own network
    /// or the addresses it configured decide).
    pub fn network_changed(&self) -> bool {
        self.network_signal()
            .as_ref()
            .map(NetworkSignal::raise)
            .is_some()
    }

    /// The signal behind [`network_changed`](Self::network_changed), for the node's handle,
    /// which must not hold the transport itself.
    pub(crate) fn network_signal(&self) -> Option<NetworkSignal> {
        Some(self.inner.internet.as_ref()?.network.clone())
    }

    /// Where players on the Internet should dial this node (its relayed address when it
    /// relays, else the one the rendezvous service observed), once known.
    pub fn public_addr(&self) -> Option<SocketAddr> {
        self.internet_status()?.public_addr()
    }

    /// Datagrams sent and received directly and through the relay, if the node plays over
    /// the Internet.
    pub fn path_counters(&self) -> Option<crate::internet::PathCounters> {
        self.inner
            .internet
            .as_ref()
            .map(|internet| internet.routes.counters())
    }

    /// Dials `id` at each of `addrs` at once, as the other side does toward us, so that
    /// both NATs see outgoing packets and let the other's in (hole punching). The first
    /// connection to authenticate is kept; a duplicate is closed by the usual rule. Does
    /// nothing if `id` is connected or a punch round toward it is still running.
    pub fn punch(&self, id: NodeId, addrs: Vec<SocketAddr>) {
        self.inner.punch(id, addrs);
    }

    /// Records where `id` can be reached; the transport connects (and reconnects) on its own.
    /// Only a peer whose certificate key hashes to `id` is accepted at that address.
    pub fn add_peer(&self, id: NodeId, addr: SocketAddr) {
        if id == self.inner.node_id {
            tracing::debug!("ignoring add_peer for ourselves");
            return;
        }
        let mut state = self.inner.lock_state();
        if state.closed {
            return;
        }
        let slot = self.inner.ensure_slot(&mut state, id);
        slot.addr = Some(addr);
        slot.wake.notify_one();
    }

    /// Forgets `id`: closes its connection and stops dialing it. Queued messages are dropped.
    /// (A peer that still holds the secret may dial in again; membership is Raft's business.)
    pub fn remove_peer(&self, id: NodeId) {
        let slot = self.inner.lock_state().peers.remove(&id);
        if let Some(slot) = slot {
            for task in &slot.tasks {
                task.abort();
            }
            if let Some(link) = slot.link.borrow().as_ref() {
                link.conn.close(
                    CloseCode::PeerRemoved.varint(),
                    b"removed from address book",
                );
            }
        }
    }

    /// Dials `addr` (typically a bootstrap address from an invite), authenticates, records the
    /// address under the peer's id, and returns that id.
    pub async fn connect(&self, addr: SocketAddr) -> Result<NodeId, TransportError> {
        self.inner.dial(addr, None).await
    }

    /// Queues `msg` for `to`. Never blocks. Messages to one peer are delivered in order;
    /// when the peer's queue is full, or the peer is unknown, the message is dropped (debug
    /// log) — Raft recovers from loss.
    ///
    /// A peer is known once [`add_peer`](Self::add_peer) named it or it connected
    /// ([`TransportEvent::PeerConnected`]). Messages to a known peer that is not connected wait
    /// in its queue until a connection is up. Note that [`connect`](Self::connect) returns when
    /// *our* side is installed; the accepting side installs its own a moment later, and until
    /// its `PeerConnected` it drops what it sends to the joiner.
    pub fn send(&self, to: NodeId, msg: M) {
        let payload = match encode_payload(&msg) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "message does not serialize; dropped");
                return;
            }
        };
        if payload.len() + frame::HEADER_BYTES > self.inner.config.max_frame_bytes {
            tracing::warn!(
                bytes = payload.len(),
                max = self.inner.config.max_frame_bytes,
                "message exceeds max_frame_bytes; dropped"
            );
            return;
        }
        let bytes = encode_frame(FrameKind::Message as u8, &payload);
        let state = self.inner.lock_state();
        let Some(slot) = state.peers.get(&to) else {
            tracing::debug!(
                peer = format_args!("{to:016x}"),
                "send to unknown peer; dropped"
            );
            return;
        };
        if let Err(e) = slot.queue.try_send(bytes) {
            tracing::debug!(peer = format_args!("{to:016x}"), error = %e, "send queue full; dropped");
        }
    }

    /// QUIC's smoothed round-trip time to `id`, if connected.
    pub fn rtt(&self, id: NodeId) -> Option<Duration> {
        self.link_stats(id).map(|stats| stats.rtt)
    }

    /// What QUIC measured of the live connection to `id`, if connected.
    pub fn link_stats(&self, id: NodeId) -> Option<LinkStats> {
        self.with_live_link(id, |l| {
            let path = l.conn.stats().path;
            LinkStats {
                rtt: l.conn.rtt(),
                sent_packets: path.sent_packets,
                lost_packets: path.lost_packets,
                path: l.path,
            }
        })
    }

    /// `read` of the live connection to `id`, if there is one.
    fn with_live_link<R>(&self, id: NodeId, read: impl FnOnce(&Link) -> R) -> Option<R> {
        let state = self.inner.lock_state();
        let slot = state.peers.get(&id)?;
        let link = slot.link.borrow();
        link.as_deref().filter(|l| l.is_live()).map(read)
    }

    /// Test support: which node dialed the live connection to `id`.
    #[doc(hidden)]
    pub fn connection_dialer(&self, id: NodeId) -> Option<NodeId> {
        self.with_live_link(id, |l| l.dialer)
    }

    /// The remote address of the live connection to `id`, if connected: the address dialed,
    /// or for a connection the peer dialed, the address its packets come from. A node sends
    /// from its listening socket, so the latter is where it listens, as the network between
    /// the two shows it (a NAT on the way may have rewritten it).
    pub fn remote_addr(&self, id: NodeId) -> Option<SocketAddr> {
        self.with_live_link(id, |l| l.remote)
    }

    /// Peers with a live authenticated connection, with their addresses as seen from here.
    pub fn peers(&self) -> Vec<(NodeId, SocketAddr)> {
        let state = self.inner.lock_state();
        let mut out: Vec<_> = state
            .peers
            .iter()
            .filter_map(|(id, slot)| {
                let link = slot.link.borrow();
                link.as_ref()
                    .filter(|l| l.is_live())
                    .map(|l| (*id, l.remote))
            })
            .collect();
        out.sort_unstable();
        out
    }

    /// Peers this transport dials and redials on its own (those [`add_peer`](Self::add_peer)
    /// named and [`remove_peer`](Self::remove_peer) did not forget), with their addresses.
    pub fn dialed_peers(&self) -> Vec<(NodeId, SocketAddr)> {
        let state = self.inner.lock_state();
        let mut out: Vec<_> = state
            .peers
            .iter()
            .filter_map(|(id, slot)| slot.addr.map(|addr| (*id, addr)))
            .collect();
        out.sort_unstable();
        out
    }

    /// Closes every connection and the endpoint, stops all tasks, and waits (at most
    /// [`SHUTDOWN_DRAIN_TIMEOUT`]) for the peers to be told.
    pub async fn shutdown(&self) {
        {
            let mut state = self.inner.lock_state();
            state.closed = true;
            for (_, slot) in state.peers.drain() {
                for task in &slot.tasks {
                    task.abort();
                }
            }
        }
        self.inner.shutdown.send_replace(true);
        self.inner
            .endpoint
            .close(CloseCode::Shutdown.varint(), b"shutdown");
        let mut tasks = std::mem::take(
            &mut *self
                .inner
                .tasks
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        tasks.shutdown().await;
        let _ = tokio::time::timeout(SHUTDOWN_DRAIN_TIMEOUT, self.inner.endpoint.wait_idle()).await;
        tracing::info!(
            node = format_args!("{:016x}", self.inner.node_id),
            "transport shut down"
        );
    }
}

/// Longest wait in [`Transport::shutdown`] for close frames to reach the peers.
pub const SHUTDOWN_DRAIN_TIMEOUT: Duration = Duration::from_millis(250);

enum Decision {
    Install,
    Replace {
        old: Arc<Link>,
        reason: &'static str,
    },
    KeepOld,
}

impl<M> Inner<M>
where
    M: Serialize + DeserializeOwned + Send + 'static,
{
    fn lock_state(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves State consistent before anything can panic.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn spawn<F>(&self, fut: F) -> AbortHandle
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        // Reap finished tasks so the set does not grow with every connection ever made.
        while tasks.try_join_next().is_some() {}
        tasks.spawn_on(fut, &self.runtime)
    }

    fn is_shut_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    fn ensure_slot<'s>(self: &Arc<Self>, state: &'s mut State, id: NodeId) -> &'s mut PeerSlot {
        state.peers.entry(id).or_insert_with(|| {
            let (queue_tx, queue_rx) = mpsc::channel(self.config.send_queue_frames_max);
            let (link_tx, link_rx) = watch::channel(None);
            let wake = Arc::new(Notify::new());
            let writer = {
                let inner = self.clone();
                let link_rx = link_rx.clone();
                self.spawn(async move { inner.run_writer(id, queue_rx, link_rx).await })
            };
            let dialer = {
                let inner = self.clone();
                let wake = wake.clone();
                self.spawn(async move { inner.run_dialer(id, wake, link_rx).await })
            };
            PeerSlot {
                addr: None,
                queue: queue_tx,
                link: link_tx,
                wake,
                tasks: [writer, dialer],
            }
        })
    }

    async fn run_acceptor(self: Arc<Self>) {
        // Ends when the endpoint is closed.
        while let Some(incoming) = self.endpoint.accept().await {
            let Ok(permit) = self.handshakes.clone().try_acquire_owned() else {
                tracing::warn!(remote = %incoming.remote_address(), "too many handshakes in flight; refusing");
                incoming.refuse();
                continue;
            };
            let inner = self.clone();
            self.spawn(async move {
                let _permit = permit;
                inner.accept_one(incoming).await;
            });
        }
    }

    async fn accept_one(self: Arc<Self>, incoming: quinn::Incoming) {
        let remote = incoming.remote_address();
        let conn = match tokio::time::timeout(self.config.connect_timeout, incoming).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => {
                tracing::warn!(%remote, error = %e, "inbound handshake failed");
                return;
            }
            Err(_) => {
                tracing::warn!(%remote, "inbound handshake timed out");
                return;
            }
        };
        if let Err(e) = self
            .authenticate_and_install(conn, Role::Acceptor, None)
            .await
        {
            tracing::debug!(%remote, error = %e, "inbound connection not installed");
        }
    }

    async fn dial(
        self: &Arc<Self>,
        addr: SocketAddr,
        expected: Option<NodeId>,
    ) -> Result<NodeId, TransportError> {
        if self.is_shut_down() {
            return Err(TransportError::Shutdown);
        }
        let server_name = match expected {
            Some(id) => tls::server_name_for(id),
            None => tls::ANY_PEER_SERVER_NAME.to_string(),
        };
        let connecting =
            self.endpoint
                .connect_with(self.client_config.clone(), addr, &server_name)?;
        let conn = tokio::time::timeout(self.config.connect_timeout, connecting)
            .await
            .map_err(|_| TransportError::Timeout("QUIC/TLS handshake"))??;
        self.authenticate_and_install(conn, Role::Dialer, Some((addr, expected)))
            .await
    }

    /// Runs the join handshake on a TLS-established connection and installs it.
    /// `dialed` is `Some((addr, expected id))` for connections we dialed.
    async fn authenticate_and_install(
        self: &Arc<Self>,
        conn: Connection,
        role: Role,
        dialed: Option<(SocketAddr, Option<NodeId>)>,
    ) -> Result<NodeId, TransportError> {
        let Some((peer, peer_spki)) = tls::peer_node_id(&conn) else {
            refuse(
                &conn,
                &PeerLabel(None),
                CloseCode::WrongIdentity,
                "no usable peer certificate",
            );
            return Err(TransportError::Identity(
                "peer presented no usable certificate".into(),
            ));
        };
        let label = PeerLabel(Some(peer));
        let alpn = tls::negotiated_alpn(&conn).unwrap_or_default();
        if alpn != ALPN {
            let reason = format!(
                "peer speaks protocol {}, this node speaks {}",
                String::from_utf8_lossy(&alpn),
                String::from_utf8_lossy(ALPN)
            );
            refuse(&conn, &label, CloseCode::VersionMismatch, &reason);
            return Err(TransportError::Handshake(HandshakeError {
                code: CloseCode::VersionMismatch,
                reason,
            }));
        }
        if let Some((_, Some(expected))) = dialed {
            // The TLS verifier already enforces this; checked again so a future change there
            // cannot silently drop the guarantee.
            if expected != peer {
                refuse(
                    &conn,
                    &label,
                    CloseCode::WrongIdentity,
                    "certificate is not the expected node",
                );
                return Err(TransportError::WrongIdentity {
                    expected,
                    actual: peer,
                });
            }
        }
        if peer == self.node_id {
            refuse(
                &conn,
                &label,
                CloseCode::SelfConnection,
                "connected to ourselves",
            );
            return Err(TransportError::Handshake(HandshakeError {
                code: CloseCode::SelfConnection,
                reason: "connected to ourselves".into(),
            }));
        }
        let local = LocalHello {
            credentials: &self.credentials,
            spki_sha256: self.spki_sha256,
            incarnation: self.incarnation,
            role,
        };
        let auth = match handshake::run(&conn, local, &peer_spki, self.config.hello_timeout).await {
            Ok(auth) => auth,
            Err(e) => {
                if role == Role::Dialer {
                    if let Some(refused) = join_refusal(&conn, &e) {
                        if e.code.is_join_refusal() {
                            refuse(&conn, &label, e.code, &e.reason);
                        }
                        return Err(refused);
                    }
                }
                if e.code == CloseCode::ConnectionLost {
                    // Lost a duplicate-connection race: fine if the peer is connected anyway.
                    if self.has_live_link(peer) {
                        return Ok(peer);
                    }
                    tracing::debug!(peer = %label, reason = %describe_close(&conn), "connection lost during join");
                    conn.close(
                        CloseCode::ConnectionLost.varint(),
                        b"connection lost during join",
                    );
                } else {
                    refuse(&conn, &label, e.code, &e.reason);
                }
                return Err(TransportError::Handshake(e));
            }
        };
        let dialer = match role {
            Role::Dialer => self.node_id,
            Role::Acceptor => peer,
        };
        self.install(conn, peer, auth, dialer, dialed.map(|(addr, _)| addr))
            .await?;
        Ok(peer)
    }

    async fn run_puncher(self: Arc<Self>, mut requests: mpsc::Receiver<Request>) {
        // Ends when the agent stops (its sender dropped) or at shutdown (aborted).
        while let Some(request) = requests.recv().await {
            match request {
                Request::Punch(punch) => self.punch_toward(punch),
                Request::Moved { from, to } => self.close_links_left_behind(from, to),
            }
        }
    }

    /// Our public address changed: a connection a peer dialed to us is dead, since its
    /// QUIC client drops packets from anywhere but its server's address. Closing it now
    /// (instead of after the idle timeout) lets the punch toward that peer, which the same
    /// registration answer brings, make a new one. Connections we dialed stay: the peer's
    /// end follows our new address (QUIC migration) once its NAT lets it in, and the peer
    /// punches toward it on learning that we moved.
    fn close_links_left_behind(&self, from: SocketAddr, to: SocketAddr) {
        let state = self.lock_state();
        for (peer, slot) in &state.peers {
            let link = slot.link.borrow();
            let Some(link) = link
                .as_ref()
                .filter(|l| l.is_live() && l.dialer != self.node_id)
            else {
                continue;
            };
            tracing::info!(peer = format_args!("{peer:016x}"), %from, %to, "our address changed: closing the connection the peer dialed");
            link.conn
                .close(CloseCode::ConnectionLost.varint(), b"address changed");
        }
    }

    /// Punches toward a member the rendezvous service names. A connected member is left
    /// alone unless it moved away from the address our connection uses: then a connection
    /// we dialed is closed (a QUIC client does not follow its server), and one it dialed is
    /// kept while the punch opens our NAT toward its new address, which QUIC migrates to.
    fn punch_toward(self: &Arc<Self>, punch: Punch) {
        let Punch {
            node: peer,
            candidates,
            moved,
        } = punch;
        let addrs: Vec<SocketAddr> = candidates.iter().map(|c| c.addr).collect();
        let link = {
            let state = self.lock_state();
            state
                .peers
                .get(&peer)
                .and_then(|slot| slot.link.borrow().clone())
                .filter(|link| link.is_live())
        };
        if let Some(link) = link {
            let remote = link.conn.remote_address();
            if !moved || addrs.contains(&remote) {
                return;
            }
            tracing::info!(peer = format_args!("{peer:016x}"), old = %remote, ?addrs, "peer moved");
            if link.dialer == self.node_id {
                link.conn
                    .close(CloseCode::ConnectionLost.varint(), b"peer moved");
            }
        }
        self.punch_addrs(peer, addrs);
    }

    fn punch(self: &Arc<Self>, peer: NodeId, addrs: Vec<SocketAddr>) {
        if self.has_live_link(peer) {
            return;
        }
        self.punch_addrs(peer, addrs);
    }

    /// Dials `peer` at every one of `addrs` at once.
    fn punch_addrs(self: &Arc<Self>, peer: NodeId, mut addrs: Vec<SocketAddr>) {
        if peer == self.node_id || self.is_shut_down() {
            return;
        }
        addrs.sort_unstable();
        addrs.dedup();
        addrs.truncate(crate::internet::rendezvous::CANDIDATES_MAX);
        {
            // A dial still running keeps its address: its retransmissions already follow
            // whatever route (direct or relayed) the socket has for it now.
            let mut punching = self.punching.lock().unwrap_or_else(|p| p.into_inner());
            addrs.retain(|addr| punching.insert((peer, *addr)));
        }
        if addrs.is_empty() {
            return;
        }
        tracing::debug!(peer = format_args!("{peer:016x}"), ?addrs, "punching");
        let inner = self.clone();
        self.spawn(async move {
            let mut dials = JoinSet::new();
            for addr in addrs {
                let dialer = inner.clone();
                dials.spawn(async move {
                    let outcome = dialer.dial(addr, Some(peer)).await;
                    dialer
                        .punching
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&(peer, addr));
                    (addr, outcome)
                });
            }
            // Every dial runs to its end: one aborted inside `install` would leave a link
            // without its reader.
            while let Some(done) = dials.join_next().await {
                match done {
                    Ok((addr, Ok(_))) => {
                        tracing::info!(peer = format_args!("{peer:016x}"), %addr, "punched through")
                    }
                    Ok((addr, Err(e))) => {
                        tracing::debug!(peer = format_args!("{peer:016x}"), %addr, error = %e, "punch dial failed")
                    }
                    Err(_) => {}
                }
            }
        });
    }

    fn has_live_link(&self, peer: NodeId) -> bool {
        let state = self.lock_state();
        state
            .peers
            .get(&peer)
            .is_some_and(|slot| slot.link.borrow().as_ref().is_some_and(|l| l.is_live()))
    }

    fn prefers(&self, link: &Link, peer: NodeId) -> bool {
        link.dialer == self.node_id.min(peer)
    }

    async fn install(
        self: &Arc<Self>,
        conn: Connection,
        peer: NodeId,
        auth: Authenticated,
        dialer: NodeId,
        dialed_addr: Option<SocketAddr>,
    ) -> Result<(), TransportError> {
        let _order = self.membership.lock().await;
        let Authenticated {
            send,
            recv,
            peer_incarnation,
        } = auth;
        let remote = conn.remote_address();
        let path = self
            .internet
            .as_ref()
            .map_or(PathKind::Direct, |internet| internet.routes.path_of(remote));
        let link = Arc::new(Link {
            serial: self.next_link_serial.fetch_add(1, Ordering::Relaxed),
            remote,
            path,
            conn,
            send: Mutex::new(Some(send)),
            peer_incarnation,
            dialer,
        });
        let mut events = Vec::with_capacity(2);
        {
            let mut state = self.lock_state();
            if state.closed {
                link.conn.close(CloseCode::Shutdown.varint(), b"shutdown");
                return Err(TransportError::Shutdown);
            }
            let slot = self.ensure_slot(&mut state, peer);
            match dialed_addr {
                Some(addr) => slot.addr = Some(addr),
                // Remember where an inbound peer lives so we can redial it after a loss.
                None => {
                    slot.addr.get_or_insert(link.remote);
                }
            }
            let current = slot.link.borrow().clone();
            let decision = match current {
                None => Decision::Install,
                Some(old) if !old.is_live() => Decision::Replace {
                    old,
                    reason: "connection lost",
                },
                Some(old) if old.peer_incarnation != link.peer_incarnation => Decision::Replace {
                    old,
                    reason: "peer restarted",
                },
                Some(old) if self.prefers(&link, peer) && !self.prefers(&old, peer) => {
                    tracing::debug!(
                        peer = format_args!("{peer:016x}"),
                        "replacing duplicate connection with the preferred one"
                    );
                    old.conn
                        .close(CloseCode::Duplicate.varint(), b"duplicate connection");
                    slot.link.send_replace(Some(link.clone()));
                    drop(state);
                    self.spawn_reader(link, peer, recv);
                    return Ok(());
                }
                Some(_) => Decision::KeepOld,
            };
            match decision {
                Decision::KeepOld => {
                    tracing::debug!(
                        peer = format_args!("{peer:016x}"),
                        "keeping the existing connection; closing the duplicate"
                    );
                    link.conn
                        .close(CloseCode::Duplicate.varint(), b"duplicate connection");
                    return Ok(());
                }
                Decision::Replace { old, reason } => {
                    old.conn.close(CloseCode::Duplicate.varint(), b"replaced");
                    events.push(TransportEvent::PeerDisconnected {
                        id: peer,
                        reason: reason.to_string(),
                    });
                }
                Decision::Install => {}
            }
            slot.link.send_replace(Some(link.clone()));
            events.push(TransportEvent::PeerConnected {
                id: peer,
                addr: link.remote,
            });
        }
        tracing::info!(peer = format_args!("{peer:016x}"), addr = %link.remote, path = ?link.path, "peer connected");
        for event in events {
            // A dropped receiver means nobody listens; the transport keeps working regardless.
            let _ = self.events.send(event).await;
        }
        self.spawn_reader(link, peer, recv);
        Ok(())
    }

    fn spawn_reader(self: &Arc<Self>, link: Arc<Link>, peer: NodeId, recv: quinn::RecvStream) {
        let inner = self.clone();
        self.spawn(async move { inner.run_reader(link, peer, recv).await });
    }

    async fn run_reader(
        self: Arc<Self>,
        link: Arc<Link>,
        peer: NodeId,
        mut recv: quinn::RecvStream,
    ) {
        let label = PeerLabel(Some(peer));
        let max = self.config.max_frame_bytes;
        // One iteration per frame; ends when the stream or connection ends or a frame is bad.
        let reason = loop {
            let frame = match read_frame(&mut recv, max).await {
                Ok(Some(frame)) => frame,
                Ok(None) => {
                    link.conn
                        .close(CloseCode::Shutdown.varint(), b"stream finished");
                    break "peer finished its stream".to_string();
                }
                Err(ReadFrameError::Frame(e)) => {
                    let code = CloseCode::for_frame_error(&e);
                    refuse(&link.conn, &label, code, &e.to_string());
                    break format!("{code:?}: {e}");
                }
                Err(ReadFrameError::Stream(_)) => break describe_close(&link.conn),
            };
            match FrameKind::from_u8(frame.header.kind) {
                Some(FrameKind::Message) => match decode_payload::<M>(&frame.payload) {
                    Ok(msg) => {
                        // With the receiver gone nobody listens; keep the connection (so the
                        // dialers do not churn) and discard.
                        let _ = self
                            .events
                            .send(TransportEvent::Message { from: peer, msg })
                            .await;
                    }
                    Err(e) => {
                        refuse(
                            &link.conn,
                            &label,
                            CloseCode::ProtocolViolation,
                            &e.to_string(),
                        );
                        break format!("malformed message: {e}");
                    }
                },
                Some(FrameKind::Error) => {
                    let text = match decode_payload::<ErrorFrame>(&frame.payload) {
                        Ok(e) => format!("peer closed (code {}): {}", e.code, e.message),
                        Err(_) => "peer closed with an unreadable error frame".to_string(),
                    };
                    tracing::warn!(peer = %label, reason = %text, "peer sent an error frame");
                    link.conn
                        .close(CloseCode::PeerRefused.varint(), b"error frame received");
                    break text;
                }
                Some(FrameKind::Hello) => {
                    refuse(
                        &link.conn,
                        &label,
                        CloseCode::ProtocolViolation,
                        "second hello",
                    );
                    break "protocol violation: second hello".to_string();
                }
                None if frame.header.minor > PROTOCOL_MINOR => {
                    tracing::debug!(peer = %label, kind = frame.header.kind, minor = frame.header.minor, "skipping frame kind from a newer minor version");
                }
                None => {
                    let e = FrameError::UnknownKind {
                        kind: frame.header.kind,
                        minor: frame.header.minor,
                    };
                    refuse(
                        &link.conn,
                        &label,
                        CloseCode::ProtocolViolation,
                        &e.to_string(),
                    );
                    break e.to_string();
                }
            }
        };
        self.on_link_closed(peer, &link, reason).await;
    }

    async fn on_link_closed(&self, peer: NodeId, link: &Link, reason: String) {
        let _order = self.membership.lock().await;
        let was_current = {
            let state = self.lock_state();
            match state.peers.get(&peer) {
                Some(slot) => {
                    let current = slot
                        .link
                        .borrow()
                        .as_ref()
                        .is_some_and(|l| l.serial == link.serial);
                    if current {
                        slot.link.send_replace(None);
                        slot.wake.notify_one();
                    }
                    current
                }
                None => false,
            }
        };
        if was_current {
            tracing::info!(peer = format_args!("{peer:016x}"), %reason, "peer disconnected");
            let _ = self
                .events
                .send(TransportEvent::PeerDisconnected { id: peer, reason })
                .await;
        }
    }

    async fn run_writer(
        self: Arc<Self>,
        peer: NodeId,
        mut queue: mpsc::Receiver<Vec<u8>>,
        mut link_rx: watch::Receiver<Option<Arc<Link>>>,
    ) {
        // A frame whose write failed because its connection died; it goes first on the next
        // connection (it may then arrive twice, which Raft tolerates, rather than never).
        let mut unsent: Option<Vec<u8>> = None;
        // Outer loop: one iteration per connection used; ends when the slot is dropped.
        loop {
            let current = link_rx.borrow_and_update().clone();
            let Some((link, mut stream)) = current.and_then(|l| l.take_send().map(|s| (l, s)))
            else {
                if link_rx.changed().await.is_err() {
                    return;
                }
                continue;
            };
            // Inner loop: one iteration per frame written on this connection.
            loop {
                let frame = match unsent.take() {
                    Some(frame) => frame,
                    None => tokio::select! {
                        // A replaced connection must not swallow frames meant for the new one.
                        biased;
                        changed = link_rx.changed() => {
                            if changed.is_err() {
                                return;
                            }
                            break;
                        }
                        frame = queue.recv() => match frame {
                            Some(frame) => frame,
                            None => return,
                        },
                    },
                };
                if let Err(e) = stream.write_all(&frame).await {
                    tracing::debug!(peer = format_args!("{peer:016x}"), serial = link.serial, error = %e, "write failed; waiting for a new connection");
                    unsent = Some(frame);
                    break;
                }
            }
        }
    }

    async fn run_dialer(
        self: Arc<Self>,
        peer: NodeId,
        wake: Arc<Notify>,
        mut link_rx: watch::Receiver<Option<Arc<Link>>>,
    ) {
        let backoff_min = self.config.reconnect_backoff_min;
        let backoff_max = self.config.reconnect_backoff_max;
        let mut backoff = backoff_min;
        // One iteration per wait or dial attempt; ends when the slot is dropped or aborted.
        loop {
            let current = link_rx.borrow_and_update().clone();
            if let Some(link) = current.filter(|l| l.is_live()) {
                tokio::select! {
                    _ = link.conn.closed() => {}
                    changed = link_rx.changed() => if changed.is_err() { return },
                }
                backoff = backoff_min;
                continue;
            }
            let addr = self.lock_state().peers.get(&peer).and_then(|s| s.addr);
            let Some(addr) = addr else {
                tokio::select! {
                    _ = wake.notified() => {}
                    changed = link_rx.changed() => if changed.is_err() { return },
                }
                continue;
            };
            match self.dial(addr, Some(peer)).await {
                Ok(_) => backoff = backoff_min,
                Err(TransportError::Shutdown) => return,
                Err(e) => {
                    tracing::debug!(peer = format_args!("{peer:016x}"), %addr, error = %e, ?backoff, "dial failed");
                    let wait = {
                        let nanos = backoff.as_nanos() as u64;
                        Duration::from_nanos(rand::rng().random_range(nanos / 2..=nanos))
                    };
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = wake.notified() => {}
                        changed = link_rx.changed() => if changed.is_err() { return },
                    }
                    backoff = (backoff * 2).min(backoff_max);
                }
            }
        }
    }
}
