//! The node task: the single owner of the core. Everything that changes the core goes
//! through this loop, so the core needs no locks and its outputs are handled in order.

use super::address::dialable_addr;
use super::applier::{Applied, Applier};
use super::persist::{spawn_persister, PersistDone, PersistJob};
use super::wire::{bind_client_id, encode, LogCommand, Wire};
use super::{
    Bootstrap, Command, JoinState, NodeConfig, NodeError, NodeEvent, NodeStatus, ReadFn, Reply,
    StateMachine,
};
use crate::internet::NetworkSignal;
use crate::raft::{
    self, ClientTag, Entry, Index, Membership, MembershipChange, Message, NodeId, PersistedState,
    ProposalId, RaftNode, Ready, Role, SoftState,
};
use crate::storage::{newest_snapshot, open_storage, PersistBatch};
use crate::transport::{Identity, SessionCredentials, Transport, TransportError, TransportEvent};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::MissedTickBehavior;
use tracing::Instrument;

/// Widest span of sequence numbers this node's proposals may have in flight (from the
/// oldest unanswered to the newest). It must stay below the client-session window of the
/// replicated table, so that a retried proposal is always still recognised.
const PROPOSAL_SEQUENCE_SPAN_MAX: u64 = (raft::CLIENT_WINDOW_LEN_DEFAULT / 2) as u64;

/// Forwarded proposals a leader keeps while a leadership transfer refuses them, to propose
/// them the moment the transfer is abandoned; past it they wait for their proposer's retry.
const FORWARDS_DEFERRED_LEN_MAX: usize = 1024;

/// How long a removed member stays connected after the configuration that removed it, so
/// the last messages to it (the session's "you were removed") can still go out.
const REMOVED_PEER_GRACE: Duration = Duration::from_secs(2);

/// A node that has heard of no leader this long asks to join again, every
/// `join_retry_interval`, until it hears of one. A host that removed it while it was cut
/// off or down (the others' policy, or a leave of an earlier life applied late) sends it
/// the log no more, so it would never learn and play on as a ghost of its stale
/// configuration. A leader re-admits a non-member as a learner; a member's knock changes
/// nothing. An election takes well under a second, so a healthy session never knocks.
const REJOIN_AFTER_LEADERLESS: Duration = Duration::from_secs(3);

/// The channels between the node's handles and its task.
pub(crate) struct Channels<S: StateMachine> {
    pub(crate) commands: mpsc::Receiver<Command<S>>,
    pub(crate) events: broadcast::Sender<NodeEvent>,
    pub(crate) player_inbox: mpsc::Sender<(NodeId, Vec<u8>)>,
    pub(crate) join_state: watch::Sender<JoinState>,
}

pub(crate) struct Started {
    pub(crate) id: NodeId,
    pub(crate) addr: SocketAddr,
    pub(crate) announced: SocketAddr,
    pub(crate) network: Option<NetworkSignal>,
}

struct PendingProposal {
    /// The application's bytes, as handed to `Node::propose`.
    command: Vec<u8>,
    reply: Reply<Vec<u8>>,
    next_retry: Instant,
    deadline: Instant,
}

struct PendingRead<S> {
    run: ReadFn<S>,
    reply: Reply<()>,
    deadline: Instant,
}

struct PendingChange {
    proposal: ProposalId,
    reply: Reply<()>,
    deadline: Instant,
}

struct PendingTransfer {
    target: NodeId,
    reply: Reply<()>,
    deadline: Instant,
}

/// What this node tracks while it leads, for the address book.
struct Leading {
    term: raft::Term,
    /// Entries from before this index were appended by earlier leaders; once they are applied,
    /// an address they carried is in the book.
    term_start: Index,
    /// Members whose address this leader proposed in its term, applied or not.
    addresses_proposed: BTreeSet<NodeId>,
}

pub(crate) struct Driver<S: StateMachine> {
    id: NodeId,
    /// The bound address.
    addr: SocketAddr,
    /// What this node says about where it listens (`advertise_addr`, or the bound address).
    announced: SocketAddr,
    leading: Option<Leading>,
    config: NodeConfig,
    core: RaftNode,
    applier: Applier<S>,
    transport: Transport<Wire>,
    persist_jobs: Option<std::sync::mpsc::Sender<PersistJob>>,
    events: broadcast::Sender<NodeEvent>,
    player_inbox: mpsc::Sender<(NodeId, Vec<u8>)>,
    /// This node's client id as it sends it in forwards (the leader binds it to us).
    client_id: u64,
    /// `bind_client_id(id, client_id)`: the client id of this node's proposals in the log.
    bound_client_id: u64,
    next_sequence: u64,
    proposals: BTreeMap<ClientTag, PendingProposal>,
    /// Proposals waiting for a free slot in the in-flight window.
    queued_proposals: std::collections::VecDeque<(Vec<u8>, Reply<Vec<u8>>, Instant)>,
    reads_issued: HashMap<u64, PendingRead<S>>,
    reads_to_retry: Vec<PendingRead<S>>,
    reads_waiting_apply: Vec<(Index, PendingRead<S>)>,
    next_read_id: u64,
    changes: Vec<PendingChange>,
    transfers: Vec<PendingTransfer>,
    /// The core's transfer target as last seen, to notice the moment a transfer ends.
    transfer_seen: Option<NodeId>,
    /// Forwarded proposals refused because a transfer was under way, as (tag, log command).
    forwards_deferred: std::collections::VecDeque<(ClientTag, Vec<u8>)>,
    join_task: Option<tokio::task::JoinHandle<JoinEnd>>,
    /// Since when this node has known no leader (see `REJOIN_AFTER_LEADERLESS`).
    leaderless_since: Option<Instant>,
    /// When a leaderless node knocks next.
    next_rejoin_knock: Instant,
    /// The layer above is leaving the cluster: a leaderless node does not knock.
    rejoin_stopped: bool,
    /// Removed members and when their connection is dropped.
    forget_at: Vec<(NodeId, Instant)>,
    /// Whether this node is in the configuration yet, for `Node::joined`.
    join_state: watch::Sender<JoinState>,
    last_snapshot_index: Index,
    stopped: Option<String>,
    /// `node{id}`: the node's whole life runs in it.
    span: tracing::Span,
    /// `raft{term, role}` inside `span`, replaced whenever the term or role changes. A span's
    /// fields cannot be rewritten in place with every subscriber (the usual `fmt` one appends
    /// a recorded value to the old ones), so a new span per state keeps each line exact.
    state_span: tracing::Span,
}

/// What woke the driver's loop.
enum Wake<S: StateMachine> {
    Tick,
    JoinEnded(Result<JoinEnd, tokio::task::JoinError>),
    Persisted(Option<PersistDone>),
    Inbound(Option<TransportEvent<Wire>>),
    Command(Option<Command<S>>),
}

fn state_span(node: &tracing::Span, term: u64, role: Role) -> tracing::Span {
    tracing::info_span!(parent: node, "raft", term, role = ?role)
}

impl<S: StateMachine> Driver<S> {
    pub(crate) async fn start(
        config: NodeConfig,
        identity: Identity,
        credentials: SessionCredentials,
        state_machine: S,
        bootstrap: Bootstrap,
        channels: Channels<S>,
    ) -> Result<Started, NodeError> {
        let Channels {
            commands,
            events,
            player_inbox,
            join_state,
        } = channels;
        let id = identity.node_id();
        config.validate()?;
        config.validate_networks(&bootstrap)?;
        if let Some(advertised) = config.advertise_addr {
            if dialable_addr(Some(advertised), None).is_none() {
                return Err(NodeError::AdvertiseAddr(advertised));
            }
        }
        let mut storage = open_storage(
            config.storage.data_dir.as_deref(),
            config.storage.durability,
        )?;
        let mut persisted = storage.initial_state().clone();
        let fresh = persisted == PersistedState::default();
        if fresh && bootstrap == Bootstrap::NewCluster {
            let founders = Membership {
                voters: [id].into_iter().collect(),
                learners: Default::default(),
            };
            persisted = PersistedState::bootstrap(founders);
            storage.persist(&PersistBatch {
                hard_state: Some(persisted.hard_state),
                snapshot: persisted.snapshot.as_ref(),
                entries: &persisted.entries,
            })?;
        }

        let mut raft_config = config.raft.clone();
        raft_config.id = id;
        raft_config.rng_seed = config.rng_seed.unwrap_or_else(rand::random);
        // A joiner from an empty store may be a member that lost its storage and came
        // back under the same identity: its vote means nothing until it has the log.
        if fresh && matches!(bootstrap, Bootstrap::Join { .. }) {
            raft_config.refuse_votes_without_configuration = true;
        }
        let mut core = RaftNode::new(raft_config, persisted.clone())?;

        let mut applier = Applier::new(state_machine);
        let mut last_snapshot_index = 0;
        if let Some(snapshot) = &persisted.snapshot {
            applier.restore(
                snapshot.meta.last_index,
                &snapshot.meta.membership,
                &snapshot.data,
            )?;
            last_snapshot_index = snapshot.meta.last_index;
        }

        let (transport, inbound) =
            Transport::<Wire>::bind(identity, credentials, config.transport.clone()).await?;
        let addr = transport.local_addr();
        // Behind a NAT the bound address is useless to others; the public one the
        // rendezvous service observed (or the relay's) is where they can reach us.
        let announced = config
            .advertise_addr
            .or_else(|| transport.public_addr())
            .unwrap_or(addr);
        for (peer, peer_addr) in &applier.addresses {
            if *peer != id {
                transport.add_peer(*peer, *peer_addr);
            }
        }

        let label = format!("{id:016x}");
        let (persist_jobs, persisted_rx, persister) = spawn_persister(storage, label.clone())?;
        let span = tracing::info_span!("node", id = %label);

        let join_task = match (&bootstrap, fresh) {
            (Bootstrap::Join { addrs }, true) => Some(spawn_join_task(
                transport.clone(),
                addrs.clone(),
                announced,
                config.join_retry_interval,
                span.clone(),
            )),
            _ => None,
        };
        if fresh && bootstrap == Bootstrap::NewCluster {
            // A lone founder need not wait out an election timeout to start hosting.
            if let Err(err) = core.campaign() {
                tracing::debug!(parent: &span, %err, "founder could not campaign at once");
            }
        }

        let client_id: u64 = rand::random();
        let raft = core.status();
        if raft.membership.voters.contains(&id) || raft.membership.learners.contains(&id) {
            join_state.send_replace(JoinState::Joined);
        }
        let initial_state_span = state_span(&span, raft.term, raft.role);
        let driver = Driver {
            id,
            addr,
            announced,
            leading: None,
            config,
            core,
            applier,
            transport,
            persist_jobs: Some(persist_jobs),
            events,
            player_inbox,
            client_id,
            bound_client_id: bind_client_id(id, client_id),
            next_sequence: 1,
            proposals: BTreeMap::new(),
            queued_proposals: Default::default(),
            reads_issued: HashMap::new(),
            reads_to_retry: Vec::new(),
            reads_waiting_apply: Vec::new(),
            next_read_id: 1,
            changes: Vec::new(),
            transfers: Vec::new(),
            transfer_seen: None,
            forwards_deferred: Default::default(),
            join_task,
            leaderless_since: None,
            next_rejoin_knock: Instant::now(),
            rejoin_stopped: false,
            forget_at: Vec::new(),
            join_state,
            last_snapshot_index,
            stopped: None,
            state_span: initial_state_span,
            span: span.clone(),
        };
        tracing::info!(parent: &span, %addr, %announced, fresh, "node started");
        let network = driver.transport.network_signal();
        let supervised = Supervised {
            transport: driver.transport.clone(),
            events: driver.events.clone(),
            persister,
        };
        let run = tokio::spawn(
            driver
                .run(commands, inbound, persisted_rx)
                .instrument(span.clone()),
        );
        tokio::spawn(supervised.watch(run).instrument(span));
        Ok(Started {
            id,
            addr,
            announced,
            network,
        })
    }

    /// The node's loop. Returns the caller of `Node::shutdown` to answer, if any, once the
    /// persistence thread has been told to finish and the transport is closed.
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command<S>>,
        mut inbound: mpsc::Receiver<TransportEvent<Wire>>,
        mut persisted: mpsc::UnboundedReceiver<PersistDone>,
    ) -> Option<oneshot::Sender<()>> {
        let mut ticker = tokio::time::interval(self.config.tick_interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        self.drain_ready();
        let mut shutdown_reply: Option<oneshot::Sender<()>> = None;
        loop {
            let wake = tokio::select! {
                biased;
                _ = ticker.tick() => Wake::Tick,
                done = persisted.recv() => Wake::Persisted(done),
                event = inbound.recv() => Wake::Inbound(event),
                command = commands.recv() => Wake::Command(command),
                ended = join_task_end(&mut self.join_task) => Wake::JoinEnded(ended),
            };
            let wake = match wake {
                Wake::Command(Some(Command::Shutdown(reply))) => {
                    shutdown_reply = Some(reply);
                    break;
                }
                Wake::Command(None) => break,
                wake => wake,
            };
            // Handled synchronously inside the current state's span, so every line logged
            // while handling it names the term and role it happened in.
            let state_span = self.state_span.clone();
            let stopped = state_span.in_scope(|| {
                match wake {
                    Wake::Tick => self.on_tick(),
                    Wake::JoinEnded(ended) => self.on_join_task_end(ended),
                    Wake::Persisted(Some(done)) => self.on_persisted(done),
                    Wake::Persisted(None) => self.stop("the persistence thread ended"),
                    Wake::Inbound(Some(event)) => self.on_transport_event(event),
                    Wake::Inbound(None) => self.stop("the transport closed"),
                    Wake::Command(Some(command)) => self.on_command(command),
                    Wake::Command(None) => {}
                }
                if self.stopped.is_some() {
                    return true;
                }
                self.drain_ready();
                false
            });
            if stopped {
                break;
            }
        }
        self.shutdown().await;
        // Returning drops the driver, and with it the transport (and its UDP socket), before
        // the supervisor tells the caller we are done, so a node restarted in the same
        // process can bind the same address.
        shutdown_reply
    }

    /// The join task only ends by itself when every bootstrap address refused our
    /// credentials (or by a panic): the node cannot join with them, so retrying is pointless.
    fn on_join_task_end(&mut self, ended: Result<JoinEnd, tokio::task::JoinError>) {
        self.join_task = None;
        match ended {
            Ok(JoinEnd::Refused(reason)) => {
                tracing::error!(%reason, "join refused; not retrying");
                self.join_state
                    .send_replace(JoinState::Refused(reason.clone()));
                let _ = self.events.send(NodeEvent::JoinRefused(reason));
            }
            Ok(JoinEnd::TransportClosed) => {}
            Err(err) if err.is_panic() => {
                self.stop(&format!("the join task panicked: {}", panic_message(err)))
            }
            Err(_) => {}
        }
    }

    fn stop(&mut self, reason: &str) {
        if self.stopped.is_none() {
            tracing::error!(reason, "node stopping");
            let _ = self.events.send(NodeEvent::Fatal(reason.to_string()));
            self.stopped = Some(reason.to_string());
        }
    }

    async fn shutdown(&mut self) {
        for (_, pending) in std::mem::take(&mut self.proposals) {
            let _ = pending.reply.send(Err(NodeError::Stopped));
        }
        for (_, reply, _) in std::mem::take(&mut self.queued_proposals) {
            let _ = reply.send(Err(NodeError::Stopped));
        }
        if let Some(task) = self.join_task.take() {
            task.abort();
        }
        // Dropping the sender lets the persistence thread finish every queued job and end;
        // the supervisor waits for it, so whatever was handed to storage is durable before
        // shutdown returns.
        self.persist_jobs = None;
        self.transport.shutdown().await;
    }

    // ---- inputs -------------------------------------------------------------------

    fn on_tick(&mut self) {
        self.core.tick();
        let now = Instant::now();
        self.forget_removed(now);
        self.retry_proposals(now);
        self.retry_reads(now);
        self.expire_requests(now);
        self.record_unannounced_addresses();
        self.rejoin_if_leaderless(now);
    }

    /// Whether this node has known no leader for `REJOIN_AFTER_LEADERLESS`.
    fn rejoining(&self, now: Instant) -> bool {
        self.leaderless_since
            .is_some_and(|since| now.duration_since(since) >= REJOIN_AFTER_LEADERLESS)
    }

    /// Knocks at every member this node knows of while it has heard of no leader for long:
    /// a host that removed it in its absence re-admits it (`on_join_request`), and a
    /// non-leader that knows the host redirects it there.
    fn rejoin_if_leaderless(&mut self, now: Instant) {
        if self.core.leader_id().is_some() || self.join_task.is_some() || self.rejoin_stopped {
            self.leaderless_since = None;
            return;
        }
        self.leaderless_since.get_or_insert(now);
        if !self.rejoining(now) || now < self.next_rejoin_knock {
            return;
        }
        self.next_rejoin_knock = now + self.config.join_retry_interval;
        let membership = self.core.membership();
        let peers: BTreeSet<NodeId> = membership
            .voters
            .iter()
            .chain(&membership.learners)
            .copied()
            .filter(|peer| *peer != self.id)
            .collect();
        tracing::debug!(?peers, "no leader heard for long: asking to join again");
        for peer in peers {
            self.transport.send(
                peer,
                Wire::JoinRequest {
                    addr: self.announced,
                },
            );
        }
    }

    /// Drops the connections of removed members once their grace is over, unless they
    /// became members again meanwhile.
    fn forget_removed(&mut self, now: Instant) {
        if self.forget_at.is_empty() {
            return;
        }
        let membership = self.core.membership();
        let (due, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.forget_at)
            .into_iter()
            .partition(|(_, at)| *at <= now);
        self.forget_at = waiting;
        for (id, _) in due {
            if !membership.voters.contains(&id) && !membership.learners.contains(&id) {
                self.transport.remove_peer(id);
            }
        }
    }

    fn on_persisted(&mut self, done: PersistDone) {
        if let Err(err) = done.result {
            self.stop(&format!("storage failed: {err}"));
            return;
        }
        for message in done.persisted_messages {
            self.send_raft(message);
        }
        self.core.advance(done.ready_number);
    }

    fn on_transport_event(&mut self, event: TransportEvent<Wire>) {
        match event {
            TransportEvent::Message { from, msg } => self.on_wire(from, msg),
            TransportEvent::PeerConnected { id, addr } => {
                tracing::debug!(peer = %format_args!("{id:016x}"), %addr, "peer connected")
            }
            TransportEvent::PeerDisconnected { id, reason } => {
                tracing::debug!(peer = %format_args!("{id:016x}"), reason, "peer disconnected")
            }
        }
    }

    fn on_wire(&mut self, from: NodeId, wire: Wire) {
        match wire {
            Wire::Raft(message) => {
                if message.from != from || message.to != self.id {
                    // The transport proved who `from` is; a message claiming another
                    // sender or another recipient is forged or misrouted.
                    tracing::warn!(peer = %format_args!("{from:016x}"), claimed = message.from, to = message.to, "dropping raft message with a mismatched sender or recipient");
                    return;
                }
                tracing::trace!(?message, "step");
                if let Err(err) = self.core.step(message) {
                    tracing::debug!(%err, "core refused a message");
                }
            }
            Wire::Forward { tag, command } => self.on_forward(from, tag, command),
            Wire::JoinRequest { addr } => self.on_join_request(from, addr),
            Wire::Player(bytes) => {
                if self.player_inbox.try_send((from, bytes)).is_err() {
                    tracing::debug!("session inbox full or closed; message dropped");
                }
            }
            Wire::Redirect { leader, addr } => {
                let knocking = self.join_task.is_some() || self.rejoining(Instant::now());
                if knocking && leader != self.id {
                    if let Some(addr) = addr {
                        self.transport.add_peer(leader, addr);
                    }
                    self.transport.send(
                        leader,
                        Wire::JoinRequest {
                            addr: self.announced,
                        },
                    );
                }
            }
        }
    }

    /// A member's proposal: appended as `Forwarded` by its authenticated sender, under a
    /// client id bound to that sender, so no peer can write the runtime's own commands or
    /// reach into another proposer's exactly-once window.
    fn on_forward(&mut self, from: NodeId, claimed: ClientTag, command: Vec<u8>) {
        if self.core.role() != Role::Leader {
            return;
        }
        let membership = self.core.membership();
        if !membership.voters.contains(&from) && !membership.learners.contains(&from) {
            tracing::warn!(peer = %format_args!("{from:016x}"), "forwarded proposal from a non-member refused");
            return;
        }
        let tag = ClientTag {
            client_id: bind_client_id(from, claimed.client_id),
            sequence: claimed.sequence,
        };
        let entry = match encode(&LogCommand::Forwarded {
            proposer: from,
            command,
        }) {
            Ok(entry) => entry,
            Err(err) => {
                tracing::error!(%err, "cannot encode a forwarded proposal");
                return;
            }
        };
        if self.core.transfer_target().is_some()
            && self.forwards_deferred.len() < FORWARDS_DEFERRED_LEN_MAX
        {
            self.forwards_deferred.push_back((tag, entry));
            return;
        }
        if let Err(err) = self.core.propose(entry, Some(tag)) {
            tracing::debug!(%err, "forwarded proposal refused; the proposer will retry");
        }
    }

    fn on_join_request(&mut self, from: NodeId, announced: SocketAddr) {
        if self.core.role() != Role::Leader {
            if let Some(leader) = self.core.leader_id() {
                let leader_addr = self.applier.addresses.get(&leader).copied().or_else(|| {
                    // A leader that has no entry yet (a founder bound to an unspecified
                    // address) is still reachable where this node reaches it.
                    dialable_addr(None, self.transport.remote_addr(leader))
                });
                self.transport.send(
                    from,
                    Wire::Redirect {
                        leader,
                        addr: leader_addr,
                    },
                );
            }
            return;
        }
        let Some(addr) = dialable_addr(Some(announced), self.transport.remote_addr(from)) else {
            tracing::debug!(joiner = %format_args!("{from:016x}"), %announced, "join deferred: no dialable address for the joiner yet; it will ask again");
            return;
        };
        self.transport.add_peer(from, addr);
        if self.applier.addresses.get(&from) != Some(&addr) {
            self.propose_address(from, addr);
        }
        let membership = self.core.membership();
        if membership.voters.contains(&from) || membership.learners.contains(&from) {
            return;
        }
        match self
            .core
            .propose_membership(MembershipChange::AddLearner(from))
        {
            Ok(_) => {
                tracing::info!(joiner = %format_args!("{from:016x}"), %addr, "adding joiner as learner")
            }
            Err(err) => tracing::debug!(%err, "join deferred; the joiner will ask again"),
        }
    }

    fn on_command(&mut self, command: Command<S>) {
        match command {
            Command::Propose { command, reply } => {
                let deadline = Instant::now() + self.config.proposal_timeout;
                self.queued_proposals.push_back((command, reply, deadline));
                self.admit_proposals();
            }
            Command::Read { run, reply } => {
                let deadline = Instant::now() + self.config.proposal_timeout;
                self.issue_read(PendingRead {
                    run,
                    reply,
                    deadline,
                });
            }
            Command::ChangeMembership {
                change,
                addr,
                reply,
            } => self.change_membership(change, addr, reply),
            Command::TransferLeadership { target, reply } => {
                match self.core.transfer_leadership(target) {
                    Ok(()) => {
                        let deadline = Instant::now() + self.election_timeout() * 2;
                        self.transfers.push(PendingTransfer {
                            target,
                            reply,
                            deadline,
                        });
                    }
                    Err(err) => {
                        let _ = reply.send(Err(NodeError::Refused(err)));
                    }
                }
            }
            Command::SetFitness(fitness) => self.core.set_fitness(fitness),
            Command::StopRejoining => self.rejoin_stopped = true,
            Command::Status(reply) => {
                let _ = reply.send(self.status());
            }
            Command::SendSession { to, bytes } => self.transport.send(to, Wire::Player(bytes)),
            Command::Shutdown(reply) => {
                // The run loop intercepts shutdown before dispatching; answering here too
                // keeps a caller from hanging if that ever changes.
                let _ = reply.send(());
            }
        }
    }

    fn change_membership(
        &mut self,
        change: MembershipChange,
        addr: Option<SocketAddr>,
        reply: Reply<()>,
    ) {
        if let (MembershipChange::AddLearner(id), Some(given)) = (&change, addr) {
            match dialable_addr(Some(given), self.transport.remote_addr(*id)) {
                Some(addr) => {
                    self.transport.add_peer(*id, addr);
                    if self.core.role() == Role::Leader {
                        self.propose_address(*id, addr);
                    }
                }
                None => {
                    tracing::warn!(learner = %format_args!("{id:016x}"), %given, "no dialable address for the new learner; it stays out of the address book until it is seen")
                }
            }
        }
        match self.core.propose_membership(change) {
            Ok(proposal) => {
                let deadline = Instant::now() + self.config.proposal_timeout;
                self.changes.push(PendingChange {
                    proposal,
                    reply,
                    deadline,
                });
            }
            Err(err) => {
                let _ = reply.send(Err(NodeError::Refused(err)));
            }
        }
    }

    // ---- proposals ----------------------------------------------------------------

    fn admit_proposals(&mut self) {
        loop {
            let oldest = self
                .proposals
                .keys()
                .next()
                .map_or(self.next_sequence, |tag| tag.sequence);
            if self.next_sequence - oldest >= PROPOSAL_SEQUENCE_SPAN_MAX {
                break;
            }
            let Some((command, reply, deadline)) = self.queued_proposals.pop_front() else {
                break;
            };
            let tag = ClientTag {
                client_id: self.bound_client_id,
                sequence: self.next_sequence,
            };
            self.next_sequence += 1;
            let next_retry = Instant::now() + self.config.proposal_retry_interval;
            self.submit(tag, command.clone());
            self.proposals.insert(
                tag,
                PendingProposal {
                    command,
                    reply,
                    next_retry,
                    deadline,
                },
            );
        }
    }

    /// Hands a tagged application proposal to the leader: appended as this leader's own
    /// command when this node leads, forwarded with the unbound client id otherwise (the
    /// leader binds it to us). Losing it is fine: the retry timer sends it again.
    fn submit(&mut self, tag: ClientTag, command: Vec<u8>) {
        debug_assert_eq!(
            tag.client_id, self.bound_client_id,
            "only our own proposals"
        );
        if self.core.role() == Role::Leader {
            let entry = match encode(&LogCommand::App(command)) {
                Ok(entry) => entry,
                Err(err) => {
                    tracing::error!(%err, "cannot encode a proposal");
                    return;
                }
            };
            if let Err(err) = self.core.propose(entry, Some(tag)) {
                tracing::debug!(%err, sequence = tag.sequence, "proposal deferred");
            }
        } else if let Some(leader) = self.core.leader_id() {
            let claimed = ClientTag {
                client_id: self.client_id,
                sequence: tag.sequence,
            };
            self.transport.send(
                leader,
                Wire::Forward {
                    tag: claimed,
                    command,
                },
            );
        }
    }

    fn retry_proposals(&mut self, now: Instant) {
        let due: Vec<(ClientTag, Vec<u8>)> = self
            .proposals
            .iter_mut()
            .filter(|(_, pending)| pending.next_retry <= now)
            .map(|(tag, pending)| {
                pending.next_retry = now + self.config.proposal_retry_interval;
                (*tag, pending.command.clone())
            })
            .collect();
        for (tag, command) in due {
            self.submit(tag, command);
        }
    }

    fn propose_address(&mut self, id: NodeId, addr: SocketAddr) {
        match encode(&LogCommand::SetAddress { id, addr }) {
            Ok(command) => match self.core.propose(command, None) {
                Ok(_) => {
                    if let Some(leading) = &mut self.leading {
                        leading.addresses_proposed.insert(id);
                    }
                }
                Err(err) => tracing::debug!(%err, "address announcement deferred"),
            },
            Err(err) => tracing::error!(%err, "cannot encode an address announcement"),
        }
    }

    /// Leader only: records where it reaches each member that has no entry in the address
    /// book, which is what a founder bound to an unspecified address ends up as: it led first
    /// and could not name its own IP. Waits until the earlier leaders' entries are applied,
    /// and skips members whose address this leader proposed itself, so an address a member
    /// announced is never overwritten by an observation.
    fn record_unannounced_addresses(&mut self) {
        let Some(leading) = &self.leading else {
            return;
        };
        if self.applier.applied_index < leading.term_start {
            return;
        }
        let membership = self.core.membership();
        let unrecorded: Vec<(NodeId, SocketAddr)> = membership
            .voters
            .iter()
            .chain(&membership.learners)
            .filter(|id| {
                **id != self.id
                    && !self.applier.addresses.contains_key(id)
                    && !leading.addresses_proposed.contains(id)
            })
            .filter_map(|id| {
                dialable_addr(None, self.transport.remote_addr(*id)).map(|addr| (*id, addr))
            })
            .collect();
        for (id, addr) in unrecorded {
            tracing::info!(member = %format_args!("{id:016x}"), %addr, "recording where an unannounced member is reached");
            self.propose_address(id, addr);
        }
    }

    // ---- reads --------------------------------------------------------------------

    fn issue_read(&mut self, read: PendingRead<S>) {
        let request_id = self.next_read_id;
        self.next_read_id += 1;
        match self.core.read_index(request_id) {
            Ok(()) => {
                self.reads_issued.insert(request_id, read);
            }
            Err(err) => {
                tracing::debug!(%err, "read deferred");
                self.reads_to_retry.push(read);
            }
        }
    }

    fn retry_reads(&mut self, _now: Instant) {
        for read in std::mem::take(&mut self.reads_to_retry) {
            self.issue_read(read);
        }
    }

    fn serve_reads(&mut self) {
        let applied = self.applier.applied_index;
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.reads_waiting_apply)
            .into_iter()
            .partition(|(index, _)| *index <= applied);
        self.reads_waiting_apply = waiting;
        for (_, read) in ready {
            (read.run)(&self.applier.state_machine);
            let _ = read.reply.send(Ok(()));
        }
    }

    fn expire_requests(&mut self, now: Instant) {
        let timeout = self.config.proposal_timeout;
        let expired: Vec<ClientTag> = self
            .proposals
            .iter()
            .filter(|(_, pending)| pending.deadline <= now)
            .map(|(tag, _)| *tag)
            .collect();
        for tag in expired {
            if let Some(pending) = self.proposals.remove(&tag) {
                let _ = pending.reply.send(Err(NodeError::Timeout(timeout)));
            }
        }
        while self
            .queued_proposals
            .front()
            .is_some_and(|(_, _, deadline)| *deadline <= now)
        {
            if let Some((_, reply, _)) = self.queued_proposals.pop_front() {
                let _ = reply.send(Err(NodeError::Timeout(timeout)));
            }
        }
        self.admit_proposals();
        let (expired, alive): (Vec<_>, Vec<_>) = std::mem::take(&mut self.reads_to_retry)
            .into_iter()
            .partition(|read| read.deadline <= now);
        self.reads_to_retry = alive;
        for read in expired {
            let _ = read.reply.send(Err(NodeError::Timeout(timeout)));
        }
        let issued: Vec<u64> = self
            .reads_issued
            .iter()
            .filter(|(_, read)| read.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in issued {
            if let Some(read) = self.reads_issued.remove(&id) {
                let _ = read.reply.send(Err(NodeError::Timeout(timeout)));
            }
        }
        let (expired, alive): (Vec<_>, Vec<_>) = std::mem::take(&mut self.changes)
            .into_iter()
            .partition(|change| change.deadline <= now);
        self.changes = alive;
        for change in expired {
            let _ = change.reply.send(Err(NodeError::Timeout(timeout)));
        }
        let (expired, alive): (Vec<_>, Vec<_>) = std::mem::take(&mut self.transfers)
            .into_iter()
            .partition(|transfer| transfer.deadline <= now);
        self.transfers = alive;
        for transfer in expired {
            let _ = transfer
                .reply
                .send(Err(NodeError::Timeout(self.election_timeout() * 2)));
        }
    }

    // ---- outputs ------------------------------------------------------------------

    fn drain_ready(&mut self) {
        self.watch_transfer();
        while self.stopped.is_none() && self.core.has_ready() {
            let ready = self.core.ready();
            self.handle_ready(ready);
        }
        self.serve_reads();
        self.maybe_compact();
    }

    fn handle_ready(&mut self, ready: Ready) {
        if let Some(soft_state) = &ready.soft_state {
            self.on_soft_state(soft_state);
        }
        tracing::debug!(
            number = ready.number,
            send = ready.messages.len(),
            persist = ready.entries.len(),
            commit = ready.committed_entries.len(),
            "ready"
        );
        for message in ready.messages {
            self.send_raft(message);
        }
        if let Some(snapshot) = &ready.snapshot {
            let book_before = self.applier.addresses.clone();
            if let Err(err) = self.applier.restore(
                snapshot.meta.last_index,
                &snapshot.meta.membership,
                &snapshot.data,
            ) {
                self.stop(&format!("cannot restore the leader's snapshot: {err}"));
                return;
            }
            self.sync_transport_with_book(&book_before);
            self.last_snapshot_index = snapshot.meta.last_index;
            tracing::info!(
                index = snapshot.meta.last_index,
                "restored from the leader's snapshot"
            );
            // Its configuration is applied too, though no entry carries it: a joiner added
            // while it could not hear the leader learns of its own addition only here.
            self.membership_applied(snapshot.meta.membership.clone());
        }
        let snapshot = newest_snapshot(ready.snapshot, ready.compaction);
        let job = PersistJob {
            ready_number: ready.number,
            hard_state: ready.hard_state,
            snapshot,
            entries: ready.entries,
            persisted_messages: ready.persisted_messages,
        };
        let handed_over = self
            .persist_jobs
            .as_ref()
            .is_some_and(|jobs| jobs.send(job).is_ok());
        if !handed_over {
            self.stop("the persistence thread is gone");
            return;
        }
        for entry in ready.committed_entries {
            if entry.index > self.applier.applied_index {
                self.apply(entry);
            }
        }
        for read_state in ready.read_states {
            if let Some(read) = self.reads_issued.remove(&read_state.request_id) {
                self.reads_waiting_apply.push((read_state.index, read));
            }
        }
        for request_id in ready.failed_reads {
            if let Some(read) = self.reads_issued.remove(&request_id) {
                self.reads_to_retry.push(read);
            }
        }
    }

    /// A leadership transfer refuses every proposal while it runs. When it ends without a
    /// new leader (abandoned, or cancelled), this node still leads and resubmits at once
    /// what was refused, instead of after `proposal_retry_interval`: a stalled transfer
    /// then costs the abandon timeout, not that plus a retry interval. A transfer that
    /// succeeded changes the leader, and `on_soft_state` resubmits then.
    fn watch_transfer(&mut self) {
        let now_target = self.core.transfer_target();
        let ended = self.transfer_seen.is_some() && now_target.is_none();
        self.transfer_seen = now_target;
        if !ended {
            return;
        }
        let deferred = std::mem::take(&mut self.forwards_deferred);
        if self.core.role() != Role::Leader {
            return;
        }
        tracing::debug!(
            proposals = self.proposals.len(),
            forwarded = deferred.len(),
            "transfer ended without a new leader; resubmitting refused proposals"
        );
        for (tag, command) in deferred {
            if let Err(err) = self.core.propose(command, Some(tag)) {
                tracing::debug!(%err, "deferred forwarded proposal refused; its proposer will retry");
            }
        }
        let now = Instant::now();
        for pending in self.proposals.values_mut() {
            pending.next_retry = now;
        }
        self.retry_proposals(now);
    }

    fn on_soft_state(&mut self, soft_state: &SoftState) {
        self.state_span = state_span(&self.span, soft_state.term, soft_state.role);
        tracing::info!(role = ?soft_state.role, term = soft_state.term, leader = ?soft_state.leader, "role changed");
        let _ = self.events.send(NodeEvent::RoleChanged {
            role: soft_state.role,
            term: soft_state.term,
            leader: soft_state.leader,
        });
        self.leading = match self.leading.take() {
            _ if soft_state.role != Role::Leader => None,
            Some(leading) if leading.term == soft_state.term => Some(leading),
            _ => Some(Leading {
                term: soft_state.term,
                term_start: self.core.last_index(),
                addresses_proposed: BTreeSet::new(),
            }),
        };
        // Only an address the node can vouch for alone is re-announced: with an unspecified
        // one and no advertise_addr, the entry others recorded stands, and is not replaced by
        // 0.0.0.0 on every election won.
        if soft_state.role == Role::Leader {
            if let Some(own) = dialable_addr(Some(self.announced), None) {
                if self.applier.addresses.get(&self.id) != Some(&own) {
                    self.propose_address(self.id, own);
                }
            }
        }
        // A new leader is known: resubmit waiting proposals now rather than after the
        // retry interval, so a host migration costs one round trip, not a timer.
        if soft_state.leader.is_some() {
            let now = Instant::now();
            for pending in self.proposals.values_mut() {
                pending.next_retry = now;
            }
            self.retry_proposals(now);
        }
        if let Some(leader) = soft_state.leader {
            let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.transfers)
                .into_iter()
                .partition(|transfer| transfer.target == leader);
            self.transfers = waiting;
            for transfer in done {
                let _ = transfer.reply.send(Ok(()));
            }
        }
    }

    fn apply(&mut self, entry: Entry) {
        let (finished, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.changes)
            .into_iter()
            .partition(|change| change.proposal.index == entry.index);
        self.changes = waiting;
        for change in finished {
            let outcome = if change.proposal.term == entry.term {
                Ok(())
            } else {
                Err(NodeError::Dropped)
            };
            let _ = change.reply.send(outcome);
        }
        match self.applier.apply(&entry) {
            Applied::Quiet => {}
            Applied::Command { tag, result } => {
                if tag.client_id == self.bound_client_id {
                    if let Some(pending) = self.proposals.remove(&tag) {
                        let _ = pending.reply.send(result.ok_or(NodeError::Dropped));
                        self.admit_proposals();
                    }
                }
            }
            Applied::Address { id, addr } => {
                if id != self.id {
                    self.transport.add_peer(id, addr);
                }
            }
            Applied::Membership {
                membership,
                forgotten,
            } => {
                for id in forgotten {
                    if id != self.id {
                        tracing::info!(node = %format_args!("{id:016x}"), "no longer a member; forgotten soon");
                        // Not at once: the layer above still tells a removed player so (it no
                        // longer receives the log that removed it), and that message needs the
                        // connection.
                        self.forget_at
                            .push((id, Instant::now() + REMOVED_PEER_GRACE));
                    }
                }
                self.membership_applied(membership);
            }
        }
    }

    /// A configuration took effect in the applied state: from a log entry or a snapshot.
    fn membership_applied(&mut self, membership: Membership) {
        let member = membership.voters.contains(&self.id) || membership.learners.contains(&self.id);
        if member {
            self.join_state.send_if_modified(|state| {
                let changed = *state != JoinState::Joined;
                *state = JoinState::Joined;
                changed
            });
            if let Some(task) = self.join_task.take() {
                task.abort();
                tracing::info!("joined the cluster");
                let _ = self.events.send(NodeEvent::Joined);
            }
        }
        tracing::info!(voters = ?membership.voters, learners = ?membership.learners, "membership applied");
        let _ = self.events.send(NodeEvent::MembershipChanged(membership));
    }

    /// After a snapshot replaced the address book: stop dialing who left it, dial who is in it.
    fn sync_transport_with_book(&self, before: &BTreeMap<NodeId, SocketAddr>) {
        for id in before.keys() {
            if *id != self.id && !self.applier.addresses.contains_key(id) {
                self.transport.remove_peer(*id);
            }
        }
        for (id, addr) in &self.applier.addresses {
            if *id != self.id && before.get(id) != Some(addr) {
                self.transport.add_peer(*id, *addr);
            }
        }
    }

    fn maybe_compact(&mut self) {
        let applied = self.applier.applied_index;
        if applied < self.last_snapshot_index + self.config.snapshot_interval_entries {
            return;
        }
        let data = match self.applier.snapshot() {
            Ok(data) => data,
            Err(err) => {
                tracing::warn!(%err, "state machine could not make a snapshot; log not compacted");
                return;
            }
        };
        match self.core.compact(applied, data) {
            Ok(()) => {
                self.last_snapshot_index = applied;
                tracing::debug!(index = applied, "log compacted");
            }
            Err(err) => tracing::warn!(%err, "compaction refused"),
        }
    }

    fn send_raft(&self, message: Message) {
        self.transport.send(message.to, Wire::Raft(message));
    }

    fn election_timeout(&self) -> Duration {
        self.config.tick_interval * self.config.raft.election_timeout_ticks_max
    }

    fn status(&self) -> NodeStatus {
        let raft = self.core.status();
        let peer_links = self
            .transport
            .peers()
            .into_iter()
            .filter_map(|(peer, _)| self.transport.link_stats(peer).map(|link| (peer, link)))
            .collect();
        NodeStatus {
            id: self.id,
            addr: self.addr,
            address_book: self.applier.addresses.clone(),
            role: raft.role,
            term: raft.term,
            leader: raft.leader,
            commit_index: raft.commit,
            applied_index: self.applier.applied_index,
            last_index: raft.last_index,
            membership: raft.membership,
            committed_membership: raft.committed_membership,
            fitness: raft.fitness,
            progress: self.core.progress(),
            peer_links,
            internet: self.transport.internet_status(),
            dialed_peers: self.transport.dialed_peers(),
            detection_timeout: self
                .core
                .detection_timeout_ticks()
                .map(|ticks| self.config.tick_interval * ticks),
        }
    }
}

/// What outlives the driver task to watch its end: a panic there (the state machine's code
/// runs in it) must not kill the node silently, leaving its transport answering peers.
struct Supervised {
    transport: Transport<Wire>,
    events: broadcast::Sender<NodeEvent>,
    persister: std::thread::JoinHandle<()>,
}

impl Supervised {
    /// Waits for the driver task to end. After a panic: reports `Fatal`, closes the
    /// transport, and lets the persistence thread finish what it was handed (unwinding
    /// dropped the driver, and with it the job sender). Handles see `NodeError::Stopped`:
    /// the command queue and every reply channel were dropped with the driver.
    async fn watch(self, run: tokio::task::JoinHandle<Option<oneshot::Sender<()>>>) {
        let shutdown_reply = match run.await {
            Ok(reply) => reply,
            Err(err) => {
                let reason = format!("the node task ended abnormally: {}", panic_message(err));
                tracing::error!(%reason, "node stopping");
                let _ = self.events.send(NodeEvent::Fatal(reason));
                self.transport.shutdown().await;
                None
            }
        };
        let persister = self.persister;
        match tokio::task::spawn_blocking(move || persister.join()).await {
            Ok(Ok(())) => {}
            Ok(Err(payload)) => {
                let reason = format!(
                    "the persistence thread panicked: {}",
                    panic_payload_message(payload.as_ref())
                );
                tracing::error!(%reason);
                let _ = self.events.send(NodeEvent::Fatal(reason));
            }
            Err(err) => tracing::error!(%err, "could not wait for the persistence thread"),
        }
        tracing::info!("node stopped");
        if let Some(reply) = shutdown_reply {
            let _ = reply.send(());
        }
    }
}

/// How the join task ended by itself.
pub(crate) enum JoinEnd {
    /// Every bootstrap address refused our credentials in one round.
    Refused(String),
    /// The transport was shut down: the node is stopping.
    TransportClosed,
}

/// Waits for the join task to end; never resolves while there is none.
async fn join_task_end(
    task: &mut Option<tokio::task::JoinHandle<JoinEnd>>,
) -> Result<JoinEnd, tokio::task::JoinError> {
    match task {
        Some(handle) => handle.await,
        None => std::future::pending().await,
    }
}

/// The text of a task's panic (or cancellation), for the `Fatal` event.
pub(crate) fn panic_message(err: tokio::task::JoinError) -> String {
    match err.try_into_panic() {
        Ok(payload) => panic_payload_message(payload.as_ref()),
        Err(err) => err.to_string(),
    }
}

fn panic_payload_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string())
}

/// Knocks on the bootstrap addresses until the driver sees this node in the configuration
/// and aborts the task. Each knock authenticates (the transport runs the join proof) and
/// asks to join; a non-leader answers with a redirect that the driver follows. When every
/// address refuses our credentials in the same round (`TransportError::Refused`: another
/// session, or a wrong secret), the task ends with that refusal: nothing will change it.
fn spawn_join_task(
    transport: Transport<Wire>,
    addrs: Vec<SocketAddr>,
    own_addr: SocketAddr,
    retry_interval: Duration,
    span: tracing::Span,
) -> tokio::task::JoinHandle<JoinEnd> {
    tokio::spawn(
        async move {
            loop {
                let mut refusals = Vec::new();
                for addr in &addrs {
                    match transport.connect(*addr).await {
                        Ok(peer) => transport.send(peer, Wire::JoinRequest { addr: own_addr }),
                        Err(TransportError::Shutdown) => return JoinEnd::TransportClosed,
                        Err(err @ TransportError::Refused { .. }) => {
                            tracing::warn!(%addr, %err, "join refused");
                            refusals.push(format!("{addr}: {err}"));
                        }
                        Err(err) => tracing::debug!(%addr, %err, "join attempt failed"),
                    }
                }
                if !addrs.is_empty() && refusals.len() == addrs.len() {
                    return JoinEnd::Refused(refusals.join("; "));
                }
                tokio::time::sleep(retry_interval).await;
            }
        }
        .instrument(span),
    )
}
