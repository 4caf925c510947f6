//! Game sessions with host migration — what a game developer uses.
//!
//! Every player runs a session; the Raft leader is the host: it collects the players'
//! inputs, has the game compute the next [`TickRecord`] and replicates it. A tick is
//! *committed* once a majority of voters hold it, and every player then applies it, so
//! every player holds the game state of the last committed tick and any voter can take
//! over there. Inputs carry (player, incarnation, sequence): a player re-sends the ones not
//! yet in a committed tick to whoever hosts next, and each is applied exactly once.
//!
//! Two ways to drive it, over the same sans-IO [`SessionCore`]:
//! - **Poll** ([`SessionHandle`], and the C ABI over it): the game pumps the session on
//!   its own thread, polls [`Event`]s, and answers requests (`RunTick`, `MakeSnapshot`)
//!   with calls. No game code ever runs on the network's threads.
//! - **Async Rust** ([`Session`] with a [`Game`]): a thin adapter that runs the game's
//!   callbacks on a thread of its own and re-broadcasts [`SessionEvent`]s.
//!
//! Both replication styles work: *lockstep* (the record carries the inputs, and `apply`
//! re-simulates) and *authoritative state* (`tick` puts the state change in the payload and
//! `apply` installs it).

mod core;
mod driver;
pub mod fitness;
pub(crate) mod replica;

use crate::raft::{Fitness, NodeId};
use crate::runtime::{Node, NodeConfig, NodeError, NodeStatus};
use crate::transport::{Identity, Invite};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{broadcast, oneshot};

#[cfg(test)]
pub(crate) use self::core::{decode_player, encode_player, PlayerMessage};
pub use self::core::{
    Action, CallError, Event, GameImageHandoff, LeaveOutcome, Outcome, SessionCore, SessionView,
    INPUT_OVERHEAD_BYTES, LEAVE_TIMEOUT, RECORD_OVERHEAD_BYTES, TICK_INPUTS_PER_PLAYER_MAX,
};
pub use driver::SessionHandle;
pub use replica::{Applied, GameImage, InputMark, MachinePort, Progress, SessionMachine};

pub use fitness::{FitnessInputs, FitnessWeights};

/// One player's input, as carried in a tick record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlayerInput {
    /// The player who sent it (authenticated by the transport, not claimed).
    pub player: NodeId,
    /// The sending session's incarnation: a player that starts again with the same
    /// identity numbers its inputs from 1 under a greater incarnation.
    pub incarnation: u64,
    /// The player's sequence number for it, from 1 within the incarnation, without gaps.
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
    /// Pure lockstep: the host proposes each record with the inputs alone and an empty
    /// payload, without asking the game ([`Event::RunTick`] is never sent).
    pub lockstep: bool,
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
    /// Inputs a player may have outstanding; past it `submit_input` would block.
    pub inputs_in_flight_max: usize,
    /// Largest input, in bytes.
    pub input_bytes_max: usize,
    /// Largest payload the game may answer a [`Event::RunTick`] with, in bytes.
    pub tick_payload_bytes_max: usize,
    /// Largest encoded tick record, in bytes: inputs, payload and framing. It must fit in
    /// one transport frame with room for the Raft message around it.
    pub tick_record_bytes_max: usize,
    /// The game is asked for a snapshot every this many ticks; the log is compacted from
    /// the newest one (see [`Event::MakeSnapshot`]).
    pub snapshot_interval_ticks: u64,
    /// A host whose game has not answered a [`Event::RunTick`] for this long is taken as
    /// hung: it counts as fully loaded, and hands over. Shorter delays only delay ticks.
    pub game_answer_limit: Duration,
    /// Events the game may leave unpolled. At half of it the host stops starting ticks;
    /// at the bound the session stops with [`Event::Fatal`].
    pub events_queued_max: usize,
    /// This session's incarnation (see [`PlayerInput::incarnation`]); `None` takes the
    /// wall clock in microseconds, which grows across restarts. The simulator sets it.
    pub incarnation: Option<u64>,
}

/// Room a Raft append and the transport frame take around one tick record.
pub const FRAME_ROOM_BYTES: usize = 16 * 1024;

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            node: NodeConfig::default(),
            tick_mode: TickMode::FixedRate { hz: 30 },
            lockstep: false,
            max_voters: 5,
            fitness_weights: FitnessWeights::default(),
            handoff_margin: 150,
            handoff_hold: Duration::from_secs(2),
            policy_interval: Duration::from_millis(250),
            voter_absence_limit: Duration::from_secs(3),
            input_retry_interval: Duration::from_millis(200),
            inputs_in_flight_max: 1024,
            input_bytes_max: 4 * 1024,
            tick_payload_bytes_max: 64 * 1024,
            tick_record_bytes_max: 512 * 1024,
            snapshot_interval_ticks: 1024,
            game_answer_limit: Duration::from_secs(1),
            events_queued_max: 65_536,
            incarnation: None,
        }
    }
}

/// A setting that cannot work, named.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("session setting `{field}`: {reason}")]
pub struct ConfigError {
    /// The field, as spelled in [`SessionConfig`].
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl SessionConfig {
    /// Checks every setting the session layer uses; the node's settings are checked when
    /// the node starts.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field: &'static str, reason: &str| {
            Err(ConfigError {
                field,
                reason: reason.to_string(),
            })
        };
        match self.tick_mode {
            TickMode::FixedRate { hz } if hz == 0 || hz > 1000 => {
                return bad("tick_mode", "the tick rate must be 1 to 1000 Hz")
            }
            TickMode::TurnBased { turn_timeout } if turn_timeout.is_zero() => {
                return bad("tick_mode", "the turn timeout must not be zero")
            }
            _ => {}
        }
        if self.max_voters == 0 {
            return bad("max_voters", "a session needs at least one voter");
        }
        if self.handoff_margin > Fitness::MAX.0 {
            return bad("handoff_margin", "a margin above 1000 can never be met");
        }
        for (field, value) in [
            ("policy_interval", self.policy_interval),
            ("voter_absence_limit", self.voter_absence_limit),
            ("input_retry_interval", self.input_retry_interval),
            ("game_answer_limit", self.game_answer_limit),
        ] {
            if value.is_zero() {
                return bad(field, "must not be zero");
            }
        }
        if self.inputs_in_flight_max == 0 {
            return bad("inputs_in_flight_max", "must be at least 1");
        }
        if self.input_bytes_max == 0 {
            return bad("input_bytes_max", "must be at least 1");
        }
        if self.snapshot_interval_ticks == 0 {
            return bad("snapshot_interval_ticks", "must be at least 1");
        }
        if self.events_queued_max < 64 {
            return bad("events_queued_max", "must be at least 64");
        }
        let frame = self.node.transport.max_frame_bytes;
        if self.tick_record_bytes_max + FRAME_ROOM_BYTES > frame {
            return bad(
                "tick_record_bytes_max",
                &format!(
                    "with {FRAME_ROOM_BYTES} bytes of framing it must fit the transport's \
                     max_frame_bytes ({frame})"
                ),
            );
        }
        let one_input = self.input_bytes_max + INPUT_OVERHEAD_BYTES;
        if self.tick_payload_bytes_max + RECORD_OVERHEAD_BYTES + one_input
            > self.tick_record_bytes_max
        {
            return bad(
                "tick_payload_bytes_max",
                "a record with the largest payload must still fit one largest input \
                 within tick_record_bytes_max",
            );
        }
        Ok(())
    }

    /// Records the replicated state keeps after the game's newest image.
    pub(crate) fn snapshot_tail_ticks_max(&self) -> usize {
        usize::try_from(self.snapshot_interval_ticks.saturating_mul(4)).unwrap_or(usize::MAX)
    }
}

/// Why a session call failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// A setting cannot work.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The node underneath failed.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// The session refused the call.
    #[error(transparent)]
    Call(#[from] CallError),
    /// The session stopped for this reason.
    #[error("the session stopped: {0}")]
    Fatal(String),
    /// The game refused or failed a request.
    #[error("game: {0}")]
    Game(#[from] GameError),
    /// An operating-system error (thread creation, ...).
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// What happened in the session, as the async [`Session`] broadcasts it.
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
    /// The game state was replaced by a snapshot at `tick`.
    Restored {
        /// The tick of the snapshot.
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
    /// Something went wrong that the game may want to show; the session goes on.
    Error(String),
    /// The leave finished; the session has stopped.
    Left(LeaveOutcome),
    /// The session stopped for this reason.
    Fatal(String),
}

/// A session's view, for menus and tests.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionStatus {
    /// The node's view (role, leader, members, progress).
    pub node: NodeStatus,
    /// Last tick applied to the game here.
    pub last_tick: u64,
    /// How many more voters may fail at once with the session still going. The host
    /// counts only the voters it has heard from recently; another player, which cannot
    /// tell, counts every voter. While a change of the voters is not committed, the
    /// smaller of the counts under the old and the new voters: a host that crashes right
    /// after promoting a third voter may take the promotion with it, and the two voters
    /// left of the old configuration cannot elect a new host without the crashed one.
    pub survivable_voter_failures: usize,
}

impl SessionStatus {
    fn from_node(node: NodeStatus, last_tick: u64) -> SessionStatus {
        let survivable_voter_failures = survivable_failures(&node, &node.membership.voters).min(
            survivable_failures(&node, &node.committed_membership.voters),
        );
        SessionStatus {
            node,
            last_tick,
            survivable_voter_failures,
        }
    }
}

/// How many of `voters` may fail with a majority of them still live, as `node` sees it.
fn survivable_failures(node: &NodeStatus, voters: &BTreeSet<NodeId>) -> usize {
    let live = if node.role == crate::raft::Role::Leader {
        let heard = |id: &NodeId| {
            node.progress
                .iter()
                .any(|peer| peer.id == *id && peer.recently_active)
        };
        voters
            .iter()
            .filter(|&id| *id == node.id || heard(id))
            .count()
    } else {
        voters.len()
    };
    live.saturating_sub(voters.len() / 2 + 1)
}

/// Session events kept for slow subscribers.
const SUBSCRIBER_QUEUE_LEN_MAX: usize = 4096;
/// How long the game thread waits for an event before checking whether to end.
const GAME_THREAD_WAIT: Duration = Duration::from_millis(50);
/// How long `host`/`join` wait for the node to start.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The game and the last tick applied to it, shared by the adapter's game thread and
/// [`Session::with_game`]; no session or network code runs under this lock.
struct GameCell<G> {
    game: G,
    last_tick: u64,
}

/// A player's handle on the session, for Rust games: the [`Game`]'s callbacks run on a
/// thread of the session's own (never on the network's), driven by the same events a
/// [`SessionHandle`] polls.
pub struct Session<G: Game> {
    handle: SessionHandle,
    node: Node<SessionMachine>,
    game: Arc<Mutex<GameCell<G>>>,
    events: broadcast::Sender<SessionEvent>,
    ended: Arc<Mutex<Option<oneshot::Receiver<Ended>>>>,
}

/// How the game thread ended.
#[derive(Debug, Clone)]
enum Ended {
    Left(LeaveOutcome),
    Fatal(String),
}

fn lock<G>(cell: &Mutex<GameCell<G>>) -> MutexGuard<'_, GameCell<G>> {
    // A panic in game code is caught on the game thread and ends the session; the state
    // left behind is what the game made of it, and it is only read from then on.
    cell.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl<G: Game> Session<G> {
    /// Founds a session hosted by this player.
    pub async fn host(
        config: SessionConfig,
        identity: Identity,
        game: G,
    ) -> Result<Session<G>, SessionError> {
        let handle = SessionHandle::host(config, identity, &tokio::runtime::Handle::current())?;
        Self::adapt(handle, game, false).await
    }

    /// Joins the session an invite names (or restarts from this player's storage).
    pub async fn join(
        invite: &Invite,
        config: SessionConfig,
        identity: Identity,
        game: G,
    ) -> Result<Session<G>, SessionError> {
        let handle =
            SessionHandle::join(invite, config, identity, &tokio::runtime::Handle::current())?;
        Self::adapt(handle, game, true).await
    }

    async fn adapt(
        handle: SessionHandle,
        game: G,
        joining: bool,
    ) -> Result<Session<G>, SessionError> {
        let game = Arc::new(Mutex::new(GameCell { game, last_tick: 0 }));
        let (events, _) = broadcast::channel(SUBSCRIBER_QUEUE_LEN_MAX);
        let (started_tx, started_rx) = oneshot::channel();
        let (ended_tx, ended_rx) = oneshot::channel();
        let thread = GameThread {
            handle: handle.clone(),
            game: game.clone(),
            events: events.clone(),
            started: Some(started_tx),
            ended: Some(ended_tx),
        };
        std::thread::Builder::new()
            .name(format!("baton-game-{:016x}", handle.id()))
            .spawn(move || thread.run())?;
        match tokio::time::timeout(START_TIMEOUT, started_rx).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(reason))) => return Err(SessionError::Fatal(reason)),
            Ok(Err(_)) => return Err(SessionError::Fatal("the game thread ended".into())),
            Err(_) => return Err(SessionError::Node(NodeError::Timeout(START_TIMEOUT))),
        }
        let node = handle
            .node()
            .cloned()
            .ok_or_else(|| SessionError::Fatal("started without a node".into()))?;
        if joining {
            // A wrong secret or another session's invite must reach the caller as an
            // error, not as a join retried for ever.
            if let Err(err) = node.joined(START_TIMEOUT).await {
                handle.stop().await;
                return Err(SessionError::Node(err));
            }
        }
        Ok(Session {
            handle,
            node,
            game,
            events,
            ended: Arc::new(Mutex::new(Some(ended_rx))),
        })
    }

    /// This player's id.
    pub fn id(&self) -> NodeId {
        self.handle.id()
    }

    /// An invite other players can join with.
    pub fn invite(&self) -> Invite {
        self.node.invite()
    }

    /// Subscribes to session events from now on: events sent before the subscription are
    /// not replayed. A founder may already host when [`host`](Self::host) returns, so read
    /// the current state after subscribing ([`SessionHandle::view`] through
    /// [`handle`](Self::handle): `hosting`, `host`, `last_tick`) instead of waiting for a
    /// [`SessionEvent::BecameHost`] that came first.
    pub fn events(&self) -> broadcast::Receiver<SessionEvent> {
        self.events.subscribe()
    }

    /// The poll-based handle this session is built on.
    pub fn handle(&self) -> &SessionHandle {
        &self.handle
    }

    /// Sends an input to the host; returns its sequence number. It is applied exactly once,
    /// in a later tick, even across host migrations ([`SessionEvent::InputCommitted`]).
    /// Waits while the window of inputs in flight is full.
    pub async fn submit_input(&self, data: Vec<u8>) -> Result<u64, SessionError> {
        loop {
            match self.handle.submit_input(&data) {
                Err(CallError::WouldBlock) => {
                    self.handle.events_queued(GAME_THREAD_WAIT).await;
                }
                other => return other.map_err(SessionError::from),
            }
        }
    }

    /// Sets the game's own fitness score in `[0, 1]` (battery, device class, 0 when
    /// backgrounded). A host whose score drops hands over to a fitter voter.
    pub async fn set_game_score(&self, score: f64) -> Result<(), SessionError> {
        self.handle.set_game_score(score);
        Ok(())
    }

    /// Tells the session that the device's network changed (Wi-Fi to mobile data, a cable
    /// plugged in): over the Internet it re-registers at once, so the others reach it again
    /// in a round trip instead of after `register_interval`. Call it from the OS's or the
    /// engine's connectivity callback; returns whether there was anything to do.
    pub fn network_changed(&self) -> bool {
        self.handle.network_changed()
    }

    /// Reads this player's replica of the game (the state of the last tick applied here).
    pub fn with_game<R>(&self, read: impl FnOnce(&G, u64) -> R) -> R {
        let cell = lock(&self.game);
        read(&cell.game, cell.last_tick)
    }

    /// The session's view.
    pub async fn status(&self) -> Result<SessionStatus, SessionError> {
        let node = self.node.status().await?;
        let last_tick = lock(&self.game).last_tick;
        Ok(SessionStatus::from_node(node, last_tick))
    }

    /// The node underneath, for advanced control (membership, transfers, status).
    pub fn node(&self) -> &Node<SessionMachine> {
        &self.node
    }

    /// Leaves gracefully: a host first hands over to the fittest caught-up voter, then the
    /// player asks to be removed and stops. No committed tick is lost.
    pub async fn leave(&self) -> Result<LeaveOutcome, SessionError> {
        self.handle.leave()?;
        let ended = self.ended.lock().ok().and_then(|mut ended| ended.take());
        let outcome = match ended {
            Some(ended) => match ended.await {
                Ok(Ended::Left(outcome)) => Ok(outcome),
                Ok(Ended::Fatal(reason)) => Err(SessionError::Fatal(reason)),
                Err(_) => Err(SessionError::Fatal("the game thread ended".into())),
            },
            None => Err(SessionError::Call(CallError::Stopped)),
        };
        self.stop().await;
        outcome
    }

    /// Stops this player at once, without handing over (the others elect a new host).
    pub async fn stop(&self) {
        self.handle.stop().await;
    }
}

/// The adapter's game thread: polls the handle and runs the game's callbacks.
struct GameThread<G> {
    handle: SessionHandle,
    game: Arc<Mutex<GameCell<G>>>,
    events: broadcast::Sender<SessionEvent>,
    started: Option<oneshot::Sender<Result<(), String>>>,
    ended: Option<oneshot::Sender<Ended>>,
}

impl<G: Game> GameThread<G> {
    fn run(mut self) {
        loop {
            let Some(event) = self.handle.wait_event(GAME_THREAD_WAIT) else {
                continue;
            };
            let handled =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.handle_event(event)));
            let end = match handled {
                Ok(None) => continue,
                Ok(Some(end)) => end,
                Err(_) => {
                    let reason = "the game panicked".to_string();
                    tracing::error!(reason, "session stopping");
                    // The session task shuts the node down once it sees the core stopped.
                    self.handle.stop_soon();
                    let _ = self.events.send(SessionEvent::Fatal(reason.clone()));
                    Ended::Fatal(reason)
                }
            };
            if let Some(started) = self.started.take() {
                let reason = match &end {
                    Ended::Fatal(reason) => reason.clone(),
                    Ended::Left(_) => "left before it started".into(),
                };
                let _ = started.send(Err(reason));
            }
            if let Some(ended) = self.ended.take() {
                let _ = ended.send(end);
            }
            return;
        }
    }

    fn notify(&self, event: SessionEvent) {
        let _ = self.events.send(event);
    }

    /// Runs one event; `Some` once the session is over.
    fn handle_event(&mut self, event: Event) -> Option<Ended> {
        match event {
            Event::Started { .. } => {
                if let Some(started) = self.started.take() {
                    let _ = started.send(Ok(()));
                }
            }
            Event::ApplyTick(record) => {
                let tick = record.tick;
                {
                    let mut cell = lock(&self.game);
                    cell.game.apply(&record);
                    cell.last_tick = tick;
                }
                self.notify(SessionEvent::TickCommitted { tick });
            }
            Event::RunTick { tick, inputs } => {
                let payload = lock(&self.game).game.tick(tick, &inputs);
                if let Err(err) = self.handle.commit_tick(tick, payload) {
                    self.notify(SessionEvent::Error(format!("tick {tick}: {err}")));
                }
            }
            Event::MakeSnapshot { tick } => {
                let snapshot = lock(&self.game).game.snapshot();
                match snapshot {
                    Ok(bytes) => {
                        if let Err(err) = self.handle.answer_snapshot(tick, bytes) {
                            tracing::debug!(tick, %err, "snapshot answer not taken");
                        }
                    }
                    Err(err) => self.notify(SessionEvent::Error(format!("snapshot: {err}"))),
                }
            }
            Event::Restore { tick, snapshot } => {
                let restored = {
                    let mut cell = lock(&self.game);
                    let restored = cell.game.restore(&snapshot);
                    if restored.is_ok() {
                        cell.last_tick = tick;
                    }
                    restored
                };
                match restored {
                    Ok(()) => self.notify(SessionEvent::Restored { tick }),
                    Err(err) => {
                        let reason = format!("the game refused the snapshot at tick {tick}: {err}");
                        self.handle.stop_soon();
                        self.notify(SessionEvent::Fatal(reason.clone()));
                        return Some(Ended::Fatal(reason));
                    }
                }
            }
            Event::InputCommitted { sequence, tick } => {
                self.notify(SessionEvent::InputCommitted { sequence, tick })
            }
            Event::BecameHost { next_tick } => self.notify(SessionEvent::BecameHost { next_tick }),
            Event::LostHost => self.notify(SessionEvent::LostHost),
            Event::HostChanged { host } => self.notify(SessionEvent::HostChanged { host }),
            Event::PlayerJoined(id) => self.notify(SessionEvent::PlayerJoined(id)),
            Event::PlayerLeft(id) => self.notify(SessionEvent::PlayerLeft(id)),
            Event::Promoted => self.notify(SessionEvent::Promoted),
            Event::Demoted => self.notify(SessionEvent::Demoted),
            Event::FitnessChanged(fitness) => self.notify(SessionEvent::FitnessChanged(fitness)),
            Event::TickOverrun { tick } => self.notify(SessionEvent::TickOverrun { tick }),
            Event::Warning(reason) => self.notify(SessionEvent::Error(reason)),
            Event::Left(outcome) => {
                self.notify(SessionEvent::Left(outcome));
                return Some(Ended::Left(outcome));
            }
            Event::Fatal(reason) => {
                self.notify(SessionEvent::Fatal(reason.clone()));
                return Some(Ended::Fatal(reason));
            }
        }
        None
    }
}
