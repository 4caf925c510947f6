//! The floors every Baton latency is compared with: a raw quinn round trip (one small
//! message and its echo on a bidirectional stream), and the same through Baton's own
//! transport (framing, per-peer queues and the event channel on top of QUIC).

use crate::BenchError;
use baton::transport::{Identity, SessionCredentials, Transport, TransportConfig, TransportEvent};
use quinn::{Endpoint, RecvStream, SendStream};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Round trips made before measuring, so connection setup and congestion-window growth
/// stay out of the figures.
const WARMUP_ROUND_TRIPS: usize = 50;
/// Longest wait for one echo; a loopback echo that takes this long means the run is broken.
const ECHO_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for the closing handshake of an endpoint when the measurement ends.
const CLOSE_DRAIN_TIMEOUT: Duration = Duration::from_millis(500);
/// Probes sent before Baton's transport echoes (the accepting side installs the
/// connection a moment after the dialer, and drops what it sends until then).
const TRANSPORT_PROBES_MAX: usize = 100;
/// Wait for the echo of one probe.
const TRANSPORT_PROBE_WAIT: Duration = Duration::from_millis(100);
const LOOPBACK: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);

/// Round trips of `message_bytes` over one quinn bidirectional stream between two endpoints
/// of this process (server-authenticated TLS 1.3, quinn's default transport settings).
///
/// Back to back when `pace` is `None` (threads stay hot: the pure floor); otherwise one
/// round trip every `pace`, so the threads go idle in between as they do between ticks and
/// each round trip pays the wake-ups a tick pays.
pub async fn quinn_round_trips(
    samples: usize,
    message_bytes: usize,
    pace: Option<Duration>,
) -> Result<Vec<Duration>, BenchError> {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])?;
    let cert = certified.cert.der().clone();
    let key = rustls::pki_types::PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der());
    let server_config = quinn::ServerConfig::with_single_cert(vec![cert.clone()], key.into())?;
    let server = Endpoint::server(server_config, LOOPBACK)?;
    let server_addr = server.local_addr()?;
    let echo = tokio::spawn(echo_first_stream(server.clone(), message_bytes));

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert)?;
    let mut client = Endpoint::client(LOOPBACK)?;
    client.set_default_client_config(quinn::ClientConfig::with_root_certificates(Arc::new(
        roots,
    ))?);
    let conn = client.connect(server_addr, "localhost")?.await?;
    let (mut send, mut recv) = conn.open_bi().await?;

    let mut message = vec![0u8; message_bytes];
    let mut answer = vec![0u8; message_bytes];
    let mut measured = Vec::with_capacity(samples);
    let mut next_due = tokio::time::Instant::now();
    for round in 0..WARMUP_ROUND_TRIPS + samples {
        stamp(&mut message, round as u64);
        if let (Some(pace), true) = (pace, round >= WARMUP_ROUND_TRIPS) {
            next_due += pace;
            tokio::time::sleep_until(next_due).await;
        }
        let started = Instant::now();
        round_trip(&mut send, &mut recv, &message, &mut answer).await?;
        let elapsed = started.elapsed();
        if answer != message {
            return Err(BenchError::Protocol("quinn echo differs from the message"));
        }
        if round >= WARMUP_ROUND_TRIPS {
            measured.push(elapsed);
        }
    }

    let _ = send.finish();
    conn.close(0u32.into(), b"done");
    let _ = tokio::time::timeout(CLOSE_DRAIN_TIMEOUT, client.wait_idle()).await;
    server.close(0u32.into(), b"done");
    echo.abort();
    Ok(measured)
}

async fn round_trip(
    send: &mut SendStream,
    recv: &mut RecvStream,
    message: &[u8],
    answer: &mut [u8],
) -> Result<(), BenchError> {
    let exchange = async {
        send.write_all(message).await?;
        recv.read_exact(answer).await?;
        Ok::<(), BenchError>(())
    };
    tokio::time::timeout(ECHO_TIMEOUT, exchange)
        .await
        .map_err(|_| BenchError::Timeout("a quinn echo"))?
}

/// Serves one connection's first bidirectional stream: echoes fixed-size messages until the
/// peer finishes the stream.
async fn echo_first_stream(server: Endpoint, message_bytes: usize) -> Result<(), BenchError> {
    let incoming = server.accept().await.ok_or(BenchError::Protocol(
        "the quinn server closed before a dial",
    ))?;
    let conn = incoming.await?;
    let (mut send, mut recv) = conn.accept_bi().await?;
    let mut buffer = vec![0u8; message_bytes];
    while recv.read_exact(&mut buffer).await.is_ok() {
        send.write_all(&buffer).await?;
    }
    Ok(())
}

/// Round trips of `message_bytes` through two [`Transport`]s of this process: the sender's
/// `send`, the peer's event channel, its `send` back and the sender's event channel.
pub async fn transport_round_trips(
    samples: usize,
    message_bytes: usize,
) -> Result<Vec<Duration>, BenchError> {
    let credentials = SessionCredentials::generate();
    let (near, mut near_events) = Transport::<Vec<u8>>::bind(
        Identity::generate()?,
        credentials.clone(),
        TransportConfig::default(),
    )
    .await?;
    let (far, far_events) = Transport::<Vec<u8>>::bind(
        Identity::generate()?,
        credentials,
        TransportConfig::default(),
    )
    .await?;
    let echo = tokio::spawn(echo_messages(far.clone(), far_events));
    let outcome = measure_transport(
        &near,
        &mut near_events,
        far.local_addr(),
        samples,
        message_bytes,
    )
    .await;
    echo.abort();
    near.shutdown().await;
    far.shutdown().await;
    outcome
}

async fn measure_transport(
    near: &Transport<Vec<u8>>,
    events: &mut mpsc::Receiver<TransportEvent<Vec<u8>>>,
    far_addr: SocketAddr,
    samples: usize,
    message_bytes: usize,
) -> Result<Vec<Duration>, BenchError> {
    let far = near.connect(far_addr).await?;
    let mut message = vec![0u8; message_bytes.max(8)];
    let mut next_stamp = 0u64;
    let mut echoed = false;
    for _ in 0..TRANSPORT_PROBES_MAX {
        stamp(&mut message, next_stamp);
        near.send(far, message.clone());
        next_stamp += 1;
        if echo_of(events, far, &message, TRANSPORT_PROBE_WAIT)
            .await
            .is_some()
        {
            echoed = true;
            break;
        }
    }
    if !echoed {
        return Err(BenchError::Timeout(
            "the first echo through Baton's transport",
        ));
    }
    let mut measured = Vec::with_capacity(samples);
    for round in 0..WARMUP_ROUND_TRIPS + samples {
        stamp(&mut message, next_stamp);
        next_stamp += 1;
        let started = Instant::now();
        near.send(far, message.clone());
        let elapsed = echo_of(events, far, &message, ECHO_TIMEOUT)
            .await
            .ok_or(BenchError::Timeout("an echo through Baton's transport"))?
            .duration_since(started);
        if round >= WARMUP_ROUND_TRIPS {
            measured.push(elapsed);
        }
    }
    Ok(measured)
}

/// Waits for `message` to come back from `from`; skips late echoes of earlier probes.
async fn echo_of(
    events: &mut mpsc::Receiver<TransportEvent<Vec<u8>>>,
    from: baton::raft::NodeId,
    message: &[u8],
    limit: Duration,
) -> Option<Instant> {
    let search = async {
        while let Some(event) = events.recv().await {
            if let TransportEvent::Message { from: sender, msg } = event {
                if sender == from && msg == message {
                    return Some(Instant::now());
                }
            }
        }
        None
    };
    tokio::time::timeout(limit, search).await.ok().flatten()
}

async fn echo_messages(
    transport: Transport<Vec<u8>>,
    mut events: mpsc::Receiver<TransportEvent<Vec<u8>>>,
) {
    while let Some(event) = events.recv().await {
        if let TransportEvent::Message { from, msg } = event {
            transport.send(from, msg);
        }
    }
}

/// Writes `value` in the first bytes of `message`, so each round trip's bytes differ.
fn stamp(message: &mut [u8], value: u64) {
    let bytes = value.to_le_bytes();
    let len = bytes.len().min(message.len());
    message[..len].copy_from_slice(&bytes[..len]);
}
