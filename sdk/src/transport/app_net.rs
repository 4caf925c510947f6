//! Bring your own network: QUIC over datagrams the application carries.
//!
//! A game that already has a path between its players (Steam's networking messages, EOS
//! P2P, a console relay, its own UDP socket) gives Baton an [`AppNet`] instead of a
//! UDP port. quinn runs over it as over a socket; QUIC, mutual TLS and the join proof stay
//! end to end, so the platform carries ciphertext only, and a datagram it forges or
//! corrupts never reaches Raft.
//!
//! - **Addresses**: peers are named by [`NetAddr`], 1 to [`NET_ADDR_BYTES_MAX`] opaque
//!   bytes (a Steam ID, an EOS product user id, a slot number). Each maps one to one onto a
//!   synthetic IPv6 socket address, which is what quinn, invites and the replicated
//!   address book carry, so they need no second address format.
//! - **Queues**: outgoing datagrams wait in a bounded queue for the application to take
//!   ([`AppNet::take_outgoing`]); when it is full, quinn is told "would block" and
//!   waits (back-pressure, not loss). Incoming datagrams are pushed into a bounded queue
//!   ([`AppNet::push_incoming`]), which refuses them when full (the platform keeps
//!   them or drops them, as a full socket buffer would).
//! - **Size**: QUIC needs datagrams of 1200 bytes. A network whose datagrams are smaller
//!   (EOS P2P carries 1170 bytes) declares so, and each QUIC datagram travels in up to
//!   [`FRAGMENTS_MAX`] fragments, reassembled at the receiver; a lost fragment loses the
//!   datagram, which QUIC repairs as any loss.
//!
//! Every network datagram starts with one byte: [`WHOLE`] (a QUIC datagram follows) or
//! [`FRAGMENT`] (then a 16-bit datagram number, the fragment's index and the count).

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, UdpPoller};
use tokio::sync::Notify;

/// Longest application address, in bytes: what fits in an IPv6 address.
pub const NET_ADDR_BYTES_MAX: usize = 16;
/// The QUIC datagram size Baton uses over an application network (QUIC's minimum, and its maximum here:
/// path MTU discovery is off, since the platform's MTU is declared).
pub const QUIC_DATAGRAM_BYTES: usize = 1200;
/// Smallest datagram an application network may declare.
pub const NET_DATAGRAM_BYTES_MIN: usize = 256;
/// Largest datagram an application network may declare.
pub const NET_DATAGRAM_BYTES_MAX: usize = 65_535;
/// Most fragments one QUIC datagram travels in.
pub const FRAGMENTS_MAX: usize = 8;
/// Datagrams each queue holds unless configured otherwise.
pub const NET_QUEUE_DATAGRAMS_DEFAULT: usize = 1024;
/// First byte of a network datagram that carries a whole QUIC datagram.
pub const WHOLE: u8 = 0x00;
/// First byte of a network datagram that carries one fragment.
pub const FRAGMENT: u8 = 0x01;
/// Bytes of a fragment's header.
const FRAGMENT_HEADER_BYTES: usize = 5;
/// Partly received datagrams kept for reassembly; beyond it the oldest is dropped.
const REASSEMBLY_MAX: usize = 256;
/// Marks a synthetic port (the low bits hold the address length).
const PORT_TAG: u16 = 0xb000;
const PORT_LEN_MASK: u16 = 0x001f;

/// An application's name for a peer: opaque bytes, 1 to [`NET_ADDR_BYTES_MAX`] long.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NetAddr {
    bytes: [u8; NET_ADDR_BYTES_MAX],
    len: u8,
}

impl fmt::Debug for NetAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NetAddr(")?;
        for byte in self.as_bytes() {
            write!(f, "{byte:02x}")?;
        }
        write!(f, ")")
    }
}

impl NetAddr {
    /// An address from the application's bytes (for a Steam ID, its 8 little-endian
    /// bytes; for a longer name, 16 bytes of a hash of it).
    pub fn new(bytes: &[u8]) -> Result<NetAddr, NetError> {
        if bytes.is_empty() || bytes.len() > NET_ADDR_BYTES_MAX {
            return Err(NetError::AddrLength(bytes.len()));
        }
        let mut padded = [0; NET_ADDR_BYTES_MAX];
        padded[..bytes.len()].copy_from_slice(bytes);
        let addr = NetAddr {
            bytes: padded,
            len: bytes.len() as u8,
        };
        // A few byte patterns read as IPv4 addresses or as "no address" to code that
        // normalises IPs; they are refused rather than risk a silent change of name.
        let ip = Ipv6Addr::from(padded);
        if ip.is_unspecified() || ip.to_ipv4_mapped().is_some() || ip.is_loopback() {
            return Err(NetError::AddrReserved);
        }
        Ok(addr)
    }

    /// The application's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }

    /// The synthetic socket address quinn, invites and the address book carry.
    pub fn to_socket_addr(&self) -> SocketAddr {
        SocketAddr::V6(SocketAddrV6::new(
            Ipv6Addr::from(self.bytes),
            PORT_TAG | u16::from(self.len),
            0,
            0,
        ))
    }

    /// The application address a synthetic socket address stands for; `None` for any
    /// other address (a real IP).
    pub fn from_socket_addr(addr: SocketAddr) -> Option<NetAddr> {
        let SocketAddr::V6(v6) = addr else {
            return None;
        };
        if v6.port() & !PORT_LEN_MASK != PORT_TAG {
            return None;
        }
        let len = usize::from(v6.port() & PORT_LEN_MASK);
        let bytes = v6.ip().octets();
        if len == 0 || len > NET_ADDR_BYTES_MAX || bytes[len..].iter().any(|&b| b != 0) {
            return None;
        }
        NetAddr::new(&bytes[..len]).ok()
    }

    /// Whether `addr` names an application address.
    pub fn is_app(addr: SocketAddr) -> bool {
        NetAddr::from_socket_addr(addr).is_some()
    }
}

/// Why a call on an application network failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetError {
    /// An address of this many bytes.
    #[error("an application address has 1 to {NET_ADDR_BYTES_MAX} bytes, not {0}")]
    AddrLength(usize),
    /// An address whose bytes would read as an IPv4, loopback or empty address.
    #[error("this application address is reserved (it would read as an IP address); hash it to 16 bytes")]
    AddrReserved,
    /// A declared datagram size Baton cannot use.
    #[error(
        "an application network must carry datagrams of {NET_DATAGRAM_BYTES_MIN} to {NET_DATAGRAM_BYTES_MAX} bytes, not {0}"
    )]
    DatagramSize(usize),
    /// A queue bound of zero.
    #[error("the queues need room for at least one datagram")]
    QueueSize,
    /// The incoming queue is full; push the datagram again later, or drop it.
    #[error("the incoming queue is full")]
    WouldBlock,
    /// A datagram larger than the network declared, or empty.
    #[error("a datagram of {len} bytes, outside 1 to {max}")]
    DatagramLength {
        /// Its length.
        len: usize,
        /// The network's largest.
        max: usize,
    },
    /// A datagram that is not Baton's framing (counted, and dropped).
    #[error("not a Baton datagram: {0}")]
    Malformed(&'static str),
    /// The caller's buffer cannot hold the datagram (it stays queued).
    #[error("the buffer holds {capacity} bytes; the datagram has {needed}")]
    BufferTooSmall {
        /// The buffer's size.
        capacity: usize,
        /// The datagram's.
        needed: usize,
    },
}

/// How an application network is sized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetConfig {
    /// This player's address on the application's network.
    pub local: NetAddr,
    /// The largest datagram the application's network carries, in bytes.
    pub datagram_bytes_max: usize,
    /// Datagrams each queue (outgoing, incoming) holds at most.
    pub queue_datagrams_max: usize,
}

impl NetConfig {
    /// A network for `local` carrying datagrams up to `datagram_bytes_max`, with queues of
    /// [`NET_QUEUE_DATAGRAMS_DEFAULT`] datagrams.
    pub fn new(local: NetAddr, datagram_bytes_max: usize) -> NetConfig {
        NetConfig {
            local,
            datagram_bytes_max,
            queue_datagrams_max: NET_QUEUE_DATAGRAMS_DEFAULT,
        }
    }
}

/// Counters of what an application network carried and refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Datagrams the application took out.
    pub taken: u64,
    /// Datagrams the application pushed in and Baton accepted.
    pub pushed: u64,
    /// Pushed datagrams refused: malformed, oversized, or the queue full.
    pub refused: u64,
    /// Outgoing datagrams discarded because their peer was reported unreachable.
    pub unreachable: u64,
    /// Partial datagrams dropped from reassembly (a fragment lost, or too many pending).
    pub incomplete: u64,
}

/// One outgoing datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetDatagram {
    /// Where it goes.
    pub peer: NetAddr,
    /// Its bytes, as the application's network must deliver them.
    pub bytes: Vec<u8>,
}

struct Partial {
    pieces: Vec<Option<Vec<u8>>>,
    received: usize,
}

#[derive(Default)]
struct State {
    outgoing: VecDeque<NetDatagram>,
    incoming: VecDeque<(SocketAddr, Vec<u8>)>,
    reassembly: HashMap<(NetAddr, u16), Partial>,
    reassembly_order: VecDeque<(NetAddr, u16)>,
    unreachable: HashSet<NetAddr>,
    next_datagram: u16,
    /// quinn's receiver, waiting for an incoming datagram.
    receiver: Option<Waker>,
    /// quinn's senders, waiting for room in the outgoing queue.
    senders: Vec<Waker>,
    stats: NetStats,
}

struct Shared {
    config: NetConfig,
    state: Mutex<State>,
    /// Wakes an application task waiting in [`AppNet::next_outgoing`].
    outgoing: Notify,
}

/// The application's network as Baton sees it: cloneable, usable from any thread.
#[derive(Clone)]
pub struct AppNet {
    shared: Arc<Shared>,
}

impl fmt::Debug for AppNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppNet")
            .field("local", &self.shared.config.local)
            .finish_non_exhaustive()
    }
}

impl AppNet {
    /// A network sized by `config`.
    pub fn new(config: NetConfig) -> Result<AppNet, NetError> {
        let size = config.datagram_bytes_max;
        if !(NET_DATAGRAM_BYTES_MIN..=NET_DATAGRAM_BYTES_MAX).contains(&size) {
            return Err(NetError::DatagramSize(size));
        }
        if config.queue_datagrams_max == 0 {
            return Err(NetError::QueueSize);
        }
        Ok(AppNet {
            shared: Arc::new(Shared {
                config,
                state: Mutex::new(State::default()),
                outgoing: Notify::new(),
            }),
        })
    }

    /// This player's address.
    pub fn local(&self) -> &NetAddr {
        &self.shared.config.local
    }

    /// The largest datagram this network carries.
    pub fn datagram_bytes_max(&self) -> usize {
        self.shared.config.datagram_bytes_max
    }

    /// What the network carried and refused so far.
    pub fn stats(&self) -> NetStats {
        self.state().stats
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Nothing under this lock panics midway; a poisoned lock's data is consistent.
        self.shared
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The next datagram to send, if one waits. Never blocks.
    pub fn take_outgoing(&self) -> Option<NetDatagram> {
        pop(&mut self.state())
    }

    /// Copies the next datagram to send into `buffer` (which should hold
    /// [`datagram_bytes_max`](Self::datagram_bytes_max) bytes); returns its peer and
    /// length, or `None` if none waits. A datagram that does not fit stays queued.
    pub fn take_outgoing_into(
        &self,
        buffer: &mut [u8],
    ) -> Result<Option<(NetAddr, usize)>, NetError> {
        let mut state = self.state();
        let Some(next) = state.outgoing.front() else {
            return Ok(None);
        };
        if next.bytes.len() > buffer.len() {
            return Err(NetError::BufferTooSmall {
                capacity: buffer.len(),
                needed: next.bytes.len(),
            });
        }
        Ok(pop(&mut state).map(|datagram| {
            buffer[..datagram.bytes.len()].copy_from_slice(&datagram.bytes);
            (datagram.peer, datagram.bytes.len())
        }))
    }

    /// Waits for the next datagram to send (for an async application's send loop).
    pub async fn next_outgoing(&self) -> NetDatagram {
        loop {
            let notified = self.shared.outgoing.notified();
            if let Some(datagram) = self.take_outgoing() {
                return datagram;
            }
            notified.await;
        }
    }

    /// Hands Baton a datagram the application's network delivered from `from`.
    /// Refuses (and counts) datagrams that are empty, larger than the network declared, or
    /// not Baton's framing, and says [`NetError::WouldBlock`] while the incoming queue
    /// is full. What it accepts still has to pass QUIC's authentication before anything
    /// reads it.
    pub fn push_incoming(&self, from: &NetAddr, bytes: &[u8]) -> Result<(), NetError> {
        let mut state = self.state();
        let result = self.accept(&mut state, from, bytes);
        match &result {
            Ok(()) => state.stats.pushed += 1,
            Err(_) => state.stats.refused += 1,
        }
        result
    }

    fn accept(&self, state: &mut State, from: &NetAddr, bytes: &[u8]) -> Result<(), NetError> {
        let max = self.shared.config.datagram_bytes_max;
        if bytes.is_empty() || bytes.len() > max {
            return Err(NetError::DatagramLength {
                len: bytes.len(),
                max,
            });
        }
        if state.incoming.len() >= self.shared.config.queue_datagrams_max {
            return Err(NetError::WouldBlock);
        }
        // A peer that speaks is reachable again.
        state.unreachable.remove(from);
        let whole = match bytes[0] {
            WHOLE if bytes.len() > 1 => bytes[1..].to_vec(),
            WHOLE => return Err(NetError::Malformed("an empty datagram")),
            FRAGMENT => match reassemble(state, from, bytes)? {
                Some(whole) => whole,
                None => return Ok(()),
            },
            _ => return Err(NetError::Malformed("an unknown first byte")),
        };
        state.incoming.push_back((from.to_socket_addr(), whole));
        if let Some(waker) = state.receiver.take() {
            waker.wake();
        }
        Ok(())
    }

    /// The application's network says `peer` cannot be reached (the platform reported a
    /// closed session, a left lobby): datagrams queued for it are dropped, and new ones
    /// discarded until it is heard from again, so a dead peer never fills the queue that
    /// the live ones share. QUIC and Raft notice the silence as they would a crash.
    pub fn peer_unreachable(&self, peer: &NetAddr) {
        let mut state = self.state();
        state.unreachable.insert(peer.clone());
        let before = state.outgoing.len();
        state.outgoing.retain(|datagram| &datagram.peer != peer);
        let dropped = (before - state.outgoing.len()) as u64;
        state.stats.unreachable += dropped;
        if dropped > 0 {
            for waker in state.senders.drain(..) {
                waker.wake();
            }
        }
    }

    /// The socket quinn runs over.
    pub(crate) fn socket(&self) -> Arc<dyn AsyncUdpSocket> {
        Arc::new(NetSocket { net: self.clone() })
    }

    /// Queues one QUIC datagram for `to`, framed (and fragmented) for the network.
    fn send(&self, to: SocketAddr, contents: &[u8]) -> io::Result<()> {
        let Some(peer) = NetAddr::from_socket_addr(to) else {
            // An IP address in a session over an application network: the invite or address book mixes direct
            // QUIC with the application's network, which is refused at join; anything
            // still addressed so is dropped here, as an unroutable datagram would be.
            tracing::warn!(%to, "datagram for a non-application address dropped");
            return Ok(());
        };
        let mut state = self.state();
        if state.unreachable.contains(&peer) {
            state.stats.unreachable += 1;
            return Ok(());
        }
        let max = self.shared.config.datagram_bytes_max;
        let pieces = if contents.len() < max {
            1
        } else {
            contents.len().div_ceil(max - FRAGMENT_HEADER_BYTES)
        };
        if state.outgoing.len() + pieces > self.shared.config.queue_datagrams_max {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        if pieces == 1 {
            let mut bytes = Vec::with_capacity(contents.len() + 1);
            bytes.push(WHOLE);
            bytes.extend_from_slice(contents);
            state.outgoing.push_back(NetDatagram { peer, bytes });
        } else if pieces <= FRAGMENTS_MAX {
            let number = state.next_datagram;
            state.next_datagram = number.wrapping_add(1);
            for (index, piece) in contents.chunks(max - FRAGMENT_HEADER_BYTES).enumerate() {
                let mut bytes = Vec::with_capacity(piece.len() + FRAGMENT_HEADER_BYTES);
                bytes.push(FRAGMENT);
                bytes.extend_from_slice(&number.to_be_bytes());
                bytes.push(index as u8);
                bytes.push(pieces as u8);
                bytes.extend_from_slice(piece);
                state.outgoing.push_back(NetDatagram {
                    peer: peer.clone(),
                    bytes,
                });
            }
        } else {
            // Cannot happen with QUIC_DATAGRAM_BYTES and NET_DATAGRAM_BYTES_MIN; a
            // datagram that would is dropped as loss rather than sent malformed.
            tracing::warn!(
                len = contents.len(),
                "datagram too large for the network dropped"
            );
            return Ok(());
        }
        drop(state);
        self.shared.outgoing.notify_one();
        Ok(())
    }
}

/// Takes the next outgoing datagram, and wakes quinn's senders waiting for room.
fn pop(state: &mut State) -> Option<NetDatagram> {
    let datagram = state.outgoing.pop_front()?;
    state.stats.taken += 1;
    for waker in state.senders.drain(..) {
        waker.wake();
    }
    Some(datagram)
}

/// Adds one fragment; returns the whole datagram once every piece is in.
fn reassemble(
    state: &mut State,
    from: &NetAddr,
    bytes: &[u8],
) -> Result<Option<Vec<u8>>, NetError> {
    if bytes.len() <= FRAGMENT_HEADER_BYTES {
        return Err(NetError::Malformed("a truncated fragment"));
    }
    let number = u16::from_be_bytes([bytes[1], bytes[2]]);
    let (index, count) = (usize::from(bytes[3]), usize::from(bytes[4]));
    if !(2..=FRAGMENTS_MAX).contains(&count) || index >= count {
        return Err(NetError::Malformed("a fragment out of range"));
    }
    let key = (from.clone(), number);
    if !state.reassembly.contains_key(&key) {
        if state.reassembly.len() >= REASSEMBLY_MAX {
            if let Some(oldest) = state.reassembly_order.pop_front() {
                state.reassembly.remove(&oldest);
                state.stats.incomplete += 1;
            }
        }
        state.reassembly.insert(
            key.clone(),
            Partial {
                pieces: vec![None; count],
                received: 0,
            },
        );
        state.reassembly_order.push_back(key.clone());
    }
    let partial = state
        .reassembly
        .get_mut(&key)
        .ok_or(NetError::Malformed("a fragment without its datagram"))?;
    if partial.pieces.len() != count {
        return Err(NetError::Malformed(
            "fragments that disagree on their count",
        ));
    }
    if partial.pieces[index].is_none() {
        partial.pieces[index] = Some(bytes[FRAGMENT_HEADER_BYTES..].to_vec());
        partial.received += 1;
    }
    if partial.received < count {
        return Ok(None);
    }
    let partial = state
        .reassembly
        .remove(&key)
        .ok_or(NetError::Malformed("a fragment without its datagram"))?;
    state.reassembly_order.retain(|pending| pending != &key);
    let whole: Vec<u8> = partial.pieces.into_iter().flatten().flatten().collect();
    if whole.len() > QUIC_DATAGRAM_BYTES {
        return Err(NetError::Malformed("fragments longer than a QUIC datagram"));
    }
    Ok(Some(whole))
}

/// quinn's view of an application network: a socket whose packets go to and come from the application.
struct NetSocket {
    net: AppNet,
}

impl fmt::Debug for NetSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NetSocket")
            .field("local", self.net.local())
            .finish()
    }
}

struct NetPoller {
    net: AppNet,
}

impl fmt::Debug for NetPoller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NetPoller")
    }
}

impl UdpPoller for NetPoller {
    fn poll_writable(self: Pin<&mut Self>, cx: &mut Context) -> Poll<io::Result<()>> {
        let mut state = self.net.state();
        if state.outgoing.len() + FRAGMENTS_MAX <= self.net.shared.config.queue_datagrams_max {
            Poll::Ready(Ok(()))
        } else {
            state.senders.push(cx.waker().clone());
            Poll::Pending
        }
    }
}

impl AsyncUdpSocket for NetSocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        Box::pin(NetPoller {
            net: self.net.clone(),
        })
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        match transmit.segment_size {
            Some(size) if size < transmit.contents.len() => {
                for segment in transmit.contents.chunks(size) {
                    self.net.send(transmit.destination, segment)?;
                }
                Ok(())
            }
            _ => self.net.send(transmit.destination, transmit.contents),
        }
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let mut state = self.net.state();
        let mut filled = 0;
        while filled < bufs.len().min(meta.len()) {
            let Some((from, datagram)) = state.incoming.pop_front() else {
                break;
            };
            if datagram.len() > bufs[filled].len() {
                continue; // larger than QUIC reads: dropped, as a kernel would truncate
            }
            bufs[filled][..datagram.len()].copy_from_slice(&datagram);
            meta[filled] = RecvMeta {
                addr: from,
                len: datagram.len(),
                stride: datagram.len(),
                ecn: None,
                dst_ip: None,
            };
            filled += 1;
        }
        if filled > 0 {
            return Poll::Ready(Ok(filled));
        }
        state.receiver = Some(cx.waker().clone());
        Poll::Pending
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.net.local().to_socket_addr())
    }

    fn max_transmit_segments(&self) -> usize {
        1
    }

    fn max_receive_segments(&self) -> usize {
        1
    }

    fn may_fragment(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(name: &[u8], size: usize) -> AppNet {
        AppNet::new(NetConfig::new(NetAddr::new(name).unwrap(), size)).unwrap()
    }

    #[test]
    fn addresses_round_trip_through_socket_addresses() {
        for bytes in [&b"a"[..], &76561198000000000u64.to_le_bytes(), &[0xab; 16]] {
            let addr = NetAddr::new(bytes).unwrap();
            assert_eq!(
                NetAddr::from_socket_addr(addr.to_socket_addr()),
                Some(addr.clone())
            );
            assert_eq!(addr.as_bytes(), bytes);
        }
        // "a" and "a\0" are different players.
        let short = NetAddr::new(b"a").unwrap();
        let long = NetAddr::new(b"a\0").unwrap();
        assert_ne!(short.to_socket_addr(), long.to_socket_addr());
        assert_eq!(
            NetAddr::from_socket_addr("127.0.0.1:4000".parse().unwrap()),
            None
        );
        assert_eq!(
            NetAddr::from_socket_addr("[fd00::1]:4000".parse().unwrap()),
            None
        );
        assert_eq!(NetAddr::new(&[]), Err(NetError::AddrLength(0)));
        assert_eq!(NetAddr::new(&[1; 17]), Err(NetError::AddrLength(17)));
        assert_eq!(NetAddr::new(&[0; 4]), Err(NetError::AddrReserved));
    }

    fn carry(from: &AppNet, to: &AppNet) -> usize {
        let mut carried = 0;
        while let Some(datagram) = from.take_outgoing() {
            to.push_incoming(from.local(), &datagram.bytes).unwrap();
            carried += 1;
        }
        carried
    }

    #[test]
    fn small_networks_carry_quic_datagrams_in_fragments() {
        let (a, b) = (net(b"alice", 300), net(b"bob", 300));
        let datagram: Vec<u8> = (0..QUIC_DATAGRAM_BYTES).map(|i| i as u8).collect();
        a.send(b.local().to_socket_addr(), &datagram).unwrap();
        assert_eq!(carry(&a, &b), 5);
        let state = b.state();
        assert_eq!(state.incoming.len(), 1);
        assert_eq!(state.incoming[0], (a.local().to_socket_addr(), datagram));
    }

    #[test]
    fn garbage_is_refused_and_counted_without_reaching_quic() {
        let b = net(b"bob", 1400);
        let from = NetAddr::new(b"mallory").unwrap();
        for bad in [
            &[][..],
            &[WHOLE],
            &[0x7f, 1, 2],
            &[FRAGMENT, 0, 1],
            &[FRAGMENT, 0, 1, 9, 2, 0],
            &[FRAGMENT, 0, 1, 0, 200, 0],
            &[FRAGMENT, 0, 1, 0, 1, 0],
        ] {
            assert!(b.push_incoming(&from, bad).is_err(), "{bad:?} accepted");
        }
        assert!(matches!(
            b.push_incoming(&from, &vec![WHOLE; 1401]),
            Err(NetError::DatagramLength {
                len: 1401,
                max: 1400
            })
        ));
        assert_eq!(b.stats().refused, 8);
        assert!(b.state().incoming.is_empty());
    }

    #[test]
    fn fragments_that_never_complete_are_bounded() {
        let b = net(b"bob", 300);
        let from = NetAddr::new(b"mallory").unwrap();
        for number in 0..(REASSEMBLY_MAX as u16 * 2) {
            let [hi, lo] = number.to_be_bytes();
            b.push_incoming(&from, &[FRAGMENT, hi, lo, 0, 2, 42])
                .unwrap();
        }
        let state = b.state();
        assert_eq!(state.reassembly.len(), REASSEMBLY_MAX);
        assert_eq!(state.stats.incomplete, REASSEMBLY_MAX as u64);
        assert!(state.incoming.is_empty());
    }

    #[test]
    fn a_full_queue_pushes_back_and_an_unreachable_peer_frees_it() {
        let a = AppNet::new(NetConfig {
            queue_datagrams_max: 2,
            ..NetConfig::new(NetAddr::new(b"alice").unwrap(), 1400)
        })
        .unwrap();
        let dead = NetAddr::new(b"carol").unwrap();
        a.send(dead.to_socket_addr(), b"one").unwrap();
        a.send(dead.to_socket_addr(), b"two").unwrap();
        let full = a.send(dead.to_socket_addr(), b"three").unwrap_err();
        assert_eq!(full.kind(), io::ErrorKind::WouldBlock);
        a.peer_unreachable(&dead);
        assert!(a.take_outgoing().is_none());
        a.send(dead.to_socket_addr(), b"four").unwrap();
        assert!(a.take_outgoing().is_none(), "discarded while unreachable");
        assert_eq!(a.stats().unreachable, 3);
        // Heard from again: reachable.
        a.push_incoming(&dead, &[WHOLE, 1]).unwrap();
        a.send(dead.to_socket_addr(), b"five").unwrap();
        assert_eq!(a.take_outgoing().map(|d| d.bytes), Some(b"\0five".to_vec()));
    }
}
