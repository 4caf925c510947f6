//! One UDP socket per node, shared by QUIC and the node's Internet services.
//!
//! Hole punching only works if the QUIC endpoint sends from the very port the rendezvous
//! service and the STUN/TURN server saw: a NAT maps each local port on its own. So the node's
//! one socket carries everything, and [`SharedSocket`] (what quinn sees as its
//! `AsyncUdpSocket`) sorts what arrives the way RFC 9443 describes for QUIC beside STUN and
//! TURN — by source address first, then by first byte:
//!
//! - from neither service address: QUIC, handed to quinn untouched;
//! - from the TURN server, first byte `0x40..=0x4f` and a bound channel: TURN ChannelData,
//!   unwrapped and handed to quinn as if it came from the channel's peer;
//! - anything else from a service address (STUN messages, rendezvous messages, garbage): to
//!   the node's [`ServiceInbox`], never to quinn.
//!
//! On send, a datagram for a peer that has a bound channel is wrapped in ChannelData and sent
//! to the TURN server instead. QUIC therefore stays end to end through a relay: the relay only
//! ever sees QUIC's ciphertext.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, UdpPoller};
use tokio::sync::mpsc;

/// Bytes of a ChannelData header (channel number, length), RFC 8656 §12.4.
pub const CHANNEL_HEADER_BYTES: usize = 4;
/// Lowest TURN channel number (RFC 8656 §12).
pub const CHANNEL_FIRST: u16 = 0x4000;
/// Highest TURN channel number (RFC 8656 §12).
pub const CHANNEL_LAST: u16 = 0x4fff;
/// Service datagrams queued for the node's agent; more are dropped (UDP loses them anyway).
pub const SERVICE_INBOX_DATAGRAMS_MAX: usize = 256;
/// Unwrapped relay datagrams held for quinn's next receive call when one receive brought more
/// than quinn's buffers could take; beyond it they are dropped, which QUIC treats as loss.
pub const RELAY_BACKLOG_DATAGRAMS_MAX: usize = 1024;

/// A datagram from a service address, for the node's agent.
pub type ServiceDatagram = (SocketAddr, Vec<u8>);
/// Where the shared socket delivers service datagrams.
pub type ServiceInbox = mpsc::Receiver<ServiceDatagram>;

/// How many datagrams went which way: shows that a path is direct or relayed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PathCounters {
    /// QUIC datagrams sent straight to a peer.
    pub direct_sent: u64,
    /// QUIC datagrams sent through the TURN server (ChannelData).
    pub relayed_sent: u64,
    /// QUIC datagrams received through the TURN server (ChannelData).
    pub relayed_received: u64,
    /// Datagrams from service addresses handed to the agent.
    pub service_received: u64,
}

#[derive(Default)]
struct Counters {
    direct_sent: AtomicU64,
    relayed_sent: AtomicU64,
    relayed_received: AtomicU64,
    service_received: AtomicU64,
}

/// The channels bound on this node's TURN allocation.
#[derive(Debug, Default)]
struct Relay {
    server: Option<SocketAddr>,
    by_peer: HashMap<SocketAddr, u16>,
    by_channel: HashMap<u16, SocketAddr>,
}

#[derive(Debug, Default)]
struct Table {
    services: HashSet<SocketAddr>,
    relay: Relay,
    /// Peers' relayed candidates: a connection to one of them goes through their relay.
    relayed_peers: HashSet<SocketAddr>,
}

/// Whether a link's packets go straight to the peer or through a TURN relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PathKind {
    /// Straight between the two players (possibly through their NATs).
    Direct,
    /// Through a TURN server (ours or the peer's).
    Relayed,
}

/// The routing state shared between the socket (quinn's side) and the agent (which learns
/// the service addresses and binds channels). Cheap to clone.
#[derive(Clone)]
pub struct Routes {
    table: Arc<Mutex<Table>>,
    counters: Arc<Counters>,
    inbox: mpsc::Sender<ServiceDatagram>,
}

impl fmt::Debug for Routes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Routes")
            .field("table", &*self.lock())
            .finish_non_exhaustive()
    }
}

impl Routes {
    /// Routes with no service yet, and the inbox their service datagrams arrive in.
    pub fn new() -> (Routes, ServiceInbox) {
        let (inbox, receiver) = mpsc::channel(SERVICE_INBOX_DATAGRAMS_MAX);
        let routes = Routes {
            table: Arc::default(),
            counters: Arc::default(),
            inbox,
        };
        (routes, receiver)
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // Plain maps, each change a single insert or remove: a panic cannot leave them torn.
        self.table
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Datagrams from `addr` go to the agent from now on, not to quinn.
    pub fn add_service(&self, addr: SocketAddr) {
        self.lock().services.insert(addr);
    }

    /// Whether datagrams from `addr` go to the agent.
    pub fn is_service(&self, addr: SocketAddr) -> bool {
        self.lock().services.contains(&addr)
    }

    /// Traffic for `peer` goes through `channel` on the allocation at `server` from now on
    /// (once the server confirmed the ChannelBind).
    pub fn bind_channel(&self, server: SocketAddr, channel: u16, peer: SocketAddr) {
        let mut table = self.lock();
        table.services.insert(server);
        let relay = &mut table.relay;
        relay.server = Some(server);
        if let Some(old) = relay.by_peer.insert(peer, channel) {
            relay.by_channel.remove(&old);
        }
        if let Some(old_peer) = relay.by_channel.insert(channel, peer) {
            if old_peer != peer {
                relay.by_peer.remove(&old_peer);
            }
        }
    }

    /// Forgets every channel: the allocation they were bound on is gone (our NAT mapping
    /// toward the TURN server changed), so traffic must not be wrapped for it any more.
    pub fn clear_channels(&self) {
        self.lock().relay = Relay::default();
    }

    /// The channel bound for `peer`, if any.
    pub fn channel_of(&self, peer: SocketAddr) -> Option<u16> {
        self.lock().relay.by_peer.get(&peer).copied()
    }

    /// Whether traffic for `peer` goes through the relay.
    pub fn is_relayed(&self, peer: SocketAddr) -> bool {
        self.channel_of(peer).is_some()
    }

    /// `addr` is a peer's address on a TURN server (a relayed candidate it posted).
    pub fn mark_relayed_peer(&self, addr: SocketAddr) {
        const RELAYED_PEERS_MAX: usize = 1024;
        let mut table = self.lock();
        if table.relayed_peers.len() < RELAYED_PEERS_MAX {
            table.relayed_peers.insert(addr);
        }
    }

    /// How packets to `remote` travel.
    pub fn path_of(&self, remote: SocketAddr) -> PathKind {
        let table = self.lock();
        if table.relay.by_peer.contains_key(&remote) || table.relayed_peers.contains(&remote) {
            PathKind::Relayed
        } else {
            PathKind::Direct
        }
    }

    /// What went which way so far.
    pub fn counters(&self) -> PathCounters {
        let c = &self.counters;
        PathCounters {
            direct_sent: c.direct_sent.load(Ordering::Relaxed),
            relayed_sent: c.relayed_sent.load(Ordering::Relaxed),
            relayed_received: c.relayed_received.load(Ordering::Relaxed),
            service_received: c.service_received.load(Ordering::Relaxed),
        }
    }

    fn relay_target(&self, destination: SocketAddr) -> Option<(SocketAddr, u16)> {
        let table = self.lock();
        let channel = *table.relay.by_peer.get(&destination)?;
        Some((table.relay.server?, channel))
    }

    fn divert(&self, from: SocketAddr, bytes: &[u8]) {
        self.counters
            .service_received
            .fetch_add(1, Ordering::Relaxed);
        if self.inbox.try_send((from, bytes.to_vec())).is_err() {
            tracing::debug!(%from, "service inbox full; datagram dropped");
        }
    }

    /// Sorts one received datagram (one segment): `Some(peer, payload range)` when it is
    /// QUIC for quinn, `None` when it went to the agent.
    fn sort(&self, from: SocketAddr, bytes: &[u8]) -> Option<(SocketAddr, std::ops::Range<usize>)> {
        let (is_service, is_relay, peer) = {
            let table = self.lock();
            let is_service = table.services.contains(&from);
            let is_relay = table.relay.server == Some(from);
            let peer = match channel_data(bytes) {
                Some((channel, _)) if is_relay => table.relay.by_channel.get(&channel).copied(),
                _ => None,
            };
            (is_service, is_relay, peer)
        };
        if !is_service {
            return Some((from, 0..bytes.len()));
        }
        if let (true, Some(peer), Some((_, payload))) = (is_relay, peer, channel_data(bytes)) {
            self.counters
                .relayed_received
                .fetch_add(1, Ordering::Relaxed);
            return Some((peer, payload));
        }
        self.divert(from, bytes);
        None
    }
}

/// The channel number and payload range of a ChannelData message, if `bytes` is one
/// (a channel in the valid range and a length that fits; over UDP trailing padding may follow).
pub fn channel_data(bytes: &[u8]) -> Option<(u16, std::ops::Range<usize>)> {
    let header = bytes.get(..CHANNEL_HEADER_BYTES)?;
    let channel = u16::from_be_bytes([header[0], header[1]]);
    let length = usize::from(u16::from_be_bytes([header[2], header[3]]));
    let end = CHANNEL_HEADER_BYTES + length;
    ((CHANNEL_FIRST..=CHANNEL_LAST).contains(&channel) && end <= bytes.len())
        .then_some((channel, CHANNEL_HEADER_BYTES..end))
}

/// `payload` as a ChannelData message on `channel`.
pub fn wrap_channel_data(channel: u16, payload: &[u8]) -> Option<Vec<u8>> {
    let length = u16::try_from(payload.len()).ok()?;
    let mut out = Vec::with_capacity(CHANNEL_HEADER_BYTES + payload.len());
    out.extend_from_slice(&channel.to_be_bytes());
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(payload);
    Some(out)
}

/// What quinn gets as its socket when the node plays over the Internet (see the module docs).
pub struct SharedSocket {
    inner: Arc<dyn AsyncUdpSocket>,
    routes: Routes,
    /// Relay datagrams unwrapped from one multi-segment receive that did not fit at once.
    backlog: Mutex<VecDeque<(RecvMeta, Vec<u8>)>>,
}

impl fmt::Debug for SharedSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedSocket")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl SharedSocket {
    /// Wraps `inner` (the node's one UDP socket, possibly with fault injection under it).
    pub fn new(inner: Arc<dyn AsyncUdpSocket>, routes: Routes) -> SharedSocket {
        SharedSocket {
            inner,
            routes,
            backlog: Mutex::new(VecDeque::new()),
        }
    }

    fn lock_backlog(&self) -> MutexGuard<'_, VecDeque<(RecvMeta, Vec<u8>)>> {
        self.backlog
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Moves held-back datagrams into quinn's buffers; how many.
    fn drain_backlog(&self, bufs: &mut [IoSliceMut<'_>], meta: &mut [RecvMeta]) -> usize {
        let mut backlog = self.lock_backlog();
        let mut filled = 0;
        while filled < bufs.len().min(meta.len()) {
            let Some((m, bytes)) = backlog.pop_front() else {
                break;
            };
            let len = bytes.len().min(bufs[filled].len());
            bufs[filled][..len].copy_from_slice(&bytes[..len]);
            meta[filled] = RecvMeta {
                len,
                stride: len,
                ..m
            };
            filled += 1;
        }
        filled
    }

    /// Sorts one received datagram in place. Returns whether quinn keeps it (rewritten if
    /// it was relayed). A multi-segment (GRO) datagram from a service address is split: its
    /// relayed segments go to the backlog, the rest to the agent.
    fn sort_in_place(&self, buf: &mut [u8], meta: &mut RecvMeta) -> bool {
        if !self.routes.is_service(meta.addr) {
            return true;
        }
        let len = meta.len.min(buf.len());
        let stride = if meta.stride == 0 { len } else { meta.stride };
        if stride >= len {
            return match self.routes.sort(meta.addr, &buf[..len]) {
                Some((peer, range)) => {
                    let payload_len = range.len();
                    buf.copy_within(range, 0);
                    meta.addr = peer;
                    meta.len = payload_len;
                    meta.stride = payload_len;
                    true
                }
                None => false,
            };
        }
        let mut backlog = self.lock_backlog();
        for segment in buf[..len].chunks(stride) {
            if let Some((peer, range)) = self.routes.sort(meta.addr, segment) {
                if backlog.len() >= RELAY_BACKLOG_DATAGRAMS_MAX {
                    tracing::debug!("relay backlog full; datagram dropped");
                    continue;
                }
                let m = RecvMeta {
                    addr: peer,
                    ..*meta
                };
                backlog.push_back((m, segment[range].to_vec()));
            }
        }
        false
    }

    fn send_relayed(
        &self,
        transmit: &Transmit,
        server: SocketAddr,
        channel: u16,
    ) -> io::Result<()> {
        let segment = transmit
            .segment_size
            .unwrap_or(transmit.contents.len())
            .max(1);
        let mut first = Ok(());
        for (i, payload) in transmit.contents.chunks(segment).enumerate() {
            let Some(wrapped) = wrap_channel_data(channel, payload) else {
                continue;
            };
            let sent = self.inner.try_send(&Transmit {
                destination: server,
                ecn: transmit.ecn,
                contents: &wrapped,
                segment_size: None,
                src_ip: transmit.src_ip,
            });
            self.routes
                .counters
                .relayed_sent
                .fetch_add(1, Ordering::Relaxed);
            // Only the first segment's readiness matters to quinn: a later one that finds the
            // socket busy is lost, like any datagram.
            if i == 0 {
                first = sent;
            }
        }
        first
    }
}

impl AsyncUdpSocket for SharedSocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        self.inner.clone().create_io_poller()
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        match self.routes.relay_target(transmit.destination) {
            Some((server, channel)) => self.send_relayed(transmit, server, channel),
            None => {
                self.routes
                    .counters
                    .direct_sent
                    .fetch_add(1, Ordering::Relaxed);
                self.inner.try_send(transmit)
            }
        }
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        // One iteration per receive from the real socket; ends with data for quinn, an
        // error, or the socket registered for wake-up.
        loop {
            let held = self.drain_backlog(bufs, meta);
            if held > 0 {
                return Poll::Ready(Ok(held));
            }
            let received = match self.inner.poll_recv(cx, bufs, meta) {
                Poll::Ready(Ok(n)) => n,
                other => return other,
            };
            let kept = crate::transport::fault::keep_received(bufs, meta, received, |buf, meta| {
                self.sort_in_place(buf, meta)
            });
            if kept > 0 || received == 0 {
                return Poll::Ready(Ok(kept));
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn max_transmit_segments(&self) -> usize {
        self.inner.max_transmit_segments()
    }

    fn max_receive_segments(&self) -> usize {
        self.inner.max_receive_segments()
    }

    fn may_fragment(&self) -> bool {
        self.inner.may_fragment()
    }
}

/// Sends one datagram from the shared socket on behalf of the agent, retrying briefly while
/// the socket is busy (service messages are rare and small).
pub async fn send_service(
    socket: &Arc<dyn AsyncUdpSocket>,
    destination: SocketAddr,
    contents: &[u8],
) -> io::Result<()> {
    const BUSY_RETRIES_MAX: u32 = 20;
    let transmit = Transmit {
        destination,
        ecn: None,
        contents,
        segment_size: None,
        src_ip: None,
    };
    let mut tries = 0;
    loop {
        match socket.try_send(&transmit) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && tries < BUSY_RETRIES_MAX => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn channel_data_round_trips_and_rejects_bad_headers() {
        let wrapped = wrap_channel_data(0x4001, b"quic").unwrap();
        assert_eq!(channel_data(&wrapped), Some((0x4001, 4..8)));
        // Padding after the payload is allowed over UDP.
        let mut padded = wrapped.clone();
        padded.extend_from_slice(&[0, 0, 0, 0]);
        assert_eq!(channel_data(&padded), Some((0x4001, 4..8)));
        // A length past the end, a channel outside the range, a short header.
        assert_eq!(channel_data(&wrapped[..6]), None);
        assert_eq!(
            channel_data(&wrap_channel_data(0x3fff, b"x").unwrap()),
            None
        );
        assert_eq!(
            channel_data(&wrap_channel_data(0x5000, b"x").unwrap()),
            None
        );
        assert_eq!(channel_data(&[0x40]), None);
    }

    #[test]
    fn datagrams_are_sorted_by_source_then_first_byte() {
        let (routes, mut inbox) = Routes::new();
        let rendezvous = addr(1);
        let turn = addr(2);
        let peer = addr(3);
        routes.add_service(rendezvous);
        routes.bind_channel(turn, 0x4000, peer);
        // A stranger's datagram is QUIC, even if it looks like ChannelData.
        let quic_like = wrap_channel_data(0x4000, b"hi").unwrap();
        assert_eq!(routes.sort(addr(9), &quic_like), Some((addr(9), 0..6)));
        // ChannelData from the TURN server on a bound channel is the peer's QUIC.
        assert_eq!(routes.sort(turn, &quic_like), Some((peer, 4..6)));
        // Unbound channel, STUN, and rendezvous traffic go to the agent.
        let unbound = wrap_channel_data(0x4002, b"hi").unwrap();
        assert_eq!(routes.sort(turn, &unbound), None);
        assert_eq!(routes.sort(turn, &[0x01, 0x01, 0, 0]), None);
        assert_eq!(routes.sort(rendezvous, b"anything"), None);
        let mut diverted = Vec::new();
        while let Ok(datagram) = inbox.try_recv() {
            diverted.push(datagram);
        }
        assert_eq!(diverted.len(), 3);
        assert_eq!(diverted[2], (rendezvous, b"anything".to_vec()));
        let counters = routes.counters();
        assert_eq!(counters.relayed_received, 1);
        assert_eq!(counters.service_received, 3);
    }

    #[test]
    fn rebinding_a_channel_forgets_the_old_peer() {
        let (routes, _inbox) = Routes::new();
        routes.bind_channel(addr(2), 0x4000, addr(3));
        routes.bind_channel(addr(2), 0x4000, addr(4));
        assert_eq!(routes.channel_of(addr(3)), None);
        assert_eq!(routes.channel_of(addr(4)), Some(0x4000));
        assert_eq!(routes.relay_target(addr(4)), Some((addr(2), 0x4000)));
    }
}
