//! The tokio runtime of a Baton node: one task per node owns the consensus core, the tick
//! timer, the storage (through a persistence thread) and the transport, and drives the
//! core's output contract exactly — send what may go at once, persist, then send what
//! depended on persistence, advance, and apply committed entries in order.
//!
//! The [`Node`] handle is the async API: propose (returns once applied, with the result),
//! linearizable reads, membership changes, leadership transfer, fitness, status and events.

mod address;
pub(crate) mod applier;
mod driver;
mod persist;
mod validate;
pub mod wire;

use crate::internet::{InternetConfig, NetworkSignal};
use crate::raft::{
    self, Fitness, Index, Membership, MembershipChange, NodeId, PeerProgress, Role, Term,
};
use crate::storage::{Durability, StorageError};
use crate::transport::{
    Identity, Invite, LinkStats, SessionCredentials, TransportConfig, TransportError,
};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

pub use validate::{CONFIG_DURATION_MAX, FRAME_ENVELOPE_BYTES_MAX};
pub use wire::{bind_client_id, LogCommand, Wire};

/// The replicated application. Every node applies the same commands in the same order, so
/// every replica holds the same state; `snapshot`/`restore` let the log be compacted and let
/// a far-behind node catch up from a state instead of from the whole history.
pub trait StateMachine: Send + 'static {
    /// Applies one committed command and returns the result handed back to its proposer.
    /// Must be deterministic: the same commands in the same order give the same state.
    /// `origin` says who proposed it, identically on every replica.
    fn apply(&mut self, index: Index, origin: Origin, command: &[u8]) -> Vec<u8>;
    /// The whole state, as bytes `restore` accepts.
    fn snapshot(&self) -> Result<Vec<u8>, StateMachineError>;
    /// Replaces the whole state with one made by `snapshot` (possibly on another node).
    fn restore(&mut self, snapshot: &[u8]) -> Result<(), StateMachineError>;
}

/// Who put a command in the log, as every replica sees it alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The leader that appended the entry proposed it itself.
    Leader,
    /// A member proposed it and the leader forwarded it into the log, vouching for the
    /// sender's identity (the transport authenticated it).
    Member(NodeId),
}

/// A state machine refused a snapshot, or could not make one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct StateMachineError(pub String);

/// How a node enters a cluster when its storage is empty. A node whose storage holds state
/// always restarts from it, whatever is asked here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bootstrap {
    /// Found a new cluster whose only member (and leader) is this node; others join it.
    NewCluster,
    /// Join the cluster reachable at these addresses, as a learner.
    Join {
        /// Any members' addresses (for example from an [`Invite`]).
        addrs: Vec<SocketAddr>,
    },
}

/// Where the node keeps its durable state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageSettings {
    /// Data directory; `None` keeps everything in memory.
    pub data_dir: Option<PathBuf>,
    /// Durability profile (see `docs/storage.md`). `Memory` needs no directory.
    pub durability: Durability,
}

/// Everything a node needs to run. `Default` gives settings fit for a 20–60 Hz game on a
/// LAN or a home Internet link: followers judge the host's silence against what they
/// measured of its messages (`raft.adaptive_election_timeout`), so a crash is noticed
/// within 40–80 ms on a LAN and within about the link's longest recent silence on a
/// jittery link; until measured, the fixed 150–300 ms range applies (`docs/host-migration.md`).
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Template for the core's settings; the runtime fills in `id` and `rng_seed`.
    pub raft: raft::Config,
    /// Length of one logical tick of the core.
    pub tick_interval: Duration,
    /// Storage location and profile.
    pub storage: StorageSettings,
    /// QUIC settings (bind address, limits, fault injection for tests).
    pub transport: TransportConfig,
    /// The address this node announces to the cluster, for its entry in the replicated
    /// address book: where the others dial it after a host migration. Set it when they must
    /// dial something other than the bound address: a port forward or public address behind
    /// a NAT, or one particular interface of a node bound to `0.0.0.0`. It needs a specific
    /// IP and a non-zero port. `None` announces the bound address; if that is unspecified
    /// (`0.0.0.0`, `[::]`), the node that records it takes the IP it sees the node's
    /// connection come from, with the bound port (`docs/protocol.md`, "Addresses").
    /// A node that plays over the Internet (`transport.internet`) and has no
    /// `advertise_addr` announces its public address as the rendezvous service saw it, or
    /// its relayed address when it relays (`docs/internet-play.md`).
    pub advertise_addr: Option<SocketAddr>,
    /// Compact the log once this many entries were applied since the last snapshot.
    pub snapshot_interval_entries: u64,
    /// A proposal not applied within this time is sent again (same tag: applied once).
    pub proposal_retry_interval: Duration,
    /// A proposal not applied within this time fails with [`NodeError::Timeout`].
    pub proposal_timeout: Duration,
    /// How often a joining node repeats its join request.
    pub join_retry_interval: Duration,
    /// Seed for the core's randomness; `None` draws one from the operating system.
    pub rng_seed: Option<u64>,
}

impl Default for NodeConfig {
    fn default() -> Self {
        let mut raft = raft::Config::new(0, 0);
        raft.election_timeout_ticks_min = 15;
        raft.election_timeout_ticks_max = 30;
        raft.heartbeat_interval_ticks = 3;
        // 40 ms: twice the heartbeat interval a LAN settles at, and above the 1–16 ms
        // scheduling outliers of a loaded machine. 1 s: a crash costs at most that on a
        // link whose silences would ask for more.
        raft.detection_timeout_ticks_floor = 4;
        raft.detection_timeout_ticks_ceiling = 100;
        NodeConfig {
            raft,
            tick_interval: Duration::from_millis(10),
            storage: StorageSettings {
                data_dir: None,
                durability: Durability::Memory,
            },
            transport: TransportConfig::default(),
            advertise_addr: None,
            snapshot_interval_entries: 4096,
            proposal_retry_interval: Duration::from_millis(400),
            proposal_timeout: Duration::from_secs(15),
            join_retry_interval: Duration::from_millis(300),
            rng_seed: None,
        }
    }
}

/// Something that happened to the node, broadcast to every [`Node::events`] receiver.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeEvent {
    /// The node's role, term or known leader changed.
    RoleChanged {
        /// New role.
        role: Role,
        /// Current term.
        term: Term,
        /// Leader as known now.
        leader: Option<NodeId>,
    },
    /// A new configuration was committed and applied.
    MembershipChanged(Membership),
    /// This node has joined the cluster (it appears in the configuration).
    Joined,
    /// Every bootstrap address refused this node's credentials (another session's invite,
    /// or a wrong secret); the node stopped asking to join.
    JoinRefused(String),
    /// The node stopped because it could not keep its promises (for example a disk error).
    Fatal(String),
}

/// A snapshot of the node's view, for tools, tests and the session layer's policies.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeStatus {
    /// This node.
    pub id: NodeId,
    /// Where it listens (the bound address).
    pub addr: SocketAddr,
    /// The replicated address book as applied here: where each member is dialed.
    pub address_book: BTreeMap<NodeId, SocketAddr>,
    /// Its role.
    pub role: Role,
    /// Its term.
    pub term: Term,
    /// The leader it knows.
    pub leader: Option<NodeId>,
    /// Highest committed index it knows.
    pub commit_index: Index,
    /// Highest index applied to its state machine.
    pub applied_index: Index,
    /// Last index in its log.
    pub last_index: Index,
    /// The configuration in effect.
    pub membership: Membership,
    /// The latest configuration committed here: `membership` itself unless a change is in
    /// flight. Until that change commits, a crash of the leader may leave the others with
    /// this configuration, so what the session survives is judged on both.
    pub committed_membership: Membership,
    /// Its own fitness.
    pub fitness: Fitness,
    /// On the leader: every other member's replication progress and reported fitness.
    pub progress: Vec<PeerProgress>,
    /// What QUIC measured of the connection to each connected peer (round trip, packets
    /// sent and lost), and whether it is direct or relayed.
    pub peer_links: Vec<(NodeId, LinkStats)>,
    /// When the node plays over the Internet: its public address as the rendezvous service
    /// saw it, its relayed address if it relays.
    pub internet: Option<crate::internet::InternetStatus>,
    /// The peers the transport keeps (re)connecting to, with the address it dials: the
    /// members of the address book (and a joiner being admitted), never a removed node.
    pub dialed_peers: Vec<(NodeId, SocketAddr)>,
    /// How long a silence of the leader this node follows must last before it suspects
    /// it, as measured on that leader's messages (`None`: not measured yet, or the
    /// adaptive election timeout is off; the fixed election timeout range applies).
    pub detection_timeout: Option<Duration>,
}

/// Why a node operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The storage failed or holds corrupt data.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    /// The transport could not start or connect.
    #[error("transport: {0}")]
    Transport(#[from] TransportError),
    /// The core refused the configuration.
    #[error("raft configuration: {0}")]
    Config(#[from] raft::ConfigError),
    /// A setting of [`NodeConfig`] would make the node panic or stall once started.
    #[error("invalid configuration: {field}: {reason}")]
    InvalidConfig {
        /// The field, as named in [`NodeConfig`] (`transport.` or `raft.` for nested ones).
        field: &'static str,
        /// What is wrong with its value.
        reason: String,
    },
    /// [`NodeConfig::advertise_addr`] is not an address anyone can dial.
    #[error("advertise_addr {0} cannot be dialed: it needs a specific IP and a non-zero port")]
    AdvertiseAddr(SocketAddr),
    /// The core refused the request (not the leader, a change already in flight, ...).
    #[error("refused: {0}")]
    Refused(#[from] raft::ProposeError),
    /// The state machine could not make or accept a snapshot.
    #[error("state machine: {0}")]
    StateMachine(#[from] StateMachineError),
    /// The operation did not finish in time; it may still take effect later.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The entry that carried the request was overwritten by a new leader: it never took effect.
    #[error("the request was dropped by a leader change; retry it")]
    Dropped,
    /// The node has stopped.
    #[error("the node has stopped")]
    Stopped,
    /// The cluster refused this node's credentials: the invite is for another session,
    /// or the secret is wrong. Retrying with the same credentials cannot succeed.
    #[error("join refused: {0}")]
    JoinRefused(String),
    /// A value could not be encoded.
    #[error("encoding: {0}")]
    Encode(String),
    /// An operating-system error (thread creation, ...).
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

type Reply<T> = oneshot::Sender<Result<T, NodeError>>;

/// Where a node stands in joining, as `Node::joined` watches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum JoinState {
    /// Not in the configuration yet.
    Joining,
    /// In the configuration (a founder, a restarted member, or a joiner admitted).
    Joined,
    /// The cluster refused the credentials; the node stopped asking.
    Refused(String),
}

/// Work that a read runs against the state machine once it is linearizable.
type ReadFn<S> = Box<dyn FnOnce(&S) + Send>;

enum Command<S> {
    Propose {
        command: Vec<u8>,
        reply: Reply<Vec<u8>>,
    },
    Read {
        run: ReadFn<S>,
        reply: Reply<()>,
    },
    ChangeMembership {
        change: MembershipChange,
        addr: Option<SocketAddr>,
        reply: Reply<()>,
    },
    TransferLeadership {
        target: NodeId,
        reply: Reply<()>,
    },
    SetFitness(Fitness),
    StopRejoining,
    Status(oneshot::Sender<NodeStatus>),
    SendSession {
        to: NodeId,
        bytes: Vec<u8>,
    },
    Shutdown(oneshot::Sender<()>),
}

/// Handle to a running node. Cheap to clone; the node stops on [`Node::shutdown`] or when
/// every handle is dropped.
pub struct Node<S: StateMachine> {
    id: NodeId,
    addr: SocketAddr,
    announced: SocketAddr,
    /// The rendezvous service instances the node registers on, in order, if it plays over
    /// the Internet.
    rendezvous: Vec<SocketAddr>,
    credentials: SessionCredentials,
    commands: mpsc::Sender<Command<S>>,
    events: broadcast::Sender<NodeEvent>,
    player_inbox: PlayerInbox,
    join_state: watch::Receiver<JoinState>,
    network: Option<NetworkSignal>,
}

/// Session-layer messages from peers, as (sender, bytes); taken once by the layer above.
type PlayerInbox = Arc<Mutex<Option<mpsc::Receiver<(NodeId, Vec<u8>)>>>>;

impl<S: StateMachine> Clone for Node<S> {
    fn clone(&self) -> Self {
        Node {
            id: self.id,
            addr: self.addr,
            announced: self.announced,
            rendezvous: self.rendezvous.clone(),
            credentials: self.credentials.clone(),
            commands: self.commands.clone(),
            events: self.events.clone(),
            player_inbox: self.player_inbox.clone(),
            join_state: self.join_state.clone(),
            network: self.network.clone(),
        }
    }
}

/// Bound on queued requests from handles; a full queue makes callers wait (back-pressure).
const COMMAND_QUEUE_LEN_MAX: usize = 1024;
/// Events kept for slow subscribers before they start missing some.
const EVENT_QUEUE_LEN_MAX: usize = 1024;
/// Session messages buffered for the layer above; past it they are dropped (and logged),
/// which that layer tolerates because its senders retry.
const PLAYER_INBOX_LEN_MAX: usize = 4096;

impl<S: StateMachine> Node<S> {
    /// Starts a node: opens its storage, binds its transport, and enters the cluster as
    /// `bootstrap` says (or restarts from storage). Must be called inside a tokio runtime.
    pub async fn start(
        config: NodeConfig,
        identity: Identity,
        credentials: SessionCredentials,
        state_machine: S,
        bootstrap: Bootstrap,
    ) -> Result<Node<S>, NodeError> {
        let (commands_tx, commands_rx) = mpsc::channel(COMMAND_QUEUE_LEN_MAX);
        let (events_tx, _) = broadcast::channel(EVENT_QUEUE_LEN_MAX);
        let (session_tx, session_rx) = mpsc::channel(PLAYER_INBOX_LEN_MAX);
        let (join_state_tx, join_state) = watch::channel(JoinState::Joining);
        let rendezvous = config
            .transport
            .internet
            .as_ref()
            .map(InternetConfig::instances)
            .unwrap_or_default();
        let started = driver::Driver::start(
            config,
            identity,
            credentials.clone(),
            state_machine,
            bootstrap,
            driver::Channels {
                commands: commands_rx,
                events: events_tx.clone(),
                player_inbox: session_tx,
                join_state: join_state_tx,
            },
        )
        .await?;
        Ok(Node {
            id: started.id,
            addr: started.addr,
            announced: started.announced,
            rendezvous,
            credentials,
            commands: commands_tx,
            events: events_tx,
            player_inbox: Arc::new(Mutex::new(Some(session_rx))),
            join_state,
            network: started.network,
        })
    }

    /// This node's id (derived from its public key).
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// Where this node listens (the bound address).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// What this node announces to the cluster: [`NodeConfig::advertise_addr`] if set, else
    /// its public address when it plays over the Internet, else the bound address.
    pub fn advertise_addr(&self) -> SocketAddr {
        self.announced
    }

    /// An invite code other players can use to join through this node, naming
    /// [`advertise_addr`](Self::advertise_addr). A node bound to an unspecified address
    /// without `advertise_addr` listens on every interface, so its invite names each of the
    /// machine's interface IPs with the bound port, LAN and public IPs first (a joiner
    /// tries them in order). Behind NAT none of them is reachable from the Internet: set
    /// `advertise_addr` to the forwarded address, or build the [`Invite`] from addresses the
    /// game knows. A node that plays over the Internet names its rendezvous service
    /// instances too, so joiners need not be configured with them.
    pub fn invite(&self) -> Invite {
        let interfaces = if self.announced.ip().is_unspecified() {
            match if_addrs::get_if_addrs() {
                Ok(interfaces) => interfaces.into_iter().map(|i| i.ip()).collect(),
                Err(err) => {
                    tracing::warn!(%err, "cannot list network interfaces; the invite names loopback only");
                    Vec::new()
                }
            }
        } else {
            Vec::new()
        };
        Invite {
            credentials: self.credentials.clone(),
            addrs: address::invite_addrs(self.announced, interfaces),
            rendezvous: self.rendezvous.clone(),
        }
    }

    /// Tells the node that the device's network changed (the OS or platform said so: Wi-Fi
    /// to mobile data, a cable plugged in, a VPN up). A node that plays over the Internet
    /// registers with the rendezvous service at once, so the others learn its new address
    /// in a round trip instead of at the next `register_interval`, and its links are
    /// mended as for any address change. Callable from any thread; returns whether there
    /// was anything to do (false on a LAN or over the application's network).
    pub fn network_changed(&self) -> bool {
        self.network.as_ref().map(NetworkSignal::raise).is_some()
    }

    /// Resolves once this node is in the cluster's configuration (at once if it already
    /// is: a founder, a restarted member, or a joiner admitted before the call). Fails
    /// with [`NodeError::JoinRefused`] when the cluster refused the credentials,
    /// [`NodeError::Timeout`] after `timeout`, or [`NodeError::Stopped`].
    pub async fn joined(&self, timeout: Duration) -> Result<(), NodeError> {
        let mut state = self.join_state.clone();
        let settled = async move {
            state
                .wait_for(|state| *state != JoinState::Joining)
                .await
                .map(|state| state.clone())
        };
        match tokio::time::timeout(timeout, settled).await {
            Err(_) => Err(NodeError::Timeout(timeout)),
            Ok(Err(_)) => Err(NodeError::Stopped),
            Ok(Ok(JoinState::Refused(reason))) => Err(NodeError::JoinRefused(reason)),
            Ok(Ok(_)) => Ok(()),
        }
    }

    /// Subscribes to the node's events.
    pub fn events(&self) -> broadcast::Receiver<NodeEvent> {
        self.events.subscribe()
    }

    async fn request<T>(&self, make: impl FnOnce(Reply<T>) -> Command<S>) -> Result<T, NodeError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(make(reply))
            .await
            .map_err(|_| NodeError::Stopped)?;
        answer.await.map_err(|_| NodeError::Stopped)?
    }

    /// Replicates `command` and returns the state machine's result once it is applied on
    /// this node. Works on any member: followers forward to the leader. The command is
    /// tagged, so retries across leader changes apply it exactly once.
    pub async fn propose(&self, command: Vec<u8>) -> Result<Vec<u8>, NodeError> {
        self.request(|reply| Command::Propose { command, reply })
            .await
    }

    /// Runs `read` against the state machine once it reflects every command committed
    /// before this call (ReadIndex, §6.4): a linearizable read.
    pub async fn read<R: Send + 'static>(
        &self,
        read: impl FnOnce(&S) -> R + Send + 'static,
    ) -> Result<R, NodeError> {
        let (value_tx, value_rx) = oneshot::channel();
        let run: ReadFn<S> = Box::new(move |state: &S| {
            let _ = value_tx.send(read(state));
        });
        self.request(|reply| Command::Read { run, reply }).await?;
        value_rx.await.map_err(|_| NodeError::Stopped)
    }

    /// Adds a learner reachable at `addr` (leader only); returns once the change is applied here.
    pub async fn add_learner(&self, id: NodeId, addr: SocketAddr) -> Result<(), NodeError> {
        self.change_membership(MembershipChange::AddLearner(id), Some(addr))
            .await
    }

    /// Applies a membership change (leader only); returns once it is applied here.
    pub async fn change_membership(
        &self,
        change: MembershipChange,
        addr: Option<SocketAddr>,
    ) -> Result<(), NodeError> {
        self.request(|reply| Command::ChangeMembership {
            change,
            addr,
            reply,
        })
        .await
    }

    /// Hands leadership to `target` (leader only); returns once the target leads.
    pub async fn transfer_leadership(&self, target: NodeId) -> Result<(), NodeError> {
        self.request(|reply| Command::TransferLeadership { target, reply })
            .await
    }

    /// Says this node is on its way out of the cluster: once a leader removes it, it hears
    /// from no leader again, and it must not take that for a removal in its absence and
    /// ask to join again (it otherwise does after three seconds without a leader).
    pub async fn stop_rejoining(&self) -> Result<(), NodeError> {
        self.commands
            .send(Command::StopRejoining)
            .await
            .map_err(|_| NodeError::Stopped)
    }

    /// Sets this node's fitness; it biases elections and is reported to the leader.
    pub async fn set_fitness(&self, fitness: Fitness) -> Result<(), NodeError> {
        self.commands
            .send(Command::SetFitness(fitness))
            .await
            .map_err(|_| NodeError::Stopped)
    }

    /// Sends bytes to the session layer of node `to` (best effort, ordered per peer).
    pub async fn send_player_message(&self, to: NodeId, bytes: Vec<u8>) -> Result<(), NodeError> {
        self.commands
            .send(Command::SendSession { to, bytes })
            .await
            .map_err(|_| NodeError::Stopped)
    }

    /// The stream of session-layer messages from peers, as (sender, bytes). It can be taken
    /// once; later calls return `None`.
    pub fn take_player_messages(&self) -> Option<mpsc::Receiver<(NodeId, Vec<u8>)>> {
        self.player_inbox
            .lock()
            .ok()
            .and_then(|mut inbox| inbox.take())
    }

    /// The node's current view.
    pub async fn status(&self) -> Result<NodeStatus, NodeError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Status(reply))
            .await
            .map_err(|_| NodeError::Stopped)?;
        answer.await.map_err(|_| NodeError::Stopped)
    }

    /// Stops the node after making durable everything it already handed to storage, so
    /// nothing it acknowledged is lost. Pending proposals fail with [`NodeError::Stopped`].
    pub async fn shutdown(&self) -> Result<(), NodeError> {
        let (reply, answer) = oneshot::channel();
        if self.commands.send(Command::Shutdown(reply)).await.is_err() {
            return Ok(());
        }
        let _ = answer.await;
        Ok(())
    }
}
