//! The join handshake that runs on every new connection, after TLS and before any message.
//!
//! Each side opens its one unidirectional stream and writes a hello frame first; it then waits
//! (bounded by `hello_timeout`) for the peer's stream and its hello, and checks the session id
//! and the proof. The proof is `HMAC-SHA256(session secret, transcript)` where the transcript is
//!
//! ```text
//! "baton-join-v1" | major (u16 BE) | session id (16) | role (u8) | incarnation (u64 BE)
//!   | SHA-256(sender's SubjectPublicKeyInfo) (32) | TLS exporter (32)
//! ```
//!
//! and the exporter is the TLS keying-material exporter of *this* connection
//! (label [`EXPORTER_LABEL`], context = session id). A proof therefore only verifies for the
//! key that made it, on the connection it was made for, in the role it claims: a captured proof
//! is useless on any other connection or with any other certificate. Our own hello goes out
//! before we have checked the peer's, but it contains nothing but that non-transferable proof;
//! no message is sent to or accepted from the peer until its hello has verified.

use std::time::Duration;

use quinn::{Connection, RecvStream, SendStream};
use ring::hmac;

use super::frame::{
    decode_payload, encode_frame, encode_payload, ErrorFrame, FrameError, FrameKind, Hello,
    CONTROL_FRAME_BYTES_MAX, ERROR_MESSAGE_BYTES_MAX, PROTOCOL_MAJOR,
};
use super::stream::{read_frame, ReadFrameError};
use super::{CloseCode, SessionCredentials};

/// TLS exporter label for the join transcript.
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-baton-join-v1";
const TRANSCRIPT_DOMAIN: &[u8] = b"baton-join-v1";
/// How long to let an error frame reach the peer before closing the connection under it.
pub const ERROR_FRAME_LINGER: Duration = Duration::from_millis(250);

/// Which end of the connection a hello comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Role {
    /// The side that dialed.
    Dialer = 0,
    /// The side that accepted.
    Acceptor = 1,
}

impl Role {
    fn opposite(self) -> Role {
        match self {
            Role::Dialer => Role::Acceptor,
            Role::Acceptor => Role::Dialer,
        }
    }
}

/// Why a handshake failed, with the close code it maps to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code:?}: {reason}")]
pub struct HandshakeError {
    /// The reason code sent to the peer.
    pub code: CloseCode,
    /// What went wrong.
    pub reason: String,
}

impl HandshakeError {
    fn new(code: CloseCode, reason: impl Into<String>) -> Self {
        HandshakeError {
            code,
            reason: reason.into(),
        }
    }
}

/// Our side's inputs to the handshake.
pub struct LocalHello<'a> {
    /// Session credentials.
    pub credentials: &'a SessionCredentials,
    /// SHA-256 of our SubjectPublicKeyInfo.
    pub spki_sha256: [u8; 32],
    /// Our incarnation.
    pub incarnation: u64,
    /// Our role on this connection.
    pub role: Role,
}

/// A connection whose peer has proved membership.
pub struct Authenticated {
    /// Our stream to the peer (the hello is already written).
    pub send: SendStream,
    /// The peer's stream to us (its hello already consumed).
    pub recv: RecvStream,
    /// The peer's incarnation.
    pub peer_incarnation: u64,
}

/// The connection's keying-material exporter value for the join transcript.
pub fn connection_binding(
    conn: &Connection,
    credentials: &SessionCredentials,
) -> Result<[u8; 32], HandshakeError> {
    let mut out = [0u8; 32];
    conn.export_keying_material(&mut out, EXPORTER_LABEL, &credentials.session_id.0)
        .map_err(|_| {
            HandshakeError::new(CloseCode::ProtocolViolation, "TLS exporter unavailable")
        })?;
    Ok(out)
}

fn transcript(
    credentials: &SessionCredentials,
    role: Role,
    incarnation: u64,
    spki_sha256: &[u8; 32],
    binding: &[u8; 32],
) -> Vec<u8> {
    let mut t = Vec::with_capacity(TRANSCRIPT_DOMAIN.len() + 2 + 16 + 1 + 8 + 32 + 32);
    t.extend_from_slice(TRANSCRIPT_DOMAIN);
    t.extend_from_slice(&PROTOCOL_MAJOR.to_be_bytes());
    t.extend_from_slice(&credentials.session_id.0);
    t.push(role as u8);
    t.extend_from_slice(&incarnation.to_be_bytes());
    t.extend_from_slice(spki_sha256);
    t.extend_from_slice(binding);
    t
}

/// The join proof for the given transcript inputs.
pub fn compute_proof(
    credentials: &SessionCredentials,
    role: Role,
    incarnation: u64,
    spki_sha256: &[u8; 32],
    binding: &[u8; 32],
) -> [u8; 32] {
    let key = hmac::Key::new(hmac::HMAC_SHA256, &credentials.secret.0);
    let tag = hmac::sign(
        &key,
        &transcript(credentials, role, incarnation, spki_sha256, binding),
    );
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

fn verify_proof(
    credentials: &SessionCredentials,
    hello: &Hello,
    role: Role,
    spki_sha256: &[u8; 32],
    binding: &[u8; 32],
) -> bool {
    let key = hmac::Key::new(hmac::HMAC_SHA256, &credentials.secret.0);
    let data = transcript(credentials, role, hello.incarnation, spki_sha256, binding);
    // Constant-time comparison inside ring.
    hmac::verify(&key, &data, &hello.proof).is_ok()
}

/// Encodes our hello frame for this connection.
pub fn hello_frame(local: &LocalHello<'_>, binding: &[u8; 32]) -> Result<Vec<u8>, HandshakeError> {
    let hello = Hello {
        session_id: local.credentials.session_id.0,
        incarnation: local.incarnation,
        role: local.role as u8,
        proof: compute_proof(
            local.credentials,
            local.role,
            local.incarnation,
            &local.spki_sha256,
            binding,
        ),
    };
    let payload = encode_payload(&hello)
        .map_err(|e| HandshakeError::new(CloseCode::ProtocolViolation, e.to_string()))?;
    Ok(encode_frame(FrameKind::Hello as u8, &payload))
}

/// Encodes an error frame.
pub fn error_frame(code: CloseCode, message: &str) -> Vec<u8> {
    let mut end = message.len().min(ERROR_MESSAGE_BYTES_MAX);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    let frame = ErrorFrame {
        code: code as u32,
        message: message[..end].to_string(),
    };
    // An ErrorFrame of bounded size always encodes; fall back to an empty payload otherwise.
    let payload = encode_payload(&frame).unwrap_or_default();
    encode_frame(FrameKind::Error as u8, &payload)
}

/// Runs the handshake on `conn`. On failure the caller closes the connection with the code.
pub async fn run(
    conn: &Connection,
    local: LocalHello<'_>,
    peer_spki_sha256: &[u8; 32],
    hello_timeout: Duration,
) -> Result<Authenticated, HandshakeError> {
    let binding = connection_binding(conn, local.credentials)?;
    let mut send = conn
        .open_uni()
        .await
        .map_err(|e| HandshakeError::new(CloseCode::ConnectionLost, e.to_string()))?;
    send.write_all(&hello_frame(&local, &binding)?)
        .await
        .map_err(|e| HandshakeError::new(CloseCode::ConnectionLost, e.to_string()))?;

    let receive = async {
        let mut recv = conn
            .accept_uni()
            .await
            .map_err(|e| HandshakeError::new(CloseCode::ConnectionLost, e.to_string()))?;
        let frame = read_frame(&mut recv, CONTROL_FRAME_BYTES_MAX).await;
        Ok::<_, HandshakeError>((recv, frame))
    };
    let (recv, frame) = match tokio::time::timeout(hello_timeout, receive).await {
        Ok(result) => result?,
        Err(_) => {
            return Err(HandshakeError::new(
                CloseCode::HelloTimeout,
                format!("no hello within {hello_timeout:?}"),
            ))
        }
    };
    let frame = match frame {
        Ok(Some(frame)) => frame,
        Ok(None) => {
            return Err(HandshakeError::new(
                CloseCode::ProtocolViolation,
                "stream ended before the hello",
            ))
        }
        Err(ReadFrameError::Frame(e)) => {
            let code = CloseCode::for_frame_error(&e);
            if code == CloseCode::VersionMismatch {
                send_error_frame(&mut send, code, &e.to_string()).await;
            }
            return Err(HandshakeError::new(code, format!("bad hello frame: {e}")));
        }
        Err(ReadFrameError::Stream(e)) => {
            return Err(HandshakeError::new(CloseCode::ConnectionLost, e))
        }
    };
    match FrameKind::from_u8(frame.header.kind) {
        Some(FrameKind::Hello) => {}
        Some(FrameKind::Error) => {
            let reason = decode_payload::<ErrorFrame>(&frame.payload)
                .map(|e| format!("peer refused us (code {}): {}", e.code, e.message))
                .unwrap_or_else(|_| "peer refused us".to_string());
            return Err(HandshakeError::new(CloseCode::PeerRefused, reason));
        }
        _ => {
            return Err(HandshakeError::new(
                CloseCode::ProtocolViolation,
                format!("expected a hello, got frame kind {}", frame.header.kind),
            ))
        }
    }
    let hello: Hello = decode_payload(&frame.payload).map_err(|e: FrameError| {
        HandshakeError::new(CloseCode::ProtocolViolation, format!("bad hello: {e}"))
    })?;
    if hello.session_id != local.credentials.session_id.0 {
        return Err(HandshakeError::new(
            CloseCode::SessionMismatch,
            "peer belongs to another session",
        ));
    }
    let expected_role = local.role.opposite();
    if hello.role != expected_role as u8 {
        return Err(HandshakeError::new(
            CloseCode::AuthFailed,
            "hello claims the wrong role",
        ));
    }
    if !verify_proof(
        local.credentials,
        &hello,
        expected_role,
        peer_spki_sha256,
        &binding,
    ) {
        return Err(HandshakeError::new(
            CloseCode::AuthFailed,
            "join proof does not verify (wrong secret, replayed proof or wrong key)",
        ));
    }
    Ok(Authenticated {
        send,
        recv,
        peer_incarnation: hello.incarnation,
    })
}

/// Writes an error frame and gives it a short while to reach the peer.
pub async fn send_error_frame(send: &mut SendStream, code: CloseCode, message: &str) {
    let frame = error_frame(code, message);
    let delivered = async {
        send.write_all(&frame).await.ok()?;
        send.finish().ok()?;
        send.stopped().await.ok()
    };
    let _ = tokio::time::timeout(ERROR_FRAME_LINGER, delivered).await;
}
