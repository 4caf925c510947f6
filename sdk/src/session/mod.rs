//! Game sessions with host migration — what a game developer uses.
//!
//! The game implements [`Game`]. Every player runs a [`Session`]; the Raft leader is the
//! host: it collects the players' inputs, asks the game for the next [`TickRecord`] and
//! replicates it. A tick is *committed* once a majority of voters hold it, and every player
//! then applies it, so every player holds the game state of the last committed tick and any
//! voter can take over there. Inputs carry (player, sequence): a player re-sends the ones
//! not yet in a committed tick to whoever hosts next, and each is applied exactly once.
//!
//! Both replication styles work: *lockstep* (the record carries the inputs, and `apply`
//! re-simulates) and *authoritative state* (`tick` puts the state change in the payload and
//! `apply` installs it).

pub mod fitness;
mod host;
mod machine;

use crate::raft::{Fitness, NodeId};
use crate::runtime::{Bootstrap, Node, NodeConfig, NodeError, NodeStatus};
use crate::transport::{Identity, Invite, SessionCredentials};
pub use machine::GameMachine;
use machine::{lock, Replica, SharedReplica};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, oneshot, Mutex as AsyncMutex};

pub use fitness::{FitnessInputs, FitnessWeights};

/// One player's input, as carried in a tick record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlayerInput {
    /// The player who sent it (authenticated by the transport, not claimed).
    pub player: NodeId,
    /// The player's sequence number for it, from 1, without gaps.
    pub sequence: u64,
    /// Game-defined bytes.
    pub data: Vec<u8>,
}

/// The replicated result of one tick.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TickRecord {
    /// Tick number, from 1, without gaps.
    pub tick: u64,
    /// Inputs consumed by this tick, each player's in sequence order.
    pub inputs: Vec<PlayerInput>,
    /// Game-defined bytes from [`Game::tick`] (empty in pure lockstep).
    pub payload: Vec<u8>,
}

/// A game refused a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct GameError(pub String);

/// What a game implements. `apply` runs on every player for every committed tick, in
/// order; `tick` runs only on the host, against the state of the last committed tick.
pub trait Game: Send + 'static {
    /// Advances this replica by one committed tick. Must be deterministic.
    fn apply(&mut self, record: &TickRecord);
    /// Host only: the payload of tick `tick`, given the inputs it consumes. Must not change
    /// the state — the change happens in `apply`, on every player alike.
    fn tick(&self, tick: u64, inputs: &[PlayerInput]) -> Vec<u8>;
    /// The whole game state as bytes.
    fn snapshot(&self) -> Result<Vec<u8>, GameError>;
    /// Replaces the whole game state.
    fn restore(&mut self, snapshot: &[u8]) -> Result<(), GameError>;
}

/// When the host produces a tick.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TickMode {
    /// A tick every `1/hz` seconds (real-time games: 20–60 Hz).
    FixedRate {
        /// Ticks per second.
        hz: u32,
    },
    /// A tick once every member has an input waiting, or when the turn timer runs out.
    TurnBased {
        /// Longest a turn waits for slow players.
        turn_timeout: Duration,
    },
}

/// Session settings. `Default` suits a 30 Hz game of up to a dozen players.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The node underneath (storage, transport and the address it advertises, Raft timing).
    pub node: NodeConfig,
    /// How ticks are paced.
    pub tick_mode: TickMode,
    /// Most voters the session keeps; every other player is a warm learner.
    pub max_voters: usize,
    /// Weights of the fitness parts.
    pub fitness_weights: FitnessWeights,
    /// How much fitter (in thousandths) a voter must be for the host to hand over to it.
    pub handoff_margin: u16,
    /// How long some caught-up voter must stay that much fitter, without a break, before
    /// the host hands over (to the fittest voter at that moment).
    pub handoff_hold: Duration,
    /// How often fitness is measured and host policies run.
    pub policy_interval: Duration,
    /// A voter unheard of for this long is demoted so a learner can take its seat.
    pub voter_absence_limit: Duration,
    /// How often a player re-sends inputs that are not yet in a committed tick.
    pub input_retry_interval: Duration,
    /// Inputs a player may have outstanding; past it `submit_input` waits.
    pub inputs_in_flight_max: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            node: NodeConfig::default(),
            tick_mode: TickMode::FixedRate { hz: 30 },
            max_voters: 5,
            fitness_weights: FitnessWeights::default(),
            handoff_margin: 150,
            handoff_hold: Duration::from_secs(2),
            policy_interval: Duration::from_millis(250),
            voter_absence_limit: Duration::from_secs(3),
            input_retry_interval: Duration::from_millis(200),
            inputs_in_flight_max: 1024,
        }
    }
}

/// What happened in the session.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionEvent {
    /// This player now hosts; its first tick will be `next_tick`.
    BecameHost {
        /// The tick the new host produces first.
        next_tick: u64,
    },
    /// This player no longer hosts.
    LostHost,
    /// The host is now `host` (`None` while an election runs).
    HostChanged {
        /// The new host.
        host: Option<NodeId>,
    },
    /// Tick `tick` is committed and applied here.
    TickCommitted {
        /// The tick number.
        tick: u64,
    },
    /// One of this player's inputs was applied in tick `tick`.
    InputCommitted {
        /// The input's sequence number.
        sequence: u64,
        /// The tick that consumed it.
        tick: u64,
    },
    /// A player joined (as a learner).
    PlayerJoined(NodeId),
    /// A player left the session.
    PlayerLeft(NodeId),
    /// This player became a voter.
    Promoted,
    /// This player became a learner.
    Demoted,
    /// This player's fitness changed noticeably.
    FitnessChanged(Fitness),
    /// The host could not keep the tick rate: the previous tick had not committed yet.
    TickOverrun {
        /// The tick that was due.
        tick: u64,
    },
    /// Something went wrong that the game may want to show.
    Error(String),
}

/// Messages between session layers (inside the runtime's session channel).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum SessionMessage {
    /// Inputs for the host, in sequence order.
    Inputs(Vec<(u64, Vec<u8>)>),
    /// The sender wants to leave: the host removes it from the cluster.
    Leave,
    /// The host removed the receiver. Sent because a removed node stops receiving the log
    /// the moment the leader appends its removal, so it cannot learn it from the log.
    Removed,
}

/// A session's view, for menus and tests.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionStatus {
    /// The node's view (role, leader, members, progress).
    pub node: NodeStatus,
    /// Last tick applied here.
    pub last_tick: u64,
    /// How many voters may fail at once with the session still going.
    pub survivable_voter_failures: usize,
}

/// Requests from the [`Session`] handle to its task.
pub(crate) enum Request {
    SubmitInput {
        data: Vec<u8>,
        reply: oneshot::Sender<u64>,
    },
    SetGameScore(f64),
    Leave {
        reply: oneshot::Sender<Result<(), NodeError>>,
    },
}

/// A player's handle on the session.
pub struct Session<G: Game> {
    node: Node<GameMachine<G>>,
    replica: SharedReplica<G>,
    requests: mpsc::Sender<Request>,
    events: broadcast::Sender<SessionEvent>,
    task: Arc<AsyncMutex<Option<tokio::task::JoinHandle<()>>>>,
}

/// Bound on queued requests from the handle.
const REQUEST_QUEUE_LEN_MAX: usize = 1024;
/// Session events kept for slow subscribers.
const EVENT_QUEUE_LEN_MAX: usize = 4096;

impl<G: Game> Session<G> {
    /// Founds a session hosted by this player.
    pub async fn host(
        config: SessionConfig,
        identity: Identity,
        game: G,
    ) -> Result<Session<G>, NodeError> {
        Self::start(
            config,
            identity,
            SessionCredentials::generate(),
            game,
            Bootstrap::NewCluster,
        )
        .await
    }

    /// Joins the session an invite names (or restarts from this player's storage).
    pub async fn join(
        invite: &Invite,
        config: SessionConfig,
        identity: Identity,
        game: G,
    ) -> Result<Session<G>, NodeError> {
        let bootstrap = Bootstrap::Join {
            addrs: invite.addrs.clone(),
        };
        Self::start(
            config,
            identity,
            invite.credentials.clone(),
            game,
            bootstrap,
        )
        .await
    }

    async fn start(
        config: SessionConfig,
        identity: Identity,
        credentials: SessionCredentials,
        game: G,
        bootstrap: Bootstrap,
    ) -> Result<Session<G>, NodeError> {
        let replica = Arc::new(std::sync::Mutex::new(Replica {
            game,
            progress: Default::default(),
        }));
        let (committed_tx, committed_rx) = mpsc::unbounded_channel();
        let machine = GameMachine {
            replica: replica.clone(),
            committed: committed_tx,
        };
        let node = Node::start(
            config.node.clone(),
            identity,
            credentials,
            machine,
            bootstrap,
        )
        .await?;
        let (requests_tx, requests_rx) = mpsc::channel(REQUEST_QUEUE_LEN_MAX);
        let (events_tx, _) = broadcast::channel(EVENT_QUEUE_LEN_MAX);
        let task = host::SessionTask::spawn(
            config,
            node.clone(),
            replica.clone(),
            committed_rx,
            requests_rx,
            events_tx.clone(),
        );
        Ok(Session {
            node,
            replica,
            requests: requests_tx,
            events: events_tx,
            task: Arc::new(AsyncMutex::new(Some(task))),
        })
    }

    /// This player's id.
    pub fn id(&self) -> NodeId {
        self.node.id()
    }

    /// An invite other players can join with.
    pub fn invite(&self) -> Invite {
        self.node.invite()
    }

    /// Subscribes to session events.
    pub fn events(&self) -> broadcast::Receiver<SessionEvent> {
        self.events.subscribe()
    }

    /// Sends an input to the host; returns its sequence number. It is applied exactly once,
    /// in a later tick, even across host migrations ([`SessionEvent::InputCommitted`]).
    pub async fn submit_input(&self, data: Vec<u8>) -> Result<u64, NodeError> {
        let (reply, sequence) = oneshot::channel();
        self.requests
            .send(Request::SubmitInput { data, reply })
            .await
            .map_err(|_| NodeError::Stopped)?;
        sequence.await.map_err(|_| NodeError::Stopped)
    }

    /// Sets the game's own fitness score in `[0, 1]` (battery, device class, 0 when
    /// backgrounded). A host whose score drops hands over to a fitter voter.
    pub async fn set_game_score(&self, score: f64) -> Result<(), NodeError> {
        self.requests
            .send(Request::SetGameScore(score))
            .await
            .map_err(|_| NodeError::Stopped)
    }

    /// Reads this player's replica of the game (the state of the last tick applied here).
    pub fn with_game<R>(&self, read: impl FnOnce(&G, u64) -> R) -> R {
        let replica = lock(&self.replica);
        read(&replica.game, replica.progress.last_tick)
    }

    /// The session's view.
    pub async fn status(&self) -> Result<SessionStatus, NodeError> {
        let node = self.node.status().await?;
        let last_tick = lock(&self.replica).progress.last_tick;
        let survivable_voter_failures = node.membership.voters.len().saturating_sub(1) / 2;
        Ok(SessionStatus {
            node,
            last_tick,
            survivable_voter_failures,
        })
    }

    /// The node underneath, for advanced control (membership, transfers, status).
    pub fn node(&self) -> &Node<GameMachine<G>> {
        &self.node
    }

    /// Leaves gracefully: a host first hands over to the fittest caught-up voter, then the
    /// player asks to be removed and stops. No committed tick is lost.
    pub async fn leave(&self) -> Result<(), NodeError> {
        let (reply, done) = oneshot::channel();
        self.requests
            .send(Request::Leave { reply })
            .await
            .map_err(|_| NodeError::Stopped)?;
        let outcome = done.await.map_err(|_| NodeError::Stopped)?;
        self.stop().await;
        outcome
    }

    /// Stops this player at once, without handing over (the others elect a new host).
    pub async fn stop(&self) {
        if let Some(task) = self.task.lock().await.take() {
            task.abort();
        }
        let _ = self.node.shutdown().await;
    }
}
