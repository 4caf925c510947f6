//! The node's side of the Internet services: registers with the rendezvous service from the
//! shared socket, learns its reflexive address, and asks the transport to punch toward every
//! member the service names.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use quinn::AsyncUdpSocket;
use tokio::sync::{mpsc, watch};

use super::rendezvous::{self, Candidate, CandidateKind, ToClient, ToServer, CANDIDATES_MAX};
use super::socket::{send_service, Routes, ServiceInbox};
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
pub(crate) type Punch = (NodeId, Vec<Candidate>);

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
    punch: mpsc::Sender<Punch>,
}

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
        punch: mpsc::Sender<Punch>,
    ) -> (Agent, watch::Receiver<InternetStatus>) {
        routes.add_service(config.rendezvous);
        let (status, status_rx) = watch::channel(InternetStatus::default());
        let agent = Agent {
            host_candidates: host_candidates(local),
            config,
            socket,
            routes,
            inbox,
            credentials,
            node,
            status,
            punch,
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
        if let Err(e) = send_service(&self.socket, self.config.rendezvous, &bytes).await {
            tracing::debug!(error = %e, "registration not sent");
        }
    }

    /// Registers until the service answers or `first_registration_timeout` passes, so the
    /// node knows its public address before it announces one.
    pub(crate) async fn first_registration(&mut self) {
        let deadline = tokio::time::Instant::now() + self.config.first_registration_timeout;
        let mut resend = tokio::time::interval(FIRST_REGISTRATION_RESEND);
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => {
                    tracing::warn!(rendezvous = %self.config.rendezvous, "no answer from the rendezvous service yet; going on without a public address");
                    return;
                }
                _ = resend.tick() => self.register().await,
                datagram = self.inbox.recv() => {
                    let Some((from, bytes)) = datagram else { return };
                    self.on_datagram(from, &bytes);
                    if self.status.borrow().registered {
                        return;
                    }
                }
            }
        }
    }

    /// Runs until the transport goes away (its punch receiver is dropped).
    pub(crate) async fn run(mut self) {
        let mut refresh = tokio::time::interval(self.config.register_interval);
        refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = refresh.tick() => self.register().await,
                datagram = self.inbox.recv() => match datagram {
                    Some((from, bytes)) => self.on_datagram(from, &bytes),
                    None => return,
                },
                _ = self.punch.closed() => return,
            }
        }
    }

    fn on_datagram(&mut self, from: SocketAddr, bytes: &[u8]) {
        if from != self.config.rendezvous {
            tracing::trace!(%from, "service datagram from an unexpected address ignored");
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
                session, observed, ..
            } if session == ours => {
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
                if self.punch.try_send((node, candidates)).is_err() {
                    tracing::debug!("punch queue full; the next registration brings it again");
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
