//! The node's side of the Internet services: registers with the rendezvous service from the
//! shared socket, learns its reflexive address, and asks the transport to punch toward every
//! member the service names.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use quinn::AsyncUdpSocket;
use tokio::sync::{mpsc, watch, Notify};

use super::rendezvous::{
    self, Candidate, CandidateKind, ToClient, ToServer, TurnGrant, CANDIDATES_MAX,
};
use super::socket::{send_service, Routes, ServiceInbox, CHANNEL_FIRST, CHANNEL_LAST};
use super::stun::{self, attr, Class, Message};
use super::InternetConfig;
use crate::raft::NodeId;
use crate::transport::SessionCredentials;

/// What the node knows of its place on the Internet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InternetStatus {
    /// The rendezvous service answered our last registration in time.
    pub registered: bool,
    /// Where the rendezvous service sees us (our NAT's mapping toward it).
    pub observed: Option<SocketAddr>,
    /// Our address on the TURN server, when we relay.
    pub relayed: Option<SocketAddr>,
    /// The rendezvous service instance in use.
    pub rendezvous: Option<SocketAddr>,
    /// What the rendezvous service last refused, if it did.
    pub refused: Option<rendezvous::Refusal>,
}

impl InternetStatus {
    /// Where other players should dial us: the relayed address when we relay, else the
    /// reflexive one.
    pub fn public_addr(&self) -> Option<SocketAddr> {
        self.relayed.or(self.observed)
    }
}

/// A request to the transport: dial `node` at these candidates now (the other side does
/// the same toward us).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Punch {
    pub(crate) node: NodeId,
    pub(crate) candidates: Vec<Candidate>,
    /// The node announced other candidates than before (its NAT rebound, it changed
    /// networks): a link to it at an address it no longer has is dead even if QUIC has not
    /// noticed yet.
    pub(crate) moved: bool,
}

/// What the agent asks of the transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Request {
    /// Punch toward a member.
    Punch(Punch),
    /// Our own public address changed: connections peers dialed to us cannot follow (a
    /// QUIC client drops packets from anywhere but its server's address), the ones we
    /// dialed migrate once the peers' NATs let our new address in.
    Moved {
        /// Where the rendezvous service saw us before.
        from: SocketAddr,
        /// Where it sees us now.
        to: SocketAddr,
    },
}

/// Punch requests waiting for the transport; more are dropped (the next registration
/// brings them again).
pub(crate) const PUNCH_QUEUE_MAX: usize = 64;

pub(crate) struct Agent {
    config: InternetConfig,
    socket: Arc<dyn AsyncUdpSocket>,
    routes: Routes,
    inbox: ServiceInbox,
    credentials: SessionCredentials,
    node: NodeId,
    host_candidates: Vec<Candidate>,
    status: watch::Sender<InternetStatus>,
    punch: mpsc::Sender<Request>,
    /// The candidates each member last announced, to tell a member that moved from one
    /// that only refreshed (at most `MEMBERS_PER_SESSION_MAX`).
    announced: HashMap<NodeId, Vec<Candidate>>,
    /// The rendezvous service instances, in the order they are tried.
    instances: Vec<SocketAddr>,
    /// Which of `instances` we register on.
    current: usize,
    /// Registrations sent to the current instance since it last answered.
    unanswered: u32,
    /// The instance that told us our observed address: another one may see another
    /// address (a symmetric NAT) without us having moved.
    observed_via: Option<SocketAddr>,
    /// TURN credentials from the rendezvous service, if the studio runs a TURN server.
    grant: Option<TurnGrant>,
    /// Whether the NAT check against the TURN server was done.
    nat_checked: bool,
    /// Our allocation, once we relay.
    allocation: Option<Allocation>,
    /// Service datagrams read while waiting for a TURN answer, handled after it.
    deferred: VecDeque<(SocketAddr, Vec<u8>)>,
    /// Peers to punch toward once their channels are bound (when we relay), or once we
    /// know whether we relay (during the first registration).
    pending_peers: VecDeque<Punch>,
    /// Whether the first registration and the NAT check are over.
    settled: bool,
    /// The bound address, to list this machine's addresses again when its network changes.
    local: SocketAddr,
    /// Raised by the game when the device's network changed ([`NetworkSignal`]).
    network: Arc<Notify>,
    /// Registrations the service answered, to tell whether one came after a network change.
    answers: u64,
    /// Our public address changed while we relay: the allocation must be made again.
    reallocate: bool,
}

/// The game's word that the device's network changed (Wi-Fi to mobile data, a cable
/// plugged in, a VPN up): the agent registers at once instead of at its next interval, so
/// the others learn the new address in a round trip rather than in up to
/// `register_interval`. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub(crate) struct NetworkSignal(Arc<Notify>);

impl NetworkSignal {
    /// Wakes the agent; a signal raised while it is busy is kept until it looks.
    pub(crate) fn raise(&self) {
        self.0.notify_one();
    }
}

/// Registrations sent after a network change, `FIRST_REGISTRATION_RESEND` apart, until one
/// is answered: the first datagrams on a network that is just coming up are often lost.
const NETWORK_CHANGE_REGISTRATIONS: u32 = 8;

/// A TURN allocation and the channels bound on it.
struct Allocation {
    server: SocketAddr,
    username: String,
    realm: Vec<u8>,
    nonce: Vec<u8>,
    key: Vec<u8>,
    lifetime: Duration,
    channels: HashMap<SocketAddr, u16>,
    next_channel: u16,
}

/// Transmissions of one STUN request before giving up (RFC 8489's Rc is 7; a game cannot
/// wait that long at start-up).
const STUN_TRIES: u32 = 5;
/// First retransmission timeout of a STUN request; doubles on each try.
const STUN_RTO: Duration = Duration::from_millis(250);
/// REQUESTED-TRANSPORT value for UDP.
const TRANSPORT_UDP: u8 = 17;

impl Agent {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        config: InternetConfig,
        socket: Arc<dyn AsyncUdpSocket>,
        routes: Routes,
        inbox: ServiceInbox,
        credentials: SessionCredentials,
        node: NodeId,
        local: SocketAddr,
        punch: mpsc::Sender<Request>,
        network: NetworkSignal,
    ) -> (Agent, watch::Receiver<InternetStatus>) {
        let instances = config.instances();
        for instance in &instances {
            routes.add_service(*instance);
        }
        let (status, status_rx) = watch::channel(InternetStatus {
            rendezvous: Some(config.rendezvous),
            ..InternetStatus::default()
        });
        let agent = Agent {
            instances,
            current: 0,
            unanswered: 0,
            observed_via: None,
            host_candidates: host_candidates(local),
            config,
            socket,
            routes,
            inbox,
            credentials,
            node,
            status,
            punch,
            announced: HashMap::new(),
            grant: None,
            nat_checked: false,
            allocation: None,
            deferred: VecDeque::new(),
            pending_peers: VecDeque::new(),
            settled: false,
            local,
            network: network.0,
            answers: 0,
            reallocate: false,
        };
        (agent, status_rx)
    }

    fn candidates(&self) -> Vec<Candidate> {
        let status = self.status.borrow();
        let relayed = status.relayed.map(|addr| Candidate {
            addr,
            kind: CandidateKind::Relayed,
        });
        // The relayed candidate first: a node that relays cannot be reached any other way.
        relayed
            .into_iter()
            .chain(self.host_candidates.iter().copied())
            .take(CANDIDATES_MAX)
            .collect()
    }

    async fn register(&self) {
        let message = ToServer::Register {
            session: self.credentials.session_id.0,
            key: self.credentials.secret.rendezvous_key().0,
            node: self.node,
            candidates: self.candidates(),
        };
        let Some(bytes) = rendezvous::encode(&message) else {
            tracing::error!("registration does not fit a datagram");
            return;
        };
        // The earlier instances too, while we are on a later one: the earliest that answers
        // is the one to be on, so members that had to move apart come back together.
        for instance in &self.instances[..=self.current] {
            if let Err(e) = send_service(&self.socket, *instance, &bytes).await {
                tracing::debug!(error = %e, %instance, "registration not sent");
            }
        }
    }

    fn rendezvous(&self) -> SocketAddr {
        self.instances[self.current]
    }

    /// Counts one more registration to the current instance; after
    /// [`REGISTRATIONS_UNANSWERED_MAX`] of them without an answer it is taken for dead and
    /// the next instance is used. The members of a session all see the same instance go
    /// silent and all hold the same list (the invite's), so they move the same way.
    fn fail_over_if_silent(&mut self) {
        self.unanswered += 1;
        if self.unanswered <= REGISTRATIONS_UNANSWERED_MAX || self.instances.len() < 2 {
            return;
        }
        let silent = self.rendezvous();
        self.current = (self.current + 1) % self.instances.len();
        self.unanswered = 1;
        let next = self.rendezvous();
        tracing::warn!(%silent, %next, "the rendezvous instance stopped answering; registering on the next one");
        self.use_instance(next);
    }

    fn use_instance(&mut self, instance: SocketAddr) {
        self.status.send_modify(|status| {
            status.registered = false;
            status.rendezvous = Some(instance);
        });
    }

    /// Registers until the service answers or `first_registration_timeout` passes, so the
    /// node knows its public address before it announces one.
    pub(crate) async fn first_registration(&mut self) {
        let deadline = tokio::time::Instant::now() + self.config.first_registration_timeout;
        let mut resend = tokio::time::interval(FIRST_REGISTRATION_RESEND);
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => {
                    tracing::warn!(rendezvous = %self.rendezvous(), "no answer from the rendezvous service yet; going on without a public address");
                    return;
                }
                _ = resend.tick() => self.register().await,
                datagram = self.inbox.recv() => {
                    let Some((from, bytes)) = datagram else { return };
                    self.on_datagram(from, &bytes);
                    if self.status.borrow().registered {
                        break;
                    }
                }
            }
        }
        self.check_nat_and_relay().await;
        self.settled = true;
    }

    /// With a TURN server at hand: asks it where it sees us. The same mapping as the
    /// rendezvous service saw means the NAT maps endpoint-independently and punching works;
    /// another one means every destination gets its own mapping (a symmetric NAT), so we
    /// allocate a relay and tell the service our relayed address.
    async fn check_nat_and_relay(&mut self) {
        let (Some(grant), false) = (self.grant.clone(), self.nat_checked) else {
            return;
        };
        self.nat_checked = true;
        self.routes.add_service(grant.server);
        let Some(answer) = self
            .transact(grant.server, Message::request(stun::BINDING), None)
            .await
        else {
            tracing::warn!(server = %grant.server, "no answer from the TURN server's STUN");
            return;
        };
        let mapped = answer.xor_addr(attr::XOR_MAPPED_ADDRESS);
        let observed = self.status.borrow().observed;
        if mapped.is_some() && mapped == observed {
            tracing::info!(
                ?mapped,
                "the NAT maps endpoint-independently: punching will do"
            );
            return;
        }
        tracing::info!(
            ?mapped,
            ?observed,
            "the NAT maps each destination apart: relaying through TURN"
        );
        match self.allocate(&grant).await {
            Some(allocation) => {
                let relayed = allocation.1;
                self.allocation = Some(allocation.0);
                self.status
                    .send_modify(|status| status.relayed = Some(relayed));
                tracing::info!(%relayed, "TURN allocation made");
                self.register().await;
            }
            None => {
                tracing::warn!(server = %grant.server, "TURN allocation failed; staying unreachable for peers that cannot punch")
            }
        }
    }

    /// Our NAT mapping changed while we relay. The TURN server ties an allocation to the
    /// client's address, so ours now answers somebody else's mapping, if anyone's: check
    /// the NAT again and allocate anew. The new relayed address reaches the others with
    /// the registration that follows, and they mend their links as for any move.
    async fn reallocate(&mut self) {
        self.reallocate = false;
        tracing::info!("our public address changed while relaying: allocating a new relay");
        self.allocation = None;
        self.routes.clear_channels();
        self.status.send_modify(|status| status.relayed = None);
        self.nat_checked = false;
        self.check_nat_and_relay().await;
        if self.allocation.is_none() {
            // A NAT that now maps endpoint-independently needs no relay: say so at once.
            self.register().await;
        }
    }

    async fn allocate(&mut self, grant: &TurnGrant) -> Option<(Allocation, SocketAddr)> {
        let bare = Message::request(stun::ALLOCATE)
            .with(attr::REQUESTED_TRANSPORT, vec![TRANSPORT_UDP, 0, 0, 0]);
        let challenge = self.transact(grant.server, bare, None).await?;
        if challenge.class != Class::Error || challenge.error_code() != Some(401) {
            tracing::warn!(code = ?challenge.error_code(), "unexpected answer to an unauthenticated Allocate");
            return None;
        }
        let realm = challenge.get(attr::REALM)?.to_vec();
        let mut allocation = Allocation {
            server: grant.server,
            username: grant.username.clone(),
            key: stun::long_term_key(
                &grant.username,
                &String::from_utf8_lossy(&realm),
                &grant.password,
            ),
            realm,
            nonce: challenge.get(attr::NONCE)?.to_vec(),
            lifetime: Duration::from_secs(600),
            channels: HashMap::new(),
            next_channel: CHANNEL_FIRST,
        };
        let answer = self
            .transact_authed(
                &mut allocation,
                |m| m.with(attr::REQUESTED_TRANSPORT, vec![TRANSPORT_UDP, 0, 0, 0]),
                stun::ALLOCATE,
            )
            .await?;
        let relayed = answer.xor_addr(attr::XOR_RELAYED_ADDRESS)?;
        if let Some(seconds) = answer.get(attr::LIFETIME).and_then(|v| v.try_into().ok()) {
            allocation.lifetime = Duration::from_secs(u64::from(u32::from_be_bytes(seconds)));
        }
        Some((allocation, relayed))
    }

    /// An authenticated request built by `build` on a fresh message of `method`; a stale
    /// nonce (438) is taken from the answer and the request sent once more.
    async fn transact_authed(
        &mut self,
        allocation: &mut Allocation,
        build: impl Fn(Message) -> Message,
        method: u16,
    ) -> Option<Message> {
        for _ in 0..2 {
            let request = build(Message::request(method))
                .with(attr::USERNAME, allocation.username.as_bytes().to_vec())
                .with(attr::REALM, allocation.realm.clone())
                .with(attr::NONCE, allocation.nonce.clone());
            let key = allocation.key.clone();
            let answer = self
                .transact(allocation.server, request, Some(&key))
                .await?;
            match (answer.class, answer.error_code()) {
                (Class::Success, _) => return Some(answer),
                (Class::Error, Some(438)) => {
                    allocation.nonce = answer.get(attr::NONCE)?.to_vec();
                }
                (_, code) => {
                    tracing::warn!(method, ?code, "TURN request refused");
                    return None;
                }
            }
        }
        None
    }

    /// Sends `request` to `server` and waits for its answer, retransmitting with a doubling
    /// timeout. Other service datagrams that arrive meanwhile are kept for later.
    async fn transact(
        &mut self,
        server: SocketAddr,
        request: Message,
        key: Option<&[u8]>,
    ) -> Option<Message> {
        let bytes = request.encode(key);
        let mut rto = STUN_RTO;
        for _ in 0..STUN_TRIES {
            if let Err(e) = send_service(&self.socket, server, &bytes).await {
                tracing::debug!(error = %e, "STUN request not sent");
            }
            let deadline = tokio::time::Instant::now() + rto;
            loop {
                let datagram = tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => break,
                    datagram = self.inbox.recv() => datagram?,
                };
                let (from, payload) = datagram;
                let ours = from == server
                    && Message::decode(&payload).is_ok_and(|answer| {
                        answer.transaction == request.transaction
                            && matches!(answer.class, Class::Success | Class::Error)
                    });
                if ours {
                    // A forged answer may come first; the server's own may still follow.
                    match stun::check_answer(&payload, key) {
                        Ok(answer) => return Some(answer),
                        Err(e) => {
                            tracing::warn!(%server, method = request.method, error = %e, "TURN answer refused");
                            continue;
                        }
                    }
                }
                if self.deferred.len() < super::socket::SERVICE_INBOX_DATAGRAMS_MAX {
                    self.deferred.push_back((from, payload));
                }
            }
            rto *= 2;
        }
        None
    }

    /// Binds a channel to `peer` on our allocation (or refreshes the binding); the socket
    /// routes traffic for `peer` through it from then on.
    async fn bind_channel(&mut self, peer: SocketAddr) -> bool {
        let Some(mut allocation) = self.allocation.take() else {
            return false;
        };
        let number = match allocation.channels.get(&peer) {
            Some(number) => *number,
            None if allocation.next_channel <= CHANNEL_LAST => allocation.next_channel,
            None => {
                self.allocation = Some(allocation);
                return false;
            }
        };
        let answer = self
            .transact_authed(
                &mut allocation,
                |m| {
                    let peer_attr = stun::encode_xor_addr(peer, &m.transaction);
                    let channel = number.to_be_bytes();
                    m.with(attr::CHANNEL_NUMBER, vec![channel[0], channel[1], 0, 0])
                        .with(attr::XOR_PEER_ADDRESS, peer_attr)
                },
                stun::CHANNEL_BIND,
            )
            .await;
        let bound = answer.is_some();
        if bound {
            if allocation.channels.insert(peer, number).is_none() {
                allocation.next_channel += 1;
            }
            self.routes.bind_channel(allocation.server, number, peer);
        }
        self.allocation = Some(allocation);
        bound
    }

    /// Refreshes the allocation and every channel (permissions last 5 min, channels 10).
    async fn refresh_relay(&mut self) {
        let Some(mut allocation) = self.allocation.take() else {
            return;
        };
        let lifetime = u32::try_from(allocation.lifetime.as_secs()).unwrap_or(600);
        let refreshed = self
            .transact_authed(
                &mut allocation,
                |m| m.with(attr::LIFETIME, lifetime.to_be_bytes().to_vec()),
                stun::REFRESH,
            )
            .await;
        if refreshed.is_none() {
            tracing::warn!("TURN refresh failed");
        }
        let peers: Vec<SocketAddr> = allocation.channels.keys().copied().collect();
        self.allocation = Some(allocation);
        for peer in peers {
            self.bind_channel(peer).await;
        }
    }

    /// Peers learned while relaying: bind a channel to each of their public candidates,
    /// then punch.
    async fn punch_pending(&mut self) {
        // Handling a deferred datagram may queue a peer, and binding its channel may defer
        // datagrams: bounded by the two queues' limits.
        while !self.pending_peers.is_empty() || !self.deferred.is_empty() {
            self.punch_queued().await;
        }
    }

    async fn punch_queued(&mut self) {
        while let Some(punch) = self.pending_peers.pop_front() {
            for candidate in &punch.candidates {
                if candidate.kind != CandidateKind::Host {
                    self.bind_channel(candidate.addr).await;
                }
            }
            self.request(Request::Punch(punch));
        }
        while let Some((from, bytes)) = self.deferred.pop_front() {
            self.on_datagram(from, &bytes);
        }
    }

    /// Runs until the transport goes away (its punch receiver is dropped).
    pub(crate) async fn run(mut self) {
        let mut refresh = tokio::time::interval(self.config.register_interval);
        refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let relay_every = self.allocation.as_ref().map_or(RELAY_REFRESH_MAX, |a| {
            (a.lifetime / 2).min(RELAY_REFRESH_MAX)
        });
        let mut relay_refresh = tokio::time::interval(relay_every);
        relay_refresh.tick().await;
        // After a network change: registrations still to send quickly, and when.
        let mut urgent = 0;
        let mut answers_before_change = 0;
        let mut next_urgent = tokio::time::Instant::now();
        loop {
            // Before binding channels for the peers the service names: on the old
            // allocation they would only wait out their retransmissions.
            if self.reallocate {
                self.reallocate().await;
            }
            // Answers that arrived while a TURN request was waiting, and peers to bind.
            self.punch_pending().await;
            tokio::select! {
                _ = refresh.tick() => {
                    self.fail_over_if_silent();
                    self.register().await;
                    // A TURN server named only later (or unanswered at start) is tried now.
                    self.check_nat_and_relay().await;
                }
                _ = self.network.notified() => {
                    tracing::info!("the network changed: registering now");
                    self.host_candidates = host_candidates(self.local);
                    answers_before_change = self.answers;
                    urgent = NETWORK_CHANGE_REGISTRATIONS;
                    next_urgent = tokio::time::Instant::now();
                    refresh.reset();
                }
                _ = tokio::time::sleep_until(next_urgent), if urgent > 0 => {
                    if self.answers > answers_before_change {
                        urgent = 0;
                    } else {
                        urgent -= 1;
                        self.register().await;
                        next_urgent = tokio::time::Instant::now() + FIRST_REGISTRATION_RESEND;
                    }
                }
                _ = relay_refresh.tick() => self.refresh_relay().await,
                datagram = self.inbox.recv() => match datagram {
                    Some((from, bytes)) => self.on_datagram(from, &bytes),
                    None => return,
                },
                _ = self.punch.closed() => return,
            }
        }
    }

    fn request(&self, request: Request) {
        if self.punch.try_send(request).is_err() {
            tracing::debug!("punch queue full; the next registration brings it again");
        }
    }

    /// Whether `node` announces other candidates than it did last time.
    fn note_announced(&mut self, node: NodeId, candidates: &[Candidate]) -> bool {
        match self.announced.get_mut(&node) {
            Some(known) if known.as_slice() == candidates => false,
            Some(known) => {
                *known = candidates.to_vec();
                true
            }
            None => {
                if self.announced.len() < rendezvous::MEMBERS_PER_SESSION_MAX {
                    self.announced.insert(node, candidates.to_vec());
                }
                false
            }
        }
    }

    fn on_datagram(&mut self, from: SocketAddr, bytes: &[u8]) {
        if self.allocation.as_ref().is_some_and(|a| a.server == from) {
            // Data indications (peers without a channel) and late answers: nothing to do,
            // every peer we talk to through the relay has a channel first.
            tracing::trace!(%from, "TURN datagram outside a transaction ignored");
            return;
        }
        let Some(instance) = self.instances.iter().position(|i| *i == from) else {
            tracing::trace!(%from, "service datagram from an unexpected address ignored");
            return;
        };
        if instance > self.current {
            tracing::trace!(%from, "late datagram from a rendezvous instance we left ignored");
            return;
        }
        let message = match rendezvous::decode::<ToClient>(bytes) {
            Ok(message) => message,
            Err(e) => {
                tracing::debug!(%from, error = %e, "bad datagram from the rendezvous service");
                return;
            }
        };
        let ours = self.credentials.session_id.0;
        match message {
            ToClient::Registered {
                session,
                observed,
                turn,
                ..
            } if session == ours => {
                if turn.is_some() {
                    self.grant = turn;
                }
                if instance < self.current {
                    tracing::info!(%from, "an earlier rendezvous instance answers again: back on it");
                    self.current = instance;
                    self.use_instance(from);
                }
                self.unanswered = 0;
                self.answers += 1;
                let before = self.status.borrow().observed;
                let same_instance = self.observed_via.replace(from) == Some(from);
                if let Some(before) = before.filter(|before| same_instance && *before != observed) {
                    tracing::info!(from = %before, to = %observed, "our public address changed");
                    self.request(Request::Moved {
                        from: before,
                        to: observed,
                    });
                    self.reallocate |= self.allocation.is_some();
                }
                self.status.send_if_modified(|status| {
                    let changed = !status.registered || status.observed != Some(observed);
                    if changed {
                        tracing::info!(%observed, "registered with the rendezvous service");
                    }
                    status.registered = true;
                    status.observed = Some(observed);
                    status.refused = None;
                    changed
                });
            }
            ToClient::Peer {
                session,
                node,
                candidates,
            } if session == ours && node != self.node => {
                for candidate in &candidates {
                    if candidate.kind == CandidateKind::Relayed {
                        self.routes.mark_relayed_peer(candidate.addr);
                    }
                }
                let moved = self.note_announced(node, &candidates);
                let punch = Punch {
                    node,
                    candidates,
                    moved,
                };
                // Punching before we know whether we relay would dial through a NAT that
                // cannot carry it, and hold the peer's punch round for a whole handshake
                // timeout.
                if !self.settled || self.allocation.is_some() {
                    if self.pending_peers.len() < PUNCH_QUEUE_MAX {
                        self.pending_peers.push_back(punch);
                    }
                } else {
                    self.request(Request::Punch(punch));
                }
            }
            ToClient::Refused { session, reason } if session == ours => {
                tracing::warn!(?reason, "the rendezvous service refused our registration");
                self.status.send_modify(|status| {
                    status.registered = false;
                    status.refused = Some(reason);
                });
            }
            other => tracing::debug!(?other, "rendezvous message for another session ignored"),
        }
    }
}

/// Longest wait between two refreshes of a TURN allocation and its channels (permissions
/// expire after 5 minutes, RFC 8656 §9).
const RELAY_REFRESH_MAX: Duration = Duration::from_secs(4 * 60);

/// Registrations an instance may leave unanswered before the next one is used (with the
/// default 5 s interval: about 15 s, half the service's 30 s expiry).
const REGISTRATIONS_UNANSWERED_MAX: u32 = 2;

/// Wait between registrations until the first answer.
const FIRST_REGISTRATION_RESEND: Duration = Duration::from_millis(300);

/// Addresses of this machine at the bound port: the bound IP if it is specific, otherwise
/// the interfaces' IPv4 addresses (not loopback: a remote player dialing its own loopback
/// would reach nothing or something else).
fn host_candidates(local: SocketAddr) -> Vec<Candidate> {
    let host = |addr| Candidate {
        addr,
        kind: CandidateKind::Host,
    };
    if !local.ip().is_unspecified() {
        return vec![host(local)];
    }
    let ips = if_addrs::get_if_addrs().unwrap_or_default();
    ips.into_iter()
        .map(|interface| interface.ip())
        .filter(|ip| ip.is_ipv4() && !ip.is_loopback())
        .map(|ip| host(SocketAddr::new(ip, local.port())))
        .take(CANDIDATES_MAX - 1)
        .collect()
}
