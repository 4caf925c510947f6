//! Test support (not a stable API): raw access to connections and frames, so tests can play a
//! misbehaving or malicious peer against a real [`Transport`](super::Transport).

use std::net::SocketAddr;
use std::sync::Arc;

use quinn::{Connection, Endpoint, RecvStream, SendStream};

use super::frame::{
    encode_frame, encode_frame_with_version, encode_payload, FrameKind, Hello, RawFrame,
};
pub use super::handshake::Role;
use super::handshake::{self, LocalHello};
use super::stream::{read_frame, ReadFrameError};
use super::{make_client_config, open_endpoint, tls, Identity, SessionCredentials, TransportError};
use crate::raft::NodeId;

/// A client-only endpoint on 127.0.0.1 presenting `identity` and offering `alpn`.
pub fn raw_client(identity: &Identity, alpn: &[u8]) -> Result<Endpoint, TransportError> {
    let transport = Arc::new(quinn::TransportConfig::default());
    let (mut endpoint, _) = open_endpoint(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        identity,
        None,
        None,
        None,
        None,
    )?;
    endpoint.set_default_client_config(make_client_config(identity, alpn, transport)?);
    Ok(endpoint)
}

/// Dials `addr` with TLS only (no join handshake), optionally insisting on `expected`.
pub async fn dial_tls(
    endpoint: &Endpoint,
    addr: SocketAddr,
    expected: Option<NodeId>,
) -> Result<Connection, TransportError> {
    let name = match expected {
        Some(id) => tls::server_name_for(id),
        None => tls::ANY_PEER_SERVER_NAME.to_string(),
    };
    Ok(endpoint.connect(addr, &name)?.await?)
}

/// This connection's join binding (TLS exporter value).
pub fn binding(conn: &Connection, credentials: &SessionCredentials) -> [u8; 32] {
    handshake::connection_binding(conn, credentials).unwrap_or([0; 32])
}

/// The join proof `identity` would send on a connection with `binding`.
pub fn proof_for(
    identity: &Identity,
    credentials: &SessionCredentials,
    role: Role,
    incarnation: u64,
    binding: &[u8; 32],
) -> [u8; 32] {
    handshake::compute_proof(
        credentials,
        role,
        incarnation,
        &identity.spki_sha256(),
        binding,
    )
}

/// A hello frame with the given fields.
pub fn hello_frame(session_id: [u8; 16], incarnation: u64, role: Role, proof: [u8; 32]) -> Vec<u8> {
    let hello = Hello {
        session_id,
        incarnation,
        role: role as u8,
        proof,
    };
    encode_frame(
        FrameKind::Hello as u8,
        &encode_payload(&hello).unwrap_or_default(),
    )
}

/// A message frame carrying `msg`.
pub fn message_frame<M: serde::Serialize>(msg: &M) -> Vec<u8> {
    encode_frame(
        FrameKind::Message as u8,
        &encode_payload(msg).unwrap_or_default(),
    )
}

/// A frame with an arbitrary version and kind.
pub fn raw_frame(major: u16, minor: u16, kind: u8, payload: &[u8]) -> Vec<u8> {
    encode_frame_with_version(major, minor, kind, payload)
}

/// Performs the honest join handshake as the dialer and returns the streams.
pub async fn join(
    conn: &Connection,
    identity: &Identity,
    credentials: &SessionCredentials,
    incarnation: u64,
) -> Result<(SendStream, RecvStream), TransportError> {
    let peer_spki = tls::peer_node_id(conn)
        .map(|(_, spki)| spki)
        .ok_or_else(|| TransportError::Identity("no peer certificate".into()))?;
    let auth = handshake::run(
        conn,
        LocalHello {
            credentials,
            spki_sha256: identity.spki_sha256(),
            incarnation,
            role: Role::Dialer,
        },
        &peer_spki,
        std::time::Duration::from_secs(10),
    )
    .await?;
    Ok((auth.send, auth.recv))
}

/// Reads one frame (for checking what a node sends).
pub async fn read_one(
    recv: &mut RecvStream,
    max_frame_bytes: usize,
) -> Result<Option<RawFrame>, ReadFrameError> {
    read_frame(recv, max_frame_bytes).await
}

/// The application close code a connection ended with, if it was closed by the peer that way.
pub async fn closed_code(conn: &Connection) -> Option<u64> {
    match conn.closed().await {
        quinn::ConnectionError::ApplicationClosed(close) => Some(close.error_code.into_inner()),
        _ => None,
    }
}

/// A configuration for loopback tests: ephemeral port, quick reconnects, short hello timeout.
pub fn test_config() -> super::TransportConfig {
    super::TransportConfig {
        bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        reconnect_backoff_min: std::time::Duration::from_millis(20),
        reconnect_backoff_max: std::time::Duration::from_millis(500),
        hello_timeout: std::time::Duration::from_secs(2),
        ..super::TransportConfig::default()
    }
}

/// Waits up to `limit` for an event matching `pred`, discarding the others; `None` on timeout
/// or when the channel closes.
pub async fn wait_for<M>(
    rx: &mut tokio::sync::mpsc::Receiver<super::TransportEvent<M>>,
    limit: std::time::Duration,
    mut pred: impl FnMut(&super::TransportEvent<M>) -> bool,
) -> Option<super::TransportEvent<M>> {
    let search = async {
        while let Some(event) = rx.recv().await {
            if pred(&event) {
                return Some(event);
            }
        }
        None
    };
    tokio::time::timeout(limit, search).await.ok().flatten()
}

/// Collects every event that arrives within `window` (for asserting that nothing came).
pub async fn drain_for<M>(
    rx: &mut tokio::sync::mpsc::Receiver<super::TransportEvent<M>>,
    window: std::time::Duration,
) -> Vec<super::TransportEvent<M>> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + window;
    while let Ok(Some(event)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        out.push(event);
    }
    out
}
