//! Hostile peers against a real transport on loopback. Each test attacks node A while A is
//! connected to a good peer B, checks that exactly the attacking connection is refused with the
//! right reason code and that nothing from it reaches A's event channel, and then checks that A
//! and B still talk.

use std::time::Duration;

use baton::raft::NodeId;
use baton::transport::frame::{
    decode_payload, ErrorFrame, FrameKind, PROTOCOL_MAJOR, PROTOCOL_MINOR,
};
use baton::transport::testing::{
    binding, closed_code, dial_tls, drain_for, hello_frame, join, message_frame, proof_for,
    raw_client, raw_frame, read_one, test_config, wait_for, Role,
};
use baton::transport::{
    CloseCode, Identity, SessionCredentials, SessionId, SessionSecret, Transport, TransportError,
    TransportEvent, ALPN,
};
use rand::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::Receiver;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum Msg {
    Check(u32),
    Attack(String),
}

const LONG: Duration = Duration::from_secs(30);
/// How long to watch for things that must not happen.
const QUIET_WINDOW: Duration = Duration::from_millis(500);

struct Scene {
    creds: SessionCredentials,
    a: Transport<Msg>,
    a_rx: Receiver<TransportEvent<Msg>>,
    b: Transport<Msg>,
    b_rx: Receiver<TransportEvent<Msg>>,
    check_round: u32,
}

fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

async fn scene() -> Scene {
    init_logs();
    let creds = SessionCredentials::generate();
    let (a, a_rx) = Transport::bind(Identity::generate().unwrap(), creds.clone(), test_config())
        .await
        .unwrap();
    let (b, b_rx) = Transport::bind(Identity::generate().unwrap(), creds.clone(), test_config())
        .await
        .unwrap();
    let mut a_rx = a_rx;
    assert_eq!(b.connect(a.local_addr()).await.unwrap(), a.node_id());
    // `connect` returns once B's side is up; A installs its side independently.
    let b_id = b.node_id();
    let a_sees_b = wait_for(
        &mut a_rx,
        LONG,
        |e| matches!(e, TransportEvent::PeerConnected { id, .. } if *id == b_id),
    )
    .await;
    assert!(a_sees_b.is_some());
    let mut scene = Scene {
        creds,
        a,
        a_rx,
        b,
        b_rx,
        check_round: 0,
    };
    scene.assert_a_and_b_talk().await;
    scene
}

impl Scene {
    /// A message each way between the good nodes arrives.
    async fn assert_a_and_b_talk(&mut self) {
        self.check_round += 1;
        let round = self.check_round;
        self.a.send(self.b.node_id(), Msg::Check(round));
        self.b.send(self.a.node_id(), Msg::Check(round));
        let a_id = self.a.node_id();
        let b_id = self.b.node_id();
        let at_b = wait_for(&mut self.b_rx, LONG, |e| {
            matches!(e, TransportEvent::Message { from, msg: Msg::Check(r) } if *from == a_id && *r == round)
        })
        .await;
        assert!(at_b.is_some(), "B must still hear A (round {round})");
        let at_a = wait_for(&mut self.a_rx, LONG, |e| {
            matches!(e, TransportEvent::Message { from, msg: Msg::Check(r) } if *from == b_id && *r == round)
        })
        .await;
        assert!(at_a.is_some(), "A must still hear B (round {round})");
    }

    /// Everything A's channel yields for a while; asserts none of it comes from `attacker`.
    async fn assert_nothing_delivered_from(&mut self, attacker: NodeId) {
        for event in drain_for(&mut self.a_rx, QUIET_WINDOW).await {
            match event {
                TransportEvent::Message { from, .. }
                | TransportEvent::PeerConnected { id: from, .. } => {
                    assert_ne!(
                        from, attacker,
                        "the attacker reached A's event channel: {from:016x}"
                    );
                }
                TransportEvent::PeerDisconnected { .. } => {}
            }
        }
    }

    async fn shutdown(self) {
        self.a.shutdown().await;
        self.b.shutdown().await;
    }
}

/// A TLS-only connection from a fresh identity to A.
async fn raw_connection(
    a_addr: std::net::SocketAddr,
) -> (Identity, quinn::Endpoint, quinn::Connection) {
    let identity = Identity::generate().unwrap();
    let endpoint = raw_client(&identity, ALPN).unwrap();
    let conn = dial_tls(&endpoint, a_addr, None).await.unwrap();
    (identity, endpoint, conn)
}

fn code(c: CloseCode) -> Option<u64> {
    Some(c as u64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joiner_without_the_secret_is_refused_and_none_of_its_messages_are_delivered() {
    let mut s = scene().await;
    let wrong = SessionCredentials {
        session_id: s.creds.session_id,
        secret: SessionCredentials::generate().secret,
    };

    // A full transport that knows the session id but not the secret.
    let (c, _c_rx) =
        Transport::<Msg>::bind(Identity::generate().unwrap(), wrong.clone(), test_config())
            .await
            .unwrap();
    let err = c.connect(s.a.local_addr()).await.unwrap_err();
    // A credentials mismatch is a refusal the dialer can tell apart: retrying cannot help.
    assert!(
        matches!(
            err,
            TransportError::Refused {
                code: CloseCode::AuthFailed,
                ..
            }
        ),
        "got {err:?}"
    );
    c.add_peer(s.a.node_id(), s.a.local_addr());
    for i in 0..20 {
        c.send(s.a.node_id(), Msg::Attack(format!("unauthenticated {i}")));
    }

    // A raw peer that pipelines messages right behind a forged hello.
    let (x, _ep, conn) = raw_connection(s.a.local_addr()).await;
    let mut send = conn.open_uni().await.unwrap();
    let forged = proof_for(&x, &wrong, Role::Dialer, 7, &binding(&conn, &wrong));
    send.write_all(&hello_frame(s.creds.session_id.0, 7, Role::Dialer, forged))
        .await
        .unwrap();
    for i in 0..20 {
        let _ = send
            .write_all(&message_frame(&Msg::Attack(format!("pipelined {i}"))))
            .await;
    }
    // A sends at most its own hello before refusing us (its stream may already be gone).
    if let Ok(mut from_a) = conn.accept_uni().await {
        while let Ok(Some(frame)) = read_one(&mut from_a, 1 << 20).await {
            assert_eq!(
                frame.header.kind,
                FrameKind::Hello as u8,
                "A sent an unauthenticated peer more than its hello"
            );
        }
    }
    assert_eq!(closed_code(&conn).await, code(CloseCode::AuthFailed));

    s.assert_nothing_delivered_from(c.node_id()).await;
    s.assert_nothing_delivered_from(x.node_id()).await;
    s.assert_a_and_b_talk().await;
    c.shutdown().await;
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_not_matching_the_expected_node_id_is_refused() {
    let mut s = scene().await;
    let impostor_claim: NodeId = s.a.node_id() ^ 1;

    // Raw: insisting on another id at A's address fails in TLS.
    let x = Identity::generate().unwrap();
    let endpoint = raw_client(&x, ALPN).unwrap();
    let err = dial_tls(&endpoint, s.a.local_addr(), Some(impostor_claim))
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::Connection(_)), "got {err:?}");
    // The right id at the same address works, so the refusal was about identity.
    assert!(dial_tls(&endpoint, s.a.local_addr(), Some(s.a.node_id()))
        .await
        .is_ok());

    // Through the address book: a node told that `impostor_claim` lives at A's address never
    // connects to whoever is there.
    let (d, mut d_rx) = Transport::<Msg>::bind(
        Identity::generate().unwrap(),
        s.creds.clone(),
        test_config(),
    )
    .await
    .unwrap();
    d.add_peer(impostor_claim, s.a.local_addr());
    d.send(impostor_claim, Msg::Attack("to the wrong node".into()));
    for event in drain_for(&mut d_rx, Duration::from_secs(1)).await {
        assert!(
            !matches!(
                event,
                TransportEvent::PeerConnected { .. } | TransportEvent::Message { .. }
            ),
            "unexpected {event:?}"
        );
    }
    assert!(d.peers().is_empty());
    s.assert_nothing_delivered_from(d.node_id()).await;
    s.assert_a_and_b_talk().await;
    d.shutdown().await;
    s.shutdown().await;
}

/// Joins A honestly as a fresh identity and returns the open streams.
async fn authenticated_attacker(
    s: &mut Scene,
) -> (
    NodeId,
    quinn::Endpoint,
    quinn::Connection,
    quinn::SendStream,
) {
    let (x, endpoint, conn) = raw_connection(s.a.local_addr()).await;
    let (send, _recv) = join(&conn, &x, &s.creds, 42).await.unwrap();
    let connected = wait_for(
        &mut s.a_rx,
        LONG,
        |e| matches!(e, TransportEvent::PeerConnected { id, .. } if *id == x.node_id()),
    )
    .await;
    assert!(connected.is_some(), "the honest join must succeed");
    (x.node_id(), endpoint, conn, send)
}

/// The attacker's connection was closed by A with `expected`, and A reported the disconnect.
async fn assert_refused(
    s: &mut Scene,
    attacker: NodeId,
    conn: &quinn::Connection,
    expected: CloseCode,
) {
    assert_eq!(closed_code(conn).await, code(expected));
    let gone = wait_for(&mut s.a_rx, LONG, |e| {
        if let TransportEvent::Message { from, .. } = e {
            assert_ne!(
                *from, attacker,
                "attacker message delivered after its bad frame"
            );
        }
        matches!(e, TransportEvent::PeerDisconnected { id, .. } if *id == attacker)
    })
    .await;
    assert!(gone.is_some(), "A must report the attacker's disconnection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_bytes_on_an_authenticated_stream_close_only_that_connection() {
    let mut s = scene().await;
    let (x, _ep, conn, mut send) = authenticated_attacker(&mut s).await;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0xbad);
    let mut garbage = vec![0u8; 512];
    rng.fill_bytes(&mut garbage);
    send.write_all(&garbage).await.unwrap();
    let closed = closed_code(&conn).await;
    assert!(
        [
            code(CloseCode::ProtocolViolation),
            code(CloseCode::FrameTooLarge),
            code(CloseCode::VersionMismatch)
        ]
        .contains(&closed),
        "closed with {closed:?}"
    );
    s.assert_nothing_delivered_from(x).await;
    s.assert_a_and_b_talk().await;
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_message_payload_closes_only_that_connection() {
    let mut s = scene().await;
    let (x, _ep, conn, mut send) = authenticated_attacker(&mut s).await;
    // A valid frame whose payload is not a `Msg` (variant index 200 does not exist).
    let frame = raw_frame(
        PROTOCOL_MAJOR,
        PROTOCOL_MINOR,
        FrameKind::Message as u8,
        &[200, 1, 2, 3],
    );
    send.write_all(&frame).await.unwrap();
    assert_refused(&mut s, x, &conn, CloseCode::ProtocolViolation).await;
    s.assert_a_and_b_talk().await;
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_frame_closes_only_that_connection() {
    let mut s = scene().await;
    let (x, _ep, conn, mut send) = authenticated_attacker(&mut s).await;
    // One good message first: it is delivered.
    send.write_all(&message_frame(&Msg::Attack("legit".into())))
        .await
        .unwrap();
    let got = wait_for(
        &mut s.a_rx,
        LONG,
        |e| matches!(e, TransportEvent::Message { from, .. } if *from == x),
    )
    .await;
    assert_eq!(
        got,
        Some(TransportEvent::Message {
            from: x,
            msg: Msg::Attack("legit".into())
        })
    );
    // Then a frame cut short, and the stream ends.
    let whole = message_frame(&Msg::Attack("this one is cut in the middle".into()));
    send.write_all(&whole[..whole.len() / 2]).await.unwrap();
    send.finish().unwrap();
    assert_refused(&mut s, x, &conn, CloseCode::ProtocolViolation).await;
    s.assert_a_and_b_talk().await;
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_length_prefix_is_refused_before_the_body() {
    let mut s = scene().await;
    let (x, _ep, conn, mut send) = authenticated_attacker(&mut s).await;
    // Only the prefix is sent: A must refuse without waiting for 4 GiB to arrive.
    send.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    assert_refused(&mut s, x, &conn, CloseCode::FrameTooLarge).await;
    s.assert_a_and_b_talk().await;
    s.shutdown().await;
}

/// The reason of a close that must be a `VersionMismatch`.
fn version_mismatch_reason(closed: quinn::ConnectionError) -> String {
    match closed {
        quinn::ConnectionError::ApplicationClosed(close) => {
            assert_eq!(
                close.error_code.into_inner(),
                CloseCode::VersionMismatch as u64
            );
            String::from_utf8_lossy(&close.reason).to_string()
        }
        other => panic!("expected an application close, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frame_of_an_unknown_major_version_is_refused() {
    let mut s = scene().await;
    let (x, _ep, conn, mut send) = authenticated_attacker(&mut s).await;
    let payload =
        baton::transport::frame::encode_payload(&Msg::Attack("from the future".into())).unwrap();
    send.write_all(&raw_frame(
        PROTOCOL_MAJOR + 1,
        0,
        FrameKind::Message as u8,
        &payload,
    ))
    .await
    .unwrap();
    let reason = version_mismatch_reason(conn.closed().await);
    assert!(reason.contains("major version 2"), "reason: {reason}");
    s.assert_nothing_delivered_from(x).await;
    s.assert_a_and_b_talk().await;
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_of_an_unknown_major_version_gets_an_error_frame() {
    let mut s = scene().await;
    let (x, _ep, conn) = raw_connection(s.a.local_addr()).await;
    let mut send = conn.open_uni().await.unwrap();
    send.write_all(&raw_frame(
        PROTOCOL_MAJOR + 1,
        0,
        FrameKind::Hello as u8,
        &[0; 64],
    ))
    .await
    .unwrap();
    let mut from_a = conn.accept_uni().await.unwrap();
    let hello = read_one(&mut from_a, 1 << 20).await.unwrap().unwrap();
    assert_eq!(hello.header.kind, FrameKind::Hello as u8);
    let error = read_one(&mut from_a, 1 << 20).await.unwrap().unwrap();
    assert_eq!(error.header.kind, FrameKind::Error as u8);
    let error: ErrorFrame = decode_payload(&error.payload).unwrap();
    assert_eq!(error.code, CloseCode::VersionMismatch as u32);
    assert!(error.message.contains("major version"), "{}", error.message);
    assert_eq!(closed_code(&conn).await, code(CloseCode::VersionMismatch));
    s.assert_nothing_delivered_from(x.node_id()).await;
    s.assert_a_and_b_talk().await;
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_of_another_major_is_refused_with_both_versions_named() {
    let mut s = scene().await;
    let x = Identity::generate().unwrap();
    // A node of the next major offers only its own ALPN. The acceptor takes it at the TLS
    // layer, so it can say what is wrong, and closes before anything else is exchanged.
    let endpoint = raw_client(&x, b"baton/2").unwrap();
    let conn = dial_tls(&endpoint, s.a.local_addr(), None).await.unwrap();
    let reason = version_mismatch_reason(conn.closed().await);
    assert!(
        reason.contains("baton/2") && reason.contains("baton/1"),
        "the refusal does not name both versions: {reason}"
    );
    s.assert_nothing_delivered_from(x.node_id()).await;
    s.assert_a_and_b_talk().await;
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protocol_that_is_not_baton_is_refused_in_tls() {
    let mut s = scene().await;
    let x = Identity::generate().unwrap();
    let endpoint = raw_client(&x, b"h3").unwrap();
    let err = dial_tls(&endpoint, s.a.local_addr(), None)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, TransportError::Connection(_)), "got {err:?}");
    assert!(
        text.contains("protocol") || text.contains("120"),
        "unclear error: {text}"
    );
    s.assert_nothing_delivered_from(x.node_id()).await;
    s.assert_a_and_b_talk().await;
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_proof_replayed_from_another_certificate_is_refused() {
    let mut s = scene().await;
    // A legitimate member M made a proof for this very connection (the strongest replay: the
    // attacker relays it live). It is bound to M's key, so on X's connection it fails.
    let member = Identity::generate().unwrap();
    let (x, _ep, conn) = raw_connection(s.a.local_addr()).await;
    let stolen = proof_for(
        &member,
        &s.creds,
        Role::Dialer,
        7,
        &binding(&conn, &s.creds),
    );
    let mut send = conn.open_uni().await.unwrap();
    send.write_all(&hello_frame(s.creds.session_id.0, 7, Role::Dialer, stolen))
        .await
        .unwrap();
    send.write_all(&message_frame(&Msg::Attack("replayed".into())))
        .await
        .unwrap();
    assert_eq!(closed_code(&conn).await, code(CloseCode::AuthFailed));
    s.assert_nothing_delivered_from(x.node_id()).await;
    s.assert_nothing_delivered_from(member.node_id()).await;
    s.assert_a_and_b_talk().await;
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_proof_replayed_from_another_connection_is_refused() {
    let mut s = scene().await;
    let x = Identity::generate().unwrap();
    let endpoint = raw_client(&x, ALPN).unwrap();
    let first = dial_tls(&endpoint, s.a.local_addr(), None).await.unwrap();
    let old_proof = proof_for(&x, &s.creds, Role::Dialer, 7, &binding(&first, &s.creds));
    first.close(0u32.into(), b"done");
    let second = dial_tls(&endpoint, s.a.local_addr(), None).await.unwrap();
    let mut send = second.open_uni().await.unwrap();
    send.write_all(&hello_frame(
        s.creds.session_id.0,
        7,
        Role::Dialer,
        old_proof,
    ))
    .await
    .unwrap();
    assert_eq!(closed_code(&second).await, code(CloseCode::AuthFailed));
    s.assert_nothing_delivered_from(x.node_id()).await;
    s.assert_a_and_b_talk().await;
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_of_another_session_is_refused() {
    let mut s = scene().await;
    let other = SessionCredentials {
        session_id: SessionId([9; 16]),
        secret: SessionSecret([9; 32]),
    };
    let (x, _ep, conn) = raw_connection(s.a.local_addr()).await;
    assert!(join(&conn, &x, &other, 1).await.is_err());
    assert_eq!(closed_code(&conn).await, code(CloseCode::SessionMismatch));
    s.assert_nothing_delivered_from(x.node_id()).await;
    s.assert_a_and_b_talk().await;
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_peer_is_dropped_after_the_hello_timeout() {
    let mut s = scene().await;
    let (x, _ep, conn) = raw_connection(s.a.local_addr()).await;
    // Say nothing at all.
    assert_eq!(closed_code(&conn).await, code(CloseCode::HelloTimeout));
    s.assert_nothing_delivered_from(x.node_id()).await;
    s.assert_a_and_b_talk().await;
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_kind_from_a_newer_minor_is_skipped_not_fatal() {
    let mut s = scene().await;
    let (x, _ep, conn, mut send) = authenticated_attacker(&mut s).await;
    // A compatible newer node may send kinds we do not know yet: skipped.
    send.write_all(&raw_frame(
        PROTOCOL_MAJOR,
        PROTOCOL_MINOR + 1,
        99,
        b"future stuff",
    ))
    .await
    .unwrap();
    // Its messages, with a field appended by that newer minor, still decode.
    let mut payload =
        baton::transport::frame::encode_payload(&Msg::Attack("newer".into())).unwrap();
    payload.extend_from_slice(b"appended field");
    send.write_all(&raw_frame(
        PROTOCOL_MAJOR,
        PROTOCOL_MINOR + 1,
        FrameKind::Message as u8,
        &payload,
    ))
    .await
    .unwrap();
    let got = wait_for(
        &mut s.a_rx,
        LONG,
        |e| matches!(e, TransportEvent::Message { from, .. } if *from == x),
    )
    .await;
    assert_eq!(
        got,
        Some(TransportEvent::Message {
            from: x,
            msg: Msg::Attack("newer".into())
        })
    );
    assert!(
        conn.close_reason().is_none(),
        "the connection must stay open"
    );

    // The same unknown kind claimed at our own minor is a protocol violation.
    send.write_all(&raw_frame(PROTOCOL_MAJOR, PROTOCOL_MINOR, 99, b""))
        .await
        .unwrap();
    assert_refused(&mut s, x, &conn, CloseCode::ProtocolViolation).await;
    s.assert_a_and_b_talk().await;
    s.shutdown().await;
}
