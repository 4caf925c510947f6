//! The session as a sans-IO state machine: what one player does, with no tokio, no
//! sockets, no clock and no game code inside.
//!
//! Like `quinn-proto` for QUIC and `baton-core` for Raft, [`SessionCore`] is driven from
//! outside. Its method families, and the order to call them:
//!
//! 1. **Inputs** (`handle_*`): what the replicated state applied ([`Applied`]), the node's
//!    role and membership, a message from another player, the node's status (asked for by
//!    [`Action::QueryStatus`]), the outcome of an [`Action`], and the passing of time
//!    ([`SessionCore::handle_timeout`]).
//! 2. **The game's calls**: [`submit_input`](SessionCore::submit_input),
//!    [`commit_tick`](SessionCore::commit_tick),
//!    [`answer_snapshot`](SessionCore::answer_snapshot),
//!    [`set_game_score`](SessionCore::set_game_score), [`leave`](SessionCore::leave).
//! 3. **Outputs**, drained after every input: [`poll_event`](SessionCore::poll_event) for
//!    the game, [`poll_action`](SessionCore::poll_action) for the runtime, and
//!    [`poll_timeout`](SessionCore::poll_timeout), the next instant `handle_timeout` is due.
//!
//! Time is a parameter (`now`), so the simulator runs this exact code against a seeded
//! clock. The runtime's session task owns one core behind a lock it holds only for the
//! length of one call; the game pumps it from its own thread.

use super::fitness::{self, FitnessInputs, HandoffHold, LossMeter};
use super::replica::{Applied, GameImage, Progress};
use super::{PlayerInput, SessionConfig, TickMode, TickRecord};
use crate::raft::{Fitness, Membership, MembershipChange, NodeId, PeerProgress, Role};
use crate::runtime::wire::{decode_prefix, encode};
use crate::runtime::NodeStatus;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Inputs of one player a single tick consumes at most; the rest wait for the next tick.
pub const TICK_INPUTS_PER_PLAYER_MAX: usize = 64;
/// Bytes a bincode-encoded [`PlayerInput`] takes beyond its data, at most (three varint
/// integers and a length).
pub const INPUT_OVERHEAD_BYTES: usize = 40;
/// Bytes a bincode-encoded [`TickRecord`] takes beyond its inputs and payload, at most.
pub const RECORD_OVERHEAD_BYTES: usize = 32;
/// Inputs a player re-sends in one message at most.
const MESSAGE_INPUTS_MAX: usize = 256;
/// A voter this many entries behind the host's log still counts as caught up.
const CAUGHT_UP_LAG_ENTRIES_MAX: u64 = 8;
/// A fitness change smaller than this (in thousandths) is not reported as an event.
const FITNESS_EVENT_STEP: u16 = 25;
/// Longest a graceful leave waits for the handoff and its removal.
pub const LEAVE_TIMEOUT: Duration = Duration::from_secs(10);
/// Weight of the newest tick in the smoothed tick load.
const TICK_LOAD_SMOOTHING: f64 = 0.2;

/// What the game polls, in order. Requests (`RunTick`, `MakeSnapshot`) are answered with a
/// call; everything else is news.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The session's node is running (with this id); the first event of every session.
    Started {
        /// This player's id.
        id: NodeId,
    },
    /// Apply this committed tick to the game state. Ticks come once each, in order.
    ApplyTick(TickRecord),
    /// Host only: compute tick `tick` from these inputs, against the state of the ticks
    /// applied so far, and answer with [`SessionCore::commit_tick`]. Not asked in lockstep
    /// ([`SessionConfig::lockstep`]), where the record is the inputs alone.
    RunTick {
        /// The tick to produce.
        tick: u64,
        /// The inputs it consumes, each player's in sequence order.
        inputs: Vec<PlayerInput>,
    },
    /// Make a snapshot of the game state as it is now, after tick `tick`, and answer with
    /// [`SessionCore::answer_snapshot`]. The bytes may be produced later (say, on a worker
    /// thread), but must be the state at this tick: copy it before applying the next one.
    MakeSnapshot {
        /// The tick the state is at.
        tick: u64,
    },
    /// Replace the whole game state with this snapshot (made by some player's game after
    /// tick `tick`); the ticks after it follow as `ApplyTick`.
    Restore {
        /// The tick the snapshot is at.
        tick: u64,
        /// The game's bytes.
        snapshot: Vec<u8>,
    },
    /// One of this player's inputs was applied, in tick `tick` (or in a snapshot restored
    /// at `tick`).
    InputCommitted {
        /// The input's sequence number.
        sequence: u64,
        /// The tick that consumed it.
        tick: u64,
    },
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
    /// The host could not keep the tick rate: tick `tick` was due while the previous one
    /// was still with the game or not yet committed.
    TickOverrun {
        /// The tick that was due.
        tick: u64,
    },
    /// Something went wrong that the game may want to show; the session goes on.
    Warning(String),
    /// The leave finished; the session has stopped.
    Left(LeaveOutcome),
    /// The session stopped and will produce nothing more. The game's state is that of the
    /// last tick it applied, which was committed.
    Fatal(String),
}

/// How a graceful leave ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaveOutcome {
    /// This player hosted and handed the host role to `to` first; then it was removed.
    HandedOver {
        /// The new host.
        to: NodeId,
    },
    /// This player was removed from the session (it did not host).
    Removed,
    /// This player hosted and no voter was caught up to take over: it removed itself and
    /// the remaining voters elect a host among them (a crash-sized pause for the others).
    RemovedWithoutSuccessor,
    /// This player was the only voter and nobody could take over: the session ended.
    SessionEnded,
    /// The leave did not finish within [`LEAVE_TIMEOUT`] (no host answered, or the
    /// handoff kept failing): the player stopped without it, as if it had crashed.
    TimedOut,
}

/// Why the session refused a call of the game's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// As many inputs as [`SessionConfig::inputs_in_flight_max`] await commitment; try
    /// again after an [`Event::InputCommitted`].
    #[error("too many inputs awaiting commitment; try again later")]
    WouldBlock,
    /// The input exceeds [`SessionConfig::input_bytes_max`].
    #[error("input of {len} bytes exceeds the limit of {max}")]
    InputTooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The payload exceeds [`SessionConfig::tick_payload_bytes_max`]; the request stays
    /// open for a smaller answer.
    #[error("tick payload of {len} bytes exceeds the limit of {max}")]
    PayloadTooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// No request for this tick is open (answered already, or hosting moved on).
    #[error("no open request for tick {0}")]
    NoSuchRequest(u64),
    /// A leave is already under way.
    #[error("already leaving")]
    Leaving,
    /// The session has stopped.
    #[error("the session has stopped")]
    Stopped,
}

/// What the runtime must do for the core. Each has an outcome the runtime reports back
/// with [`SessionCore::handle_outcome`] where one is named.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Replicate this encoded tick record (outcome: [`Outcome::TickProposed`]).
    Propose {
        /// The record's tick.
        tick: u64,
        /// The encoded record.
        record: Vec<u8>,
    },
    /// Send these bytes to the session core of `to` (best effort; senders retry).
    Send {
        /// The receiving player.
        to: NodeId,
        /// An encoded message.
        bytes: Vec<u8>,
    },
    /// Wait until this node has applied every committed entry (a linearizable read);
    /// outcome: [`Outcome::Barrier`].
    Barrier,
    /// Apply a membership change (outcome: [`Outcome::Policy`]).
    ChangeMembership(MembershipChange),
    /// Hand leadership to `target` (outcome: [`Outcome::Policy`]).
    Transfer {
        /// The voter to hand over to.
        target: NodeId,
    },
    /// Tell the core this node's status ([`SessionCore::handle_status`]).
    QueryStatus,
    /// Set this node's fitness in the Raft core.
    SetFitness(Fitness),
    /// The player is leaving: the node must not ask to join again when it hears from no
    /// leader, which is what a removal it was not told of looks like.
    StopRejoining,
    /// Hand the game's newest image to the replicated state, for snapshots.
    SaveImage(GameImageHandoff),
    /// Stop the node: the session is over.
    Stop,
}

/// A game image on its way to the replicated state (opaque outside the crate).
#[derive(Debug, Clone, PartialEq)]
pub struct GameImageHandoff(pub(crate) GameImage);

/// How an [`Action`] ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A proposed tick was applied (`applied` false: another record held its number), or
    /// failed.
    TickProposed {
        /// The record's tick.
        tick: u64,
        /// `Ok(true)` applied, `Ok(false)` refused by the replicated state, `Err` failed.
        result: Result<bool, String>,
    },
    /// The barrier completed, or failed.
    Barrier(Result<(), String>),
    /// A membership change or transfer completed, or failed.
    Policy(Result<(), String>),
}

/// Messages between the session cores of players.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum PlayerMessage {
    /// Inputs for the host, of one incarnation, in sequence order.
    Inputs {
        incarnation: u64,
        inputs: Vec<(u64, Vec<u8>)>,
    },
    /// The sender wants to leave: the host removes it from the session.
    Leave,
    /// The host removed the receiver. Sent because a removed node stops receiving the log
    /// the moment the leader appends its removal, so it cannot learn it from the log.
    Removed,
}

/// A player message as it crosses the wire (protocol 1.1): the message, then the sender's
/// life (its incarnation). The host needs the life to tell a `Leave` of a player's earlier
/// life, delivered late or replayed, from one of the life that rejoined since; without it
/// the stale request removes the new life, which then waits for a log it never receives.
/// A 1.0 receiver decodes the message and ignores the appended life; from a 1.0 sender
/// the life is unknown (`None`).
pub(crate) fn encode_player(
    message: &PlayerMessage,
    life: u64,
) -> Result<Vec<u8>, bincode::error::EncodeError> {
    let mut bytes = encode(message)?;
    bytes.extend(encode(&life)?);
    Ok(bytes)
}

/// The message and, from a 1.1 sender, its life; `None` if the bytes are malformed.
pub(crate) fn decode_player(bytes: &[u8]) -> Option<(PlayerMessage, Option<u64>)> {
    let (message, used) = decode_prefix::<PlayerMessage>(bytes)?;
    let rest = &bytes[used..];
    if rest.is_empty() {
        return Some((message, None));
    }
    // A later minor may append more after the life; what this one knows is read.
    let (life, _) = decode_prefix::<u64>(rest)?;
    Some((message, Some(life)))
}

/// Where a host's current tick is.
#[derive(Debug, Clone, PartialEq)]
enum TickStage {
    /// No tick under way.
    Idle,
    /// `RunTick` is with the game.
    WithGame {
        tick: u64,
        inputs: Vec<PlayerInput>,
        started: Instant,
    },
    /// Proposed at `proposed`; waits to be applied (or to fail).
    Proposed { tick: u64, proposed: Instant },
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Hosting {
    No,
    /// Leading, waiting for the barrier: the state must hold every committed tick first.
    Barrier,
    Ready,
}

/// A player's inputs waiting at the host, of the newest incarnation heard.
#[derive(Debug, Default)]
struct InboxQueue {
    incarnation: u64,
    inputs: BTreeMap<u64, Vec<u8>>,
}

impl InboxQueue {
    /// The sequence number of this queue's next input the replicated state will admit,
    /// given the player's `mark`; `None` if the queue's incarnation is superseded.
    fn first_needed(&self, mark: crate::session::InputMark) -> Option<u64> {
        if self.incarnation == mark.incarnation {
            Some(mark.sequence + 1)
        } else if self.incarnation > mark.incarnation {
            Some(1)
        } else {
            None
        }
    }
}

#[derive(Debug)]
struct Leaving {
    deadline: Instant,
    handed_to: Option<NodeId>,
    /// Every host asked to remove us: the one that did says so, perhaps after we stopped
    /// counting it as host (it no longer sends us the log, so we stop hearing from it).
    asked: BTreeSet<NodeId>,
    /// The host found nobody to hand over to and proposed its own removal.
    removing_self: bool,
}

/// What a policy in flight was, to act on its outcome.
#[derive(Debug, Clone, Copy, PartialEq)]
enum PolicyKind {
    Membership { removed: Option<NodeId> },
    Transfer { target: NodeId },
}

/// What one player's session knows of itself right now, without asking the node: for a
/// game's menus and overlays, and for the C ABI's `baton_status`.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionView {
    /// This player's id.
    pub id: NodeId,
    /// The host it knows of (`None` while an election runs).
    pub host: Option<NodeId>,
    /// Whether this player hosts and is producing ticks.
    pub hosting: bool,
    /// Whether this player is a voter of the configuration it knows.
    pub voter: bool,
    /// Voters of the configuration it knows.
    pub voters: usize,
    /// Learners of the configuration it knows.
    pub learners: usize,
    /// The last tick it has seen applied (the game may not have polled it yet).
    pub last_tick: u64,
    /// Its inputs submitted and not yet committed.
    pub inputs_pending: usize,
    /// Its fitness as last measured.
    pub fitness: Fitness,
    /// Whether a graceful leave is under way.
    pub leaving: bool,
    /// Whether the session has stopped.
    pub stopped: bool,
}

/// One player's session, sans-IO. See the module documentation for the call order.
pub struct SessionCore {
    config: SessionConfig,
    me: NodeId,
    incarnation: u64,
    progress: Progress,
    events: VecDeque<Event>,
    actions: VecDeque<Action>,
    stopped: bool,
    // Player side.
    next_sequence: u64,
    pending: BTreeMap<u64, Vec<u8>>,
    host: Option<NodeId>,
    role: Role,
    membership: Membership,
    game_score: f64,
    fitness: Fitness,
    reported_fitness: Fitness,
    leaving: Option<Leaving>,
    next_retry: Instant,
    next_policy: Instant,
    status_in_flight: bool,
    snapshot_request: Option<(u64, Progress)>,
    last_snapshot_tick: u64,
    // Host side.
    hosting: Hosting,
    inbox: BTreeMap<NodeId, InboxQueue>,
    stage: TickStage,
    next_tick_at: Instant,
    turn_started: Instant,
    tick_load: f64,
    /// The median round trip to the other voters, as last measured.
    median_rtt: Option<Duration>,
    loss: LossMeter,
    policy: Option<PolicyKind>,
    handoff: HandoffHold,
    absent_since: HashMap<NodeId, Instant>,
    /// Voters that have answered this host since it was elected (a match in its log).
    answered: BTreeSet<NodeId>,
    /// Players that asked this player, as host, to remove them, with the life that asked:
    /// never handed the host role or a seat.
    leavers: HashMap<NodeId, u64>,
    /// The newest life heard from each member (see [`encode_player`]).
    lives: HashMap<NodeId, u64>,
}

impl SessionCore {
    /// A core for player `me`. `incarnation` must grow each time this player's session
    /// starts again with the same identity (the runtime uses the wall clock in
    /// microseconds), so its new inputs, numbered from 1, are not taken for old ones.
    pub fn new(config: SessionConfig, me: NodeId, incarnation: u64, now: Instant) -> SessionCore {
        let mut core = SessionCore {
            me,
            incarnation,
            progress: Progress::default(),
            events: VecDeque::new(),
            actions: VecDeque::new(),
            stopped: false,
            next_sequence: 1,
            pending: BTreeMap::new(),
            host: None,
            role: Role::Follower,
            membership: Membership::default(),
            game_score: 1.0,
            fitness: Fitness::default(),
            reported_fitness: Fitness::default(),
            leaving: None,
            next_retry: now + config.input_retry_interval,
            next_policy: now,
            status_in_flight: false,
            snapshot_request: None,
            last_snapshot_tick: 0,
            hosting: Hosting::No,
            inbox: BTreeMap::new(),
            stage: TickStage::Idle,
            next_tick_at: now,
            turn_started: now,
            tick_load: 0.0,
            median_rtt: None,
            loss: LossMeter::default(),
            policy: None,
            handoff: HandoffHold::default(),
            absent_since: HashMap::new(),
            answered: BTreeSet::new(),
            leavers: HashMap::new(),
            lives: HashMap::new(),
            config,
        };
        // Every replica starts from the game's initial state: an image of it lets the log
        // be compacted before the first periodic snapshot.
        core.request_snapshot();
        core
    }

    // ---- outputs ------------------------------------------------------------------

    /// The next event for the game, if any.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Events waiting for the game.
    pub fn events_queued(&self) -> usize {
        self.events.len()
    }

    /// The next thing the runtime must do, if any.
    #[must_use]
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) is due next (`None` once stopped).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.stopped {
            return None;
        }
        let mut due = self.next_policy.min(self.next_retry);
        match self.config.tick_mode {
            TickMode::FixedRate { .. } if self.hosting == Hosting::Ready => {
                due = due.min(self.next_tick_at);
            }
            // The turn timer only starts a tick from Idle: while one is with the game or
            // proposed, an expired timer would be due at once, again and again (a spin).
            TickMode::TurnBased { turn_timeout }
                if self.hosting == Hosting::Ready && self.stage == TickStage::Idle =>
            {
                due = due.min(self.turn_started + turn_timeout);
            }
            _ => {}
        }
        if let Some(leaving) = &self.leaving {
            due = due.min(leaving.deadline);
        }
        Some(due)
    }

    // ---- read-only views ----------------------------------------------------------

    /// This player's id.
    pub fn id(&self) -> NodeId {
        self.me
    }

    /// The last tick this core has seen applied (the game may not have polled it yet).
    pub fn last_tick(&self) -> u64 {
        self.progress.last_tick
    }

    /// Whether this player hosts and is producing ticks.
    pub fn is_hosting(&self) -> bool {
        self.hosting == Hosting::Ready
    }

    /// Whether the session has stopped.
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// Inputs submitted and not yet committed.
    pub fn inputs_pending(&self) -> usize {
        self.pending.len()
    }

    /// This player's incarnation.
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// What this player knows of its session right now.
    pub fn view(&self) -> SessionView {
        SessionView {
            id: self.me,
            host: self.host,
            hosting: self.is_hosting(),
            voter: self.membership.voters.contains(&self.me),
            voters: self.membership.voters.len(),
            learners: self.membership.learners.len(),
            last_tick: self.progress.last_tick,
            inputs_pending: self.pending.len(),
            fitness: self.fitness,
            leaving: self.leaving.is_some(),
            stopped: self.stopped,
        }
    }

    // ---- the game's calls ---------------------------------------------------------

    /// Queues an input for the host; returns its sequence number. It is applied exactly
    /// once, in a later tick, even across host migrations ([`Event::InputCommitted`]).
    pub fn submit_input(&mut self, data: &[u8], now: Instant) -> Result<u64, CallError> {
        if self.stopped {
            return Err(CallError::Stopped);
        }
        if data.len() > self.config.input_bytes_max {
            return Err(CallError::InputTooLarge {
                len: data.len(),
                max: self.config.input_bytes_max,
            });
        }
        if self.pending.len() >= self.config.inputs_in_flight_max {
            return Err(CallError::WouldBlock);
        }
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        self.pending.insert(sequence, data.to_vec());
        self.send_pending_inputs(now);
        Ok(sequence)
    }

    /// Answers [`Event::RunTick`] with the tick's payload (empty for none).
    pub fn commit_tick(
        &mut self,
        tick: u64,
        payload: Vec<u8>,
        now: Instant,
    ) -> Result<(), CallError> {
        if self.stopped {
            return Err(CallError::Stopped);
        }
        let TickStage::WithGame { tick: open, .. } = &self.stage else {
            return Err(CallError::NoSuchRequest(tick));
        };
        if *open != tick {
            return Err(CallError::NoSuchRequest(tick));
        }
        if payload.len() > self.config.tick_payload_bytes_max {
            return Err(CallError::PayloadTooLarge {
                len: payload.len(),
                max: self.config.tick_payload_bytes_max,
            });
        }
        let TickStage::WithGame { tick, inputs, .. } =
            std::mem::replace(&mut self.stage, TickStage::Idle)
        else {
            return Err(CallError::NoSuchRequest(tick));
        };
        self.propose(tick, inputs, payload, now);
        Ok(())
    }

    /// Answers [`Event::MakeSnapshot`] with the game's bytes for tick `tick`.
    pub fn answer_snapshot(&mut self, tick: u64, snapshot: Vec<u8>) -> Result<(), CallError> {
        if self.stopped {
            return Err(CallError::Stopped);
        }
        match self.snapshot_request.take() {
            Some((requested, progress)) if requested == tick => {
                self.actions
                    .push_back(Action::SaveImage(GameImageHandoff(GameImage {
                        tick,
                        progress,
                        game: snapshot,
                    })));
                Ok(())
            }
            other => {
                self.snapshot_request = other;
                Err(CallError::NoSuchRequest(tick))
            }
        }
    }

    /// Sets the game's own fitness score in `[0, 1]` (battery, device class, 0 when
    /// backgrounded). A host whose score drops hands over to a fitter voter.
    pub fn set_game_score(&mut self, score: f64) {
        self.game_score = if score.is_finite() {
            score.clamp(0.0, 1.0)
        } else {
            0.0
        };
    }

    /// Starts a graceful leave: a host hands over to the fittest caught-up voter first,
    /// then the player asks to be removed. [`Event::Left`] says how it ended.
    pub fn leave(&mut self, now: Instant) -> Result<(), CallError> {
        if self.stopped {
            return Err(CallError::Stopped);
        }
        if self.leaving.is_some() {
            return Err(CallError::Leaving);
        }
        self.leaving = Some(Leaving {
            deadline: now + LEAVE_TIMEOUT,
            handed_to: None,
            asked: BTreeSet::new(),
            removing_self: false,
        });
        self.actions.push_back(Action::StopRejoining);
        // The next policy round acts on it, with a fresh status.
        self.next_policy = now;
        Ok(())
    }

    // ---- inputs from the runtime --------------------------------------------------

    /// The node started: the game hears it first.
    pub fn handle_started(&mut self) {
        self.events.push_front(Event::Started { id: self.me });
    }

    /// Something the replicated state applied.
    pub fn handle_applied(&mut self, applied: Applied, now: Instant) {
        if self.stopped {
            return;
        }
        match applied {
            Applied::Tick(record) => self.apply_record(record, now),
            Applied::Restored { base, tail } if base.tick <= self.progress.last_tick => {
                // A node that lagged behind the leader's log, not behind the image: it
                // already applied the committed ticks up to `last_tick`, which are the
                // tail's (one committed history). Restoring the image would rewind the
                // game and apply those ticks a second time; only the newer ones apply.
                let last = self.progress.last_tick;
                tracing::info!(
                    tick = base.tick,
                    last,
                    "snapshot behind the game; applying its newer records only"
                );
                for record in tail.into_iter().filter(|record| record.tick > last) {
                    self.apply_record(record, now);
                }
            }
            Applied::Restored { base, tail } => {
                tracing::info!(tick = base.tick, tail = tail.len(), "restoring a snapshot");
                self.progress = base.progress.clone();
                // A request for an older tick can no longer be answered truthfully.
                self.snapshot_request = None;
                self.last_snapshot_tick = base.tick;
                self.events.push_back(Event::Restore {
                    tick: base.tick,
                    snapshot: base.game,
                });
                self.acknowledge_inputs(base.tick);
                for record in tail {
                    self.apply_record(record, now);
                }
            }
        }
        self.check_backlog();
    }

    /// A game that stops polling cannot be waited for: committed ticks keep arriving.
    /// Past the bound the session stops with a clear reason; the game's state is still
    /// that of the last tick it applied, and restarting from storage resumes it.
    fn check_backlog(&mut self) {
        let queued = self.events.len();
        if queued >= self.config.events_queued_max {
            self.handle_fatal(format!(
                "the game stopped polling: {queued} events queued (events_queued_max)"
            ));
            self.actions.push_back(Action::Stop);
        }
    }

    /// Back-pressure on the host: with half the event bound unread, no new tick starts.
    fn game_is_behind(&self) -> bool {
        self.events.len() >= self.config.events_queued_max / 2
    }

    fn apply_record(&mut self, record: TickRecord, now: Instant) {
        debug_assert_eq!(
            record.tick,
            self.progress.last_tick + 1,
            "records apply in order"
        );
        self.progress.advance(&record);
        let tick = record.tick;
        for input in &record.inputs {
            if let Some(queue) = self.inbox.get_mut(&input.player) {
                if queue.incarnation == input.incarnation {
                    queue
                        .inputs
                        .retain(|sequence, _| *sequence > input.sequence);
                }
            }
        }
        self.events.push_back(Event::ApplyTick(record));
        self.acknowledge_inputs(tick);
        if tick >= self.last_snapshot_tick + self.config.snapshot_interval_ticks {
            self.request_snapshot();
        }
        if matches!(self.stage, TickStage::Proposed { tick: proposed, .. } if proposed <= tick) {
            if let TickStage::Proposed { proposed, .. } = self.stage {
                self.measure_load(proposed, now);
            }
            self.stage = TickStage::Idle;
            self.turn_started = now;
            if matches!(self.config.tick_mode, TickMode::TurnBased { .. }) {
                self.maybe_start_tick(now);
            }
        }
    }

    /// Drops this player's inputs the replicated state has applied, telling the game.
    fn acknowledge_inputs(&mut self, tick: u64) {
        let mark = self.progress.mark(self.me);
        if mark.incarnation != self.incarnation {
            return;
        }
        while let Some(entry) = self.pending.first_entry() {
            if *entry.key() > mark.sequence {
                break;
            }
            let sequence = *entry.key();
            entry.remove();
            self.events
                .push_back(Event::InputCommitted { sequence, tick });
        }
    }

    fn request_snapshot(&mut self) {
        let tick = self.progress.last_tick;
        self.last_snapshot_tick = tick;
        self.snapshot_request = Some((tick, self.progress.clone()));
        self.events.push_back(Event::MakeSnapshot { tick });
    }

    /// The node's role, or the leader it knows, changed.
    pub fn handle_role(&mut self, role: Role, leader: Option<NodeId>, now: Instant) {
        if self.stopped {
            return;
        }
        self.role = role;
        if leader != self.host {
            self.host = leader;
            self.events.push_back(Event::HostChanged { host: leader });
            // The new host has not seen our uncommitted inputs: send them now, not on the
            // next retry, so a migration costs one round trip.
            self.send_pending_inputs(now);
            // With none, still tell it this life, so a leave of an earlier one that reaches
            // it later is known for what it is.
            if let Some(host) = leader.filter(|&host| host != self.me && self.pending.is_empty()) {
                let message = PlayerMessage::Inputs {
                    incarnation: self.incarnation,
                    inputs: Vec::new(),
                };
                self.send(host, &message);
            }
        }
        if role == Role::Leader && self.hosting == Hosting::No {
            self.hosting = Hosting::Barrier;
            self.handoff = HandoffHold::default();
            self.absent_since.clear();
            self.answered.clear();
            self.actions.push_back(Action::Barrier);
        } else if role != Role::Leader && self.hosting != Hosting::No {
            let was_ready = self.hosting == Hosting::Ready;
            self.hosting = Hosting::No;
            self.inbox.clear();
            self.stage = TickStage::Idle;
            if was_ready {
                self.events.push_back(Event::LostHost);
            }
        }
    }

    /// A new configuration was applied.
    pub fn handle_membership(&mut self, membership: Membership, now: Instant) {
        if self.stopped {
            return;
        }
        let before = std::mem::replace(&mut self.membership, membership);
        let members = |m: &Membership| -> BTreeSet<NodeId> {
            m.voters.iter().chain(m.learners.iter()).copied().collect()
        };
        let (old, new) = (members(&before), members(&self.membership));
        for id in new.difference(&old) {
            self.events.push_back(Event::PlayerJoined(*id));
        }
        for id in old.difference(&new) {
            self.inbox.remove(id);
            self.leavers.remove(id);
            self.lives.remove(id);
            self.absent_since.remove(id);
            self.events.push_back(Event::PlayerLeft(*id));
        }
        if self.membership.voters.contains(&self.me) && before.learners.contains(&self.me) {
            self.events.push_back(Event::Promoted);
        }
        if self.membership.learners.contains(&self.me) && before.voters.contains(&self.me) {
            self.events.push_back(Event::Demoted);
        }
        if !new.contains(&self.me) && old.contains(&self.me) && self.leaving.is_some() {
            self.finish_leave(now);
        }
    }

    /// A message from another player's session core (authenticated as `from`).
    pub fn handle_message(&mut self, from: NodeId, bytes: &[u8], now: Instant) {
        if self.stopped {
            return;
        }
        let Some((message, life)) = decode_player(bytes) else {
            tracing::warn!(peer = %format_args!("{from:016x}"), "malformed player message dropped");
            return;
        };
        let life = match (&message, life) {
            (PlayerMessage::Inputs { incarnation, .. }, _) => Some(*incarnation),
            (_, life) => life,
        };
        if let Some(life) = life {
            let newest = self.lives.entry(from).or_insert(life);
            *newest = (*newest).max(life);
        }
        match message {
            PlayerMessage::Inputs {
                incarnation,
                inputs,
            } => self.receive_inputs(from, incarnation, inputs, now),
            PlayerMessage::Leave => self.on_leave_request(from, life, now),
            PlayerMessage::Removed => {
                let asked = self.leaving.as_ref().is_some_and(|leaving| {
                    self.host == Some(from) || leaving.asked.contains(&from)
                });
                if asked {
                    self.finish_leave(now);
                } else if self.host == Some(from) {
                    // Only a leave of this player's earlier life, from a 1.0 host that
                    // cannot tell lives apart, gets here: say so rather than wait silently.
                    self.events.push_back(Event::Warning(
                        "the host removed this player from the session, which it did not ask for; \
                         join again with the invite"
                            .into(),
                    ));
                }
            }
        }
    }

    /// The node stopped for good (a disk error, a panic): nothing more will happen.
    pub fn handle_fatal(&mut self, reason: String) {
        if !self.stopped {
            self.stopped = true;
            self.events.push_back(Event::Fatal(reason));
        }
    }

    /// Something the game may want to show; the session goes on.
    pub fn handle_warning(&mut self, reason: String) {
        if !self.stopped {
            self.events.push_back(Event::Warning(reason));
        }
    }

    /// How an action ended.
    pub fn handle_outcome(&mut self, outcome: Outcome, now: Instant) {
        if self.stopped {
            return;
        }
        match outcome {
            Outcome::TickProposed { tick, result } => {
                let ours = matches!(self.stage, TickStage::Proposed { tick: t, .. } if t == tick);
                match result {
                    // Applied: the record itself ends the stage when it arrives.
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::debug!(tick, "tick refused: another record holds its number");
                        if ours {
                            self.stage = TickStage::Idle;
                        }
                    }
                    Err(err) => {
                        tracing::debug!(tick, %err, "tick not committed");
                        if ours {
                            self.stage = TickStage::Idle;
                        }
                    }
                }
            }
            Outcome::Barrier(result) => match result {
                Ok(()) if self.hosting == Hosting::Barrier => {
                    self.hosting = Hosting::Ready;
                    self.turn_started = now;
                    self.next_tick_at = now;
                    let next_tick = self.progress.last_tick + 1;
                    tracing::info!(next_tick, "hosting");
                    self.events.push_back(Event::BecameHost { next_tick });
                    self.maybe_start_tick(now);
                }
                Ok(()) => {}
                Err(err) => {
                    tracing::warn!(%err, "host barrier failed; not hosting until re-elected");
                    if self.hosting == Hosting::Barrier && self.role == Role::Leader {
                        // Still leading: try again, the barrier only needs a quorum.
                        self.actions.push_back(Action::Barrier);
                    }
                }
            },
            Outcome::Policy(result) => {
                let kind = self.policy.take();
                match (&result, kind) {
                    // The host's own removal, when nobody could take over: the leave is done.
                    (
                        Ok(()),
                        Some(PolicyKind::Membership {
                            removed: Some(player),
                        }),
                    ) if player == self.me => self.finish_leave(now),
                    (
                        Ok(()),
                        Some(PolicyKind::Membership {
                            removed: Some(player),
                        }),
                    ) => {
                        self.tell_removed(player);
                    }
                    // A fitness handoff that was already under way when the game asked
                    // to leave hands the host role over just as well: the leave says so.
                    (Ok(()), Some(PolicyKind::Transfer { target })) => {
                        if let Some(leaving) = &mut self.leaving {
                            leaving.handed_to = Some(target);
                            // Now a follower: ask the new host for removal at once.
                            self.next_policy = now;
                        }
                    }
                    (Err(err), kind) => {
                        tracing::info!(%err, ?kind, "host policy did not apply");
                        if let Some(leaving) = &mut self.leaving {
                            // Its own removal failed: the next round tries a handoff again.
                            leaving.removing_self = false;
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// Time passed: ticks, retries, and policy rounds that are due run.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.stopped {
            return;
        }
        if self
            .leaving
            .as_ref()
            .is_some_and(|leaving| now >= leaving.deadline)
        {
            self.leaving = None;
            // A final event, not a warning: the game waits for one to know it is over.
            self.events.push_back(Event::Left(LeaveOutcome::TimedOut));
            self.stop();
            return;
        }
        if now >= self.next_retry {
            self.next_retry = now + self.config.input_retry_interval;
            self.send_pending_inputs(now);
        }
        if now >= self.next_policy {
            self.next_policy = now + self.config.policy_interval;
            if !self.status_in_flight {
                self.status_in_flight = true;
                self.actions.push_back(Action::QueryStatus);
            }
        }
        if self.hosting == Hosting::Ready {
            self.on_tick_due(now);
        }
    }

    // ---- player side --------------------------------------------------------------

    /// Sends every input not yet in a committed tick to the host. Duplicates are harmless:
    /// the host keys them by sequence and the replicated state admits each once.
    fn send_pending_inputs(&mut self, now: Instant) {
        if self.pending.is_empty() {
            return;
        }
        let budget = self.config.tick_record_bytes_max;
        let mut bytes = 0;
        let batch: Vec<(u64, Vec<u8>)> = self
            .pending
            .iter()
            .take(MESSAGE_INPUTS_MAX)
            .take_while(|(_, data)| {
                bytes += data.len() + INPUT_OVERHEAD_BYTES;
                bytes <= budget
            })
            .map(|(sequence, data)| (*sequence, data.clone()))
            .collect();
        match self.host {
            Some(host) if host == self.me => {
                self.receive_inputs(self.me, self.incarnation, batch, now)
            }
            Some(host) => {
                let message = PlayerMessage::Inputs {
                    incarnation: self.incarnation,
                    inputs: batch,
                };
                self.send(host, &message);
            }
            None => {}
        }
    }

    fn send(&mut self, to: NodeId, message: &PlayerMessage) {
        match encode_player(message, self.incarnation) {
            Ok(bytes) => self.actions.push_back(Action::Send { to, bytes }),
            Err(err) => tracing::error!(%err, "cannot encode a player message"),
        }
    }

    fn finish_leave(&mut self, _now: Instant) {
        let Some(leaving) = self.leaving.take() else {
            return;
        };
        let outcome = match (leaving.handed_to, leaving.removing_self) {
            (Some(to), _) => LeaveOutcome::HandedOver { to },
            (None, true) => LeaveOutcome::RemovedWithoutSuccessor,
            (None, false) => LeaveOutcome::Removed,
        };
        self.events.push_back(Event::Left(outcome));
        self.stop();
    }

    fn stop(&mut self) {
        if !self.stopped {
            self.stopped = true;
            self.actions.push_back(Action::Stop);
        }
    }

    // ---- host side ----------------------------------------------------------------

    fn is_member(&self, id: NodeId) -> bool {
        self.membership.voters.contains(&id) || self.membership.learners.contains(&id)
    }

    fn receive_inputs(
        &mut self,
        from: NodeId,
        incarnation: u64,
        inputs: Vec<(u64, Vec<u8>)>,
        now: Instant,
    ) {
        if self.hosting == Hosting::No {
            return;
        }
        if !self.is_member(from) {
            tracing::debug!(peer = %format_args!("{from:016x}"), "inputs from a non-member dropped");
            return;
        }
        let mark = self.progress.mark(from);
        if incarnation < mark.incarnation {
            return;
        }
        let limit = self.config.inputs_in_flight_max;
        let bytes_max = self.config.input_bytes_max;
        let queue = self.inbox.entry(from).or_default();
        if incarnation > queue.incarnation {
            *queue = InboxQueue {
                incarnation,
                inputs: BTreeMap::new(),
            };
        } else if incarnation < queue.incarnation {
            return;
        }
        // The queue's incarnation is the message's, never older than the mark (checked
        // above), so the queue always needs something.
        let first = queue.first_needed(mark).unwrap_or(u64::MAX);
        for (sequence, data) in inputs {
            if sequence >= first && data.len() <= bytes_max && queue.inputs.len() < limit {
                queue.inputs.entry(sequence).or_insert(data);
            }
        }
        if matches!(self.config.tick_mode, TickMode::TurnBased { .. }) {
            self.maybe_start_tick(now);
        }
    }

    fn on_tick_due(&mut self, now: Instant) {
        match self.config.tick_mode {
            TickMode::FixedRate { .. } => {
                if now < self.next_tick_at {
                    return;
                }
                let period = self.tick_period();
                // Missed deadlines are skipped, not made up in a burst.
                while self.next_tick_at <= now {
                    self.next_tick_at += period;
                }
                match &self.stage {
                    TickStage::Idle => self.start_tick(now),
                    TickStage::WithGame { tick, .. } | TickStage::Proposed { tick, .. } => {
                        let tick = *tick + 1;
                        self.events.push_back(Event::TickOverrun { tick });
                    }
                }
            }
            TickMode::TurnBased { .. } => self.maybe_start_tick(now),
        }
    }

    /// Turn-based: starts the next tick once every member has an input waiting, or when
    /// the turn timer ran out. Fixed rate ticks only from the timer.
    fn maybe_start_tick(&mut self, now: Instant) {
        if self.hosting != Hosting::Ready || self.stage != TickStage::Idle {
            return;
        }
        let TickMode::TurnBased { turn_timeout } = self.config.tick_mode else {
            return;
        };
        let members = self.membership.voters.len() + self.membership.learners.len();
        let complete = members > 0 && self.players_with_input() >= members;
        if complete || now >= self.turn_started + turn_timeout {
            self.start_tick(now);
        }
    }

    fn players_with_input(&self) -> usize {
        self.inbox
            .iter()
            .filter(|(player, queue)| {
                queue
                    .first_needed(self.progress.mark(**player))
                    .is_some_and(|first| queue.inputs.contains_key(&first))
            })
            .count()
    }

    /// Each player's next inputs, contiguous from the last one applied, within the bytes
    /// a record may carry beside its payload.
    fn collect_inputs(&self) -> Vec<PlayerInput> {
        let mut budget = self
            .config
            .tick_record_bytes_max
            .saturating_sub(self.config.tick_payload_bytes_max + RECORD_OVERHEAD_BYTES);
        let mut inputs = Vec::new();
        for (player, queue) in &self.inbox {
            let Some(first) = queue.first_needed(self.progress.mark(*player)) else {
                continue;
            };
            let contiguous = (first..)
                .zip(queue.inputs.range(first..))
                .take_while(|(expected, (sequence, _))| *expected == **sequence)
                .take(TICK_INPUTS_PER_PLAYER_MAX);
            for (_, (sequence, data)) in contiguous {
                let cost = data.len() + INPUT_OVERHEAD_BYTES;
                if cost > budget {
                    break;
                }
                budget -= cost;
                inputs.push(PlayerInput {
                    player: *player,
                    incarnation: queue.incarnation,
                    sequence: *sequence,
                    data: data.clone(),
                });
            }
        }
        inputs
    }

    fn start_tick(&mut self, now: Instant) {
        let tick = self.progress.last_tick + 1;
        if self.game_is_behind() {
            if matches!(self.config.tick_mode, TickMode::FixedRate { .. }) {
                self.events.push_back(Event::TickOverrun { tick });
            }
            return;
        }
        let inputs = self.collect_inputs();
        self.turn_started = now;
        if self.config.lockstep {
            self.propose(tick, inputs, Vec::new(), now);
        } else {
            self.events.push_back(Event::RunTick {
                tick,
                inputs: inputs.clone(),
            });
            self.stage = TickStage::WithGame {
                tick,
                inputs,
                started: now,
            };
        }
    }

    fn propose(&mut self, tick: u64, inputs: Vec<PlayerInput>, payload: Vec<u8>, now: Instant) {
        if self.hosting != Hosting::Ready || tick != self.progress.last_tick + 1 {
            // Hosting moved on while the game computed: the answer is moot.
            self.stage = TickStage::Idle;
            return;
        }
        let record = TickRecord {
            tick,
            inputs,
            payload,
        };
        match encode(&record) {
            Ok(bytes) if bytes.len() <= self.config.tick_record_bytes_max => {
                debug_assert!(bytes.len() <= self.config.tick_record_bytes_max);
                self.actions.push_back(Action::Propose {
                    tick,
                    record: bytes,
                });
                self.stage = TickStage::Proposed {
                    tick,
                    proposed: now,
                };
            }
            Ok(bytes) => {
                // Inputs and payload are bounded so this cannot happen; if it does, the
                // record is not proposed, since a frame too large for the transport would
                // stop the commit index for good.
                self.events.push_back(Event::Warning(format!(
                    "tick {tick} record of {} bytes exceeds the limit of {}; not proposed",
                    bytes.len(),
                    self.config.tick_record_bytes_max
                )));
                self.stage = TickStage::Idle;
            }
            Err(err) => {
                self.events
                    .push_back(Event::Warning(format!("cannot encode tick {tick}: {err}")));
                self.stage = TickStage::Idle;
            }
        }
    }

    fn tick_period(&self) -> Duration {
        match self.config.tick_mode {
            TickMode::FixedRate { hz } => Duration::from_secs_f64(1.0 / f64::from(hz.max(1))),
            TickMode::TurnBased { turn_timeout } => turn_timeout,
        }
    }

    /// The host's share of the tick budget spent committing beyond what the link costs.
    /// A commit takes at least a round trip to the voters, and any successor would pay its
    /// own round trip too (the link score already weighs it): counting it as load made two
    /// voters on a slow link hand the host back and forth for ever.
    fn commit_load(&self, proposed: Instant, now: Instant) -> f64 {
        let beyond_link = now
            .duration_since(proposed)
            .saturating_sub(self.median_rtt.unwrap_or_default());
        beyond_link.as_secs_f64() / self.tick_period().as_secs_f64()
    }

    fn measure_load(&mut self, proposed: Instant, now: Instant) {
        let load = self.commit_load(proposed, now);
        self.tick_load = (1.0 - TICK_LOAD_SMOOTHING) * self.tick_load + TICK_LOAD_SMOOTHING * load;
    }

    /// The load of the tick under way. Time the game spends computing a tick does not
    /// count: every player runs the same game, so moving the host would not make it faster,
    /// and a slow frame must not cause a migration. A game that has not answered for
    /// [`SessionConfig::game_answer_limit`] is taken as hung, and then the host is unfit.
    fn current_load(&self, now: Instant) -> f64 {
        let period = self.tick_period().as_secs_f64();
        match &self.stage {
            TickStage::WithGame { started, .. } => {
                let waited = now.duration_since(*started);
                if waited >= self.config.game_answer_limit {
                    self.tick_load.max(waited.as_secs_f64() / period)
                } else {
                    self.tick_load
                }
            }
            TickStage::Proposed { proposed, .. } => {
                self.tick_load.max(self.commit_load(*proposed, now))
            }
            TickStage::Idle => self.tick_load,
        }
    }

    fn on_leave_request(&mut self, from: NodeId, life: Option<u64>, now: Instant) {
        if self.hosting == Hosting::No {
            return;
        }
        let newest = self.newest_life(from);
        if life.is_some_and(|life| life < newest) {
            tracing::info!(
                peer = %format_args!("{from:016x}"),
                life,
                newest,
                "a leave of a player's earlier life ignored"
            );
            return;
        }
        if !self.is_member(from) {
            self.tell_removed(from);
            return;
        }
        self.leavers.insert(from, life.unwrap_or(newest));
        if self.policy.is_some() {
            return;
        }
        if let Some(gone) = self.voter_gone_beside(from, now) {
            // The leaver asks again every policy round; by then the quorum is the live one.
            tracing::info!(
                leaver = %format_args!("{from:016x}"),
                gone = %format_args!("{gone:016x}"),
                "a voter that is gone is demoted before a leaver is removed"
            );
            self.absent_since.remove(&gone);
            self.run_policy(MembershipChange::DemoteVoter(gone), None);
            return;
        }
        if !self.live_majority_without(from) {
            // Removing it now would leave the commit to voters not known to be there; if
            // one is dead, the configuration without the leaver can never commit the fix
            // (demoting the dead one). The leaver asks again; by then the others have
            // answered, or the silent one is gone and demoted first (above).
            tracing::debug!(
                leaver = %format_args!("{from:016x}"),
                "a leaver waits until a majority of the voters left has answered"
            );
            return;
        }
        self.run_policy(MembershipChange::RemoveNode(from), Some(from));
    }

    /// The voters once `leaver` is removed.
    fn voters_without(&self, leaver: NodeId) -> Vec<NodeId> {
        self.membership
            .voters
            .iter()
            .copied()
            .filter(|&id| id != leaver)
            .collect()
    }

    /// Whether the voters other than `leaver` that answered this host and are not absent
    /// (counting this host) are a majority of them.
    fn live_majority_without(&self, leaver: NodeId) -> bool {
        let after = self.voters_without(leaver);
        let live = after
            .iter()
            .filter(|&&id| {
                id == self.me
                    || (self.answered.contains(&id) && !self.absent_since.contains_key(&id))
            })
            .count();
        live * 2 > after.len()
    }

    /// Whether `id` asked to leave in its newest life: two leavers handing the host role
    /// to each other would never be removed.
    fn is_leaver(&self, id: NodeId) -> bool {
        self.leavers
            .get(&id)
            .is_some_and(|&life| life >= self.newest_life(id))
    }

    /// Whether voter `id` has been unheard of for `voter_absence_limit`.
    fn gone(&self, id: NodeId, now: Instant) -> bool {
        self.absent_since
            .get(&id)
            .is_some_and(|since| now.duration_since(*since) >= self.config.voter_absence_limit)
    }

    /// A voter unheard of for `voter_absence_limit` that would, once `leaver` is removed,
    /// leave the live voters no majority: with voters {leaver, gone, host}, removing the
    /// leaver first leaves {gone, host}, which never commits again.
    fn voter_gone_beside(&self, leaver: NodeId, now: Instant) -> Option<NodeId> {
        let after = self.voters_without(leaver);
        let gone: Vec<NodeId> = after
            .iter()
            .copied()
            // Gone means unheard of for the absence limit: a new host has heard from
            // nobody in its first policy rounds, and a slow link makes any voter miss one.
            .filter(|&id| id != self.me && self.gone(id, now))
            .collect();
        let live = after.len() - gone.len();
        (!gone.is_empty() && live * 2 <= after.len()).then(|| gone[0])
    }

    /// The newest life of `player` this host knows: from its messages, or from the
    /// replicated state (the life of its newest committed input).
    fn newest_life(&self, player: NodeId) -> u64 {
        let heard = self.lives.get(&player).copied().unwrap_or(0);
        heard.max(self.progress.mark(player).incarnation)
    }

    fn tell_removed(&mut self, player: NodeId) {
        self.send(player, &PlayerMessage::Removed);
    }

    fn run_policy(&mut self, change: MembershipChange, removed: Option<NodeId>) {
        tracing::info!(?change, "host policy");
        self.policy = Some(PolicyKind::Membership { removed });
        self.actions.push_back(Action::ChangeMembership(change));
    }

    fn run_transfer(&mut self, target: NodeId, leaving: bool) {
        tracing::info!(target = %format_args!("{target:016x}"), leaving, "handing the host role over");
        self.policy = Some(PolicyKind::Transfer { target });
        self.actions.push_back(Action::Transfer { target });
    }

    // ---- fitness and policies -----------------------------------------------------

    /// The node's status, as asked for by [`Action::QueryStatus`]: fitness is measured and
    /// the host's policies run.
    pub fn handle_status(&mut self, status: &NodeStatus, now: Instant) {
        self.status_in_flight = false;
        if self.stopped {
            return;
        }
        let committed = &status.committed_membership;
        if *committed != self.membership && !committed.voters.is_empty() {
            // A configuration that arrived inside a snapshot is never reported as applied:
            // without this a host that caught up by snapshot would take a member who
            // joined before it for a stranger and drop its inputs for good. The committed
            // one, not the appended: a host tells a leaver it is out once it is out of this
            // set, and an appended removal may yet be overwritten by the next host.
            self.handle_membership(committed.clone(), now);
            if self.stopped {
                return;
            }
        }
        let voter_links: Vec<_> = status
            .peer_links
            .iter()
            .filter(|(peer, _)| status.membership.voters.contains(peer))
            .copied()
            .collect();
        let loss = self.loss.observe(voter_links.iter().copied());
        let hosting = self.hosting != Hosting::No;
        self.median_rtt = fitness::median(voter_links.iter().map(|(_, link)| link.rtt).collect());
        let inputs = FitnessInputs {
            median_rtt: self.median_rtt,
            loss,
            tick_load: if hosting { self.current_load(now) } else { 0.0 },
            game_score: self.game_score,
        };
        let fitness = fitness::combine(&inputs, &self.config.fitness_weights);
        tracing::debug!(?inputs, fitness = fitness.0, hosting, "fitness measured");
        if fitness != self.fitness {
            self.fitness = fitness;
            self.actions.push_back(Action::SetFitness(fitness));
        }
        if fitness.0.abs_diff(self.reported_fitness.0) >= FITNESS_EVENT_STEP {
            self.reported_fitness = fitness;
            self.events.push_back(Event::FitnessChanged(fitness));
        }
        if self.leaving.is_some() {
            self.drive_leave(status, now);
            return;
        }
        if self.hosting == Hosting::Ready && self.policy.is_none() {
            self.host_policies(&status.progress, status.last_index, now);
        }
    }

    /// The status asked for could not be read; the next policy round asks again.
    pub fn handle_status_unavailable(&mut self) {
        self.status_in_flight = false;
    }

    fn caught_up(peer: &PeerProgress, last_index: u64) -> bool {
        peer.recently_active && peer.match_index + CAUGHT_UP_LAG_ENTRIES_MAX >= last_index
    }

    /// One policy step at a time (membership changes go one by one anyway): replace absent
    /// voters, fill the voter set from the fittest learners, swap a weak voter for a much
    /// fitter learner, and hand over to a clearly fitter voter.
    fn host_policies(&mut self, progress: &[PeerProgress], last_index: u64, now: Instant) {
        let voters = self.membership.voters.len();
        let best_learner = progress
            .iter()
            .filter(|peer| !peer.is_voter && Self::caught_up(peer, last_index))
            .filter(|peer| !self.is_leaver(peer.id))
            .max_by_key(|peer| (peer.fitness, peer.id))
            .cloned();
        for peer in progress.iter().filter(|peer| peer.is_voter) {
            // A new leader's progress starts "active" and at match 0: only a match is word
            // from the peer.
            if peer.match_index > 0 {
                self.answered.insert(peer.id);
            }
            if peer.recently_active {
                self.absent_since.remove(&peer.id);
            } else {
                self.absent_since.entry(peer.id).or_insert(now);
            }
        }
        let absent = self
            .absent_since
            .keys()
            .copied()
            .filter(|&id| self.gone(id, now))
            .min();
        // Only with a learner to take its seat: without one, demoting a voter that is
        // merely slow to answer shrinks the voters the next host crash leaves behind
        // ({host, a, slow} survives it; {host, a} does not).
        if let (Some(absent), Some(_)) = (absent, &best_learner) {
            self.absent_since.remove(&absent);
            self.run_policy(MembershipChange::DemoteVoter(absent), None);
            return;
        }
        if voters < self.config.max_voters {
            if let Some(learner) = &best_learner {
                self.run_policy(MembershipChange::PromoteLearner(learner.id), None);
                return;
            }
        }
        let weakest_voter = progress
            .iter()
            .filter(|peer| peer.is_voter)
            .min_by_key(|peer| (peer.fitness, peer.id))
            .cloned();
        if let (Some(learner), Some(voter)) = (&best_learner, &weakest_voter) {
            let margin = self.config.handoff_margin.saturating_mul(2);
            if voters >= self.config.max_voters
                && learner.fitness.0 > voter.fitness.0.saturating_add(margin)
            {
                self.run_policy(MembershipChange::DemoteVoter(voter.id), None);
                return;
            }
        }
        let best_voter = progress
            .iter()
            .filter(|peer| peer.is_voter && Self::caught_up(peer, last_index))
            .filter(|peer| !self.is_leaver(peer.id))
            .max_by_key(|peer| (peer.fitness, peer.id))
            .map(|peer| (peer.id, peer.fitness));
        if let Some(target) = self.handoff.observe(
            best_voter,
            self.fitness,
            self.config.handoff_margin,
            self.config.handoff_hold,
            now,
        ) {
            self.run_transfer(target, false);
        }
    }

    /// One step of a graceful leave, each policy round until removed or out of time: a
    /// host hands over first; a non-host asks the host to remove it.
    fn drive_leave(&mut self, status: &NodeStatus, now: Instant) {
        // The configuration that removes us takes effect on append (§4.1); the leader stops
        // replicating to us then, so waiting to apply it could wait forever.
        let listed = status.membership.voters.contains(&self.me)
            || status.membership.learners.contains(&self.me);
        if !listed && !status.membership.voters.is_empty() {
            self.finish_leave(now);
            return;
        }
        if self.hosting != Hosting::No {
            if self.policy.is_some() {
                return;
            }
            let others: Vec<&PeerProgress> = status
                .progress
                .iter()
                .filter(|peer| peer.is_voter)
                .collect();
            if others.is_empty() {
                if let Some(learner) = status
                    .progress
                    .iter()
                    .filter(|peer| Self::caught_up(peer, status.last_index))
                    .filter(|peer| !self.is_leaver(peer.id))
                    .max_by_key(|peer| (peer.fitness, peer.id))
                {
                    // A lone voter with a warm learner: seat it, then hand over to it.
                    let id = learner.id;
                    self.run_policy(MembershipChange::PromoteLearner(id), None);
                    return;
                }
                self.leaving = None;
                self.events
                    .push_back(Event::Left(LeaveOutcome::SessionEnded));
                self.stop();
                return;
            }
            // Another leaver is no successor; it is removed on its own request meanwhile.
            let target = others
                .iter()
                .filter(|peer| Self::caught_up(peer, status.last_index))
                .filter(|peer| !self.is_leaver(peer.id))
                .max_by_key(|peer| (peer.match_index, peer.fitness, peer.id))
                .map(|peer| peer.id);
            let patience_over = self.leaving.as_ref().is_some_and(|leaving| {
                leaving.deadline.saturating_duration_since(now) < LEAVE_TIMEOUT / 2
            });
            match target {
                Some(target) => self.run_transfer(target, true),
                None if patience_over => {
                    // Nobody caught up in half the leave's time: leave the voters anyway,
                    // so a departed player never stays a voter for good.
                    if let Some(leaving) = &mut self.leaving {
                        leaving.removing_self = true;
                    }
                    self.run_policy(MembershipChange::RemoveNode(self.me), Some(self.me));
                }
                None => {}
            }
        } else if let Some(leaving) = &mut self.leaving {
            // Leaderless, which a removal we were not told of looks like: ask every host
            // asked before, so the one that removed us can say so.
            if let Some(host) = self.host {
                leaving.asked.insert(host);
            }
            let hosts: Vec<NodeId> = match self.host {
                Some(host) => vec![host],
                None => leaving.asked.iter().copied().collect(),
            };
            for host in hosts {
                self.send(host, &PlayerMessage::Leave);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::replica::InputMark;

    const ME: NodeId = 1;
    const OTHER: NodeId = 2;

    fn config() -> SessionConfig {
        SessionConfig {
            input_bytes_max: 1000,
            tick_payload_bytes_max: 2000,
            tick_record_bytes_max: 10_000,
            ..SessionConfig::default()
        }
    }

    fn drain(core: &mut SessionCore) -> Vec<Event> {
        std::iter::from_fn(|| core.poll_event()).collect()
    }

    /// A core that hosts a two-voter session, past its barrier.
    fn hosting(now: Instant) -> SessionCore {
        let mut core = SessionCore::new(config(), ME, 7, now);
        let membership = Membership {
            voters: [ME, OTHER].into_iter().collect(),
            learners: Default::default(),
        };
        core.handle_membership(membership, now);
        core.handle_role(Role::Leader, Some(ME), now);
        assert_eq!(core.poll_action(), Some(Action::Barrier));
        core.handle_outcome(Outcome::Barrier(Ok(())), now);
        drain(&mut core);
        core
    }

    fn inputs_message(incarnation: u64, inputs: Vec<(u64, Vec<u8>)>) -> Vec<u8> {
        encode(&PlayerMessage::Inputs {
            incarnation,
            inputs,
        })
        .unwrap()
    }

    fn removals(core: &mut SessionCore) -> Vec<NodeId> {
        std::iter::from_fn(|| core.poll_action())
            .filter_map(|action| match action {
                Action::ChangeMembership(MembershipChange::RemoveNode(id)) => Some(id),
                _ => None,
            })
            .collect()
    }

    fn with_members(core: &mut SessionCore, voters: &[NodeId], now: Instant) {
        let membership = Membership {
            voters: voters.iter().copied().collect(),
            learners: Default::default(),
        };
        core.handle_membership(membership, now);
    }

    #[test]
    fn a_leave_of_a_players_earlier_life_does_not_remove_its_new_life() {
        let now = Instant::now();
        let (mut core, third) = hosting_three_voters(now);
        let leave_of_life_5 = encode_player(&PlayerMessage::Leave, 5).unwrap();
        core.handle_message(third, &leave_of_life_5, now);
        assert_eq!(removals(&mut core), vec![third]);
        core.handle_outcome(Outcome::Policy(Ok(())), now);
        with_members(&mut core, &[ME, OTHER], now);
        // It comes back (life 6), and its first words to the host name that life.
        with_members(&mut core, &[ME, OTHER, third], now);
        core.handle_message(
            third,
            &encode_player(
                &PlayerMessage::Inputs {
                    incarnation: 6,
                    inputs: vec![],
                },
                6,
            )
            .unwrap(),
            now,
        );
        // The old request, delivered late or replayed, is not a request of this life.
        core.handle_message(third, &leave_of_life_5, now);
        assert_eq!(removals(&mut core), Vec::<NodeId>::new());
        core.handle_message(
            third,
            &encode_player(&PlayerMessage::Leave, 6).unwrap(),
            now,
        );
        assert_eq!(removals(&mut core), vec![third], "its new life may leave");
    }

    /// The host's status: `voters` with `ME` hosting, `active` the ones heard from lately.
    fn host_status(voters: &[NodeId], active: &[NodeId]) -> NodeStatus {
        let membership = Membership {
            voters: voters.iter().copied().collect(),
            learners: Default::default(),
        };
        let peer = |id: NodeId| PeerProgress {
            id,
            is_voter: true,
            match_index: 10,
            next_index: 11,
            fitness: Fitness(500),
            recently_active: active.contains(&id),
            snapshot_in_flight: false,
        };
        NodeStatus {
            id: ME,
            addr: std::net::SocketAddr::from(([127, 0, 0, 1], 1)),
            address_book: Default::default(),
            role: Role::Leader,
            term: 2,
            leader: Some(ME),
            commit_index: 10,
            applied_index: 10,
            last_index: 10,
            membership: membership.clone(),
            committed_membership: membership,
            fitness: Fitness(500),
            progress: voters
                .iter()
                .copied()
                .filter(|&id| id != ME)
                .map(peer)
                .collect(),
            peer_links: Vec::new(),
            internet: None,
            dialed_peers: Vec::new(),
            detection_timeout: None,
        }
    }

    /// A host of voters `ME`, `OTHER` and the third it returns, each heard from.
    fn hosting_three_voters(now: Instant) -> (SessionCore, NodeId) {
        let third = 3;
        let mut core = hosting(now);
        with_members(&mut core, &[ME, OTHER, third], now);
        answered_by(&mut core, &[ME, OTHER, third], now);
        (core, third)
    }

    /// The host's status shows every one of `voters` caught up and heard from lately.
    fn answered_by(core: &mut SessionCore, voters: &[NodeId], now: Instant) {
        core.handle_status(&host_status(voters, voters), now);
        while core.poll_action().is_some() {}
    }

    /// Two leavers handing the host role to each other would never be removed.
    #[test]
    fn a_leaving_host_hands_over_to_a_player_that_stays() {
        let now = Instant::now();
        let (mut core, third) = hosting_three_voters(now);
        core.handle_message(
            OTHER,
            &encode_player(&PlayerMessage::Leave, 4).unwrap(),
            now,
        );
        assert_eq!(removals(&mut core), vec![OTHER]);
        core.handle_outcome(Outcome::Policy(Err("timed out".into())), now);
        core.leave(now).unwrap();
        // OTHER is the most caught up, and would be the pick but for its leave.
        let mut status = host_status(&[ME, OTHER, third], &[OTHER, third]);
        for peer in &mut status.progress {
            peer.match_index = if peer.id == OTHER { 10 } else { 9 };
        }
        core.handle_status(&status, now);
        let targets: Vec<NodeId> = std::iter::from_fn(|| core.poll_action())
            .filter_map(|action| match action {
                Action::Transfer { target } => Some(target),
                _ => None,
            })
            .collect();
        assert_eq!(targets, vec![third]);
    }

    /// A new host has heard from nobody: its Raft progress calls every voter active.
    #[test]
    fn a_new_host_removes_a_leaver_once_the_voters_left_have_answered() {
        let now = Instant::now();
        let third = 3;
        let mut core = hosting(now);
        with_members(&mut core, &[ME, OTHER, third], now);
        let mut fresh = host_status(&[ME, OTHER, third], &[OTHER, third]);
        for peer in &mut fresh.progress {
            peer.match_index = 0;
        }
        core.handle_status(&fresh, now);
        while core.poll_action().is_some() {}
        let leave = encode_player(&PlayerMessage::Leave, 9).unwrap();
        core.handle_message(third, &leave, now);
        assert_eq!(
            removals(&mut core),
            Vec::<NodeId>::new(),
            "{{ME, OTHER}} commits only with OTHER, not heard from yet"
        );
        answered_by(&mut core, &[ME, OTHER, third], now);
        core.handle_message(third, &leave, now);
        assert_eq!(removals(&mut core), vec![third]);
    }

    fn demotions(core: &mut SessionCore) -> Vec<NodeId> {
        std::iter::from_fn(|| core.poll_action())
            .filter_map(|action| match action {
                Action::ChangeMembership(MembershipChange::DemoteVoter(id)) => Some(id),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_gone_voter_is_demoted_before_a_leaver_whose_removal_would_lose_the_quorum() {
        let (leaver, gone) = (3, 4);
        let leave = encode_player(&PlayerMessage::Leave, 9).unwrap();
        let status = host_status(&[ME, leaver, gone], &[leaver]);
        let host_seeing_gone_since = |now: Instant| {
            let mut core = hosting(now);
            with_members(&mut core, &[ME, leaver, gone], now);
            core.handle_status(&status, now);
            while core.poll_action().is_some() {}
            core
        };
        let now = Instant::now();
        // Unheard of for a moment only (a new host, a slow link): not gone, but {ME, gone}
        // would need it to commit, so the leaver waits until it answers again.
        let mut core = host_seeing_gone_since(now);
        core.handle_message(leaver, &leave, now);
        assert_eq!(removals(&mut core), Vec::<NodeId>::new(), "gone is silent");
        answered_by(&mut core, &[ME, leaver, gone], now);
        core.handle_message(leaver, &leave, now);
        assert_eq!(
            removals(&mut core),
            vec![leaver],
            "missing one round is not gone"
        );

        let mut core = host_seeing_gone_since(now);
        let later = now + core.config.voter_absence_limit;
        core.handle_message(leaver, &leave, later);
        assert_eq!(
            demotions(&mut core),
            vec![gone],
            "{{ME, gone}} could never commit"
        );
        core.handle_outcome(Outcome::Policy(Ok(())), later);
        core.handle_membership(
            Membership {
                voters: [ME, leaver].into_iter().collect(),
                learners: [gone].into_iter().collect(),
            },
            later,
        );
        core.handle_message(leaver, &leave, later);
        assert_eq!(removals(&mut core), vec![leaver], "then the leaver goes");
    }

    #[test]
    fn a_leave_during_a_fitness_handoff_says_it_handed_over() {
        let now = Instant::now();
        let mut core = hosting(now);
        // The host's policy started handing over to a fitter voter a moment ago...
        core.run_transfer(OTHER, false);
        while core.poll_action().is_some() {}
        // ...when the game asks to leave: the round sees the transfer under way and waits.
        core.leave(now).unwrap();
        core.handle_status(&host_status(&[ME, OTHER], &[OTHER]), now);
        core.handle_timeout(now);
        assert!(
            !std::iter::from_fn(|| core.poll_action())
                .any(|action| matches!(action, Action::Transfer { .. })),
            "no second transfer"
        );
        core.handle_outcome(Outcome::Policy(Ok(())), now);
        core.handle_role(Role::Follower, Some(OTHER), now);
        with_members(&mut core, &[OTHER], now);
        let left: Vec<_> = drain(&mut core)
            .into_iter()
            .filter(|event| matches!(event, Event::Left(_)))
            .collect();
        assert_eq!(
            left,
            vec![Event::Left(LeaveOutcome::HandedOver { to: OTHER })]
        );
    }

    /// The host that removes a leaver stops sending it the log at once; with a slow link
    /// the leaver's election timer fires before the host's word arrives.
    #[test]
    fn a_leaver_that_lost_its_host_still_hears_it_was_removed() {
        let now = Instant::now();
        let mut core = SessionCore::new(config(), ME, 7, now);
        with_members(&mut core, &[ME, OTHER], now);
        core.handle_role(Role::Follower, Some(OTHER), now);
        drain(&mut core);
        while core.poll_action().is_some() {}
        core.leave(now).unwrap();
        assert_eq!(core.poll_action(), Some(Action::StopRejoining));
        let leaves_sent = |core: &mut SessionCore| {
            std::iter::from_fn(|| core.poll_action())
                .filter(|action| {
                    matches!(action, Action::Send { to: OTHER, bytes }
                        if matches!(decode_player(bytes), Some((PlayerMessage::Leave, _))))
                })
                .count()
        };
        core.handle_status(&host_status(&[ME, OTHER], &[]), now);
        assert_eq!(leaves_sent(&mut core), 1, "asks its host");
        core.handle_role(Role::PreCandidate, None, now);
        core.handle_status(&host_status(&[ME, OTHER], &[]), now);
        assert_eq!(leaves_sent(&mut core), 1, "asks the host it asked before");
        let removed = encode_player(&PlayerMessage::Removed, 1).unwrap();
        core.handle_message(OTHER, &removed, now);
        let left: Vec<_> = drain(&mut core)
            .into_iter()
            .filter(|event| matches!(event, Event::Left(_)))
            .collect();
        assert_eq!(left, vec![Event::Left(LeaveOutcome::Removed)]);
    }

    #[test]
    fn a_leaver_hears_it_is_removed_only_once_its_removal_commits() {
        let now = Instant::now();
        let (mut core, third) = hosting_three_voters(now);
        let leave = encode_player(&PlayerMessage::Leave, 9).unwrap();
        core.handle_message(third, &leave, now);
        assert_eq!(removals(&mut core), vec![third]);
        // The removal is appended, not committed: the next host may still overwrite it.
        let mut status = host_status(&[ME, OTHER], &[OTHER]);
        status.committed_membership.voters.insert(third);
        core.handle_status(&status, now);
        core.handle_message(third, &leave, now);
        let told_removed = |core: &mut SessionCore| {
            std::iter::from_fn(|| core.poll_action()).any(|action| {
                matches!(action, Action::Send { to, bytes }
                    if to == third
                        && matches!(decode_player(&bytes), Some((PlayerMessage::Removed, _))))
            })
        };
        assert!(!told_removed(&mut core), "not before it commits");
        core.handle_outcome(Outcome::Policy(Ok(())), now);
        assert!(told_removed(&mut core), "once it has");
    }

    #[test]
    fn a_promotion_in_flight_survives_no_failure_until_it_commits() {
        let (a, b) = (3, 4);
        let survivable = |status: &NodeStatus| {
            crate::session::SessionStatus::from_node(status.clone(), 0).survivable_voter_failures
        };
        let mut status = host_status(&[ME, a, b], &[a, b]);
        assert_eq!(survivable(&status), 1, "three live voters, committed");
        // The host has appended the promotion of b, nobody else may have it yet: a crash
        // of the host leaves {ME, a}, which cannot elect without ME.
        status.committed_membership.voters.remove(&b);
        assert_eq!(survivable(&status), 0, "{{ME, a}} survives no failure");
        status.role = Role::Follower;
        assert_eq!(survivable(&status), 0, "nor seen from a player");
    }

    #[test]
    fn a_leave_from_a_protocol_1_0_player_still_removes_it() {
        let now = Instant::now();
        let mut core = hosting(now);
        core.handle_message(OTHER, &inputs_message(6, vec![]), now);
        core.handle_message(OTHER, &encode(&PlayerMessage::Leave).unwrap(), now);
        assert_eq!(removals(&mut core), vec![OTHER]);
    }

    #[test]
    fn a_player_names_its_life_to_each_new_host_even_without_inputs() {
        let now = Instant::now();
        let mut core = SessionCore::new(config(), ME, 7, now);
        with_members(&mut core, &[ME, OTHER], now);
        drain(&mut core);
        while core.poll_action().is_some() {}
        core.handle_role(Role::Follower, Some(OTHER), now);
        let sent: Vec<_> = std::iter::from_fn(|| core.poll_action())
            .filter_map(|action| match action {
                Action::Send { to, bytes } => Some((to, decode_player(&bytes))),
                _ => None,
            })
            .collect();
        let announced = PlayerMessage::Inputs {
            incarnation: 7,
            inputs: vec![],
        };
        assert_eq!(sent, vec![(OTHER, Some((announced, Some(7))))]);
    }

    #[test]
    fn inputs_inside_a_restored_snapshot_are_acknowledged() {
        let now = Instant::now();
        let mut core = SessionCore::new(config(), ME, 7, now);
        for _ in 0..3 {
            core.submit_input(b"move", now).unwrap();
        }
        let mut progress = Progress {
            last_tick: 40,
            ..Progress::default()
        };
        progress.inputs.insert(
            ME,
            InputMark {
                incarnation: 7,
                sequence: 2,
            },
        );
        let base = GameImage {
            tick: 40,
            progress,
            game: vec![9],
        };
        core.handle_applied(Applied::Restored { base, tail: vec![] }, now);
        let events = drain(&mut core);
        assert!(events.contains(&Event::InputCommitted {
            sequence: 1,
            tick: 40
        }));
        assert!(events.contains(&Event::InputCommitted {
            sequence: 2,
            tick: 40
        }));
        assert_eq!(core.inputs_pending(), 1, "input 3 is still in flight");
    }

    #[test]
    fn an_oversized_input_is_refused_and_nothing_is_queued() {
        let now = Instant::now();
        let mut core = SessionCore::new(config(), ME, 7, now);
        assert_eq!(
            core.submit_input(&[0; 1001], now),
            Err(CallError::InputTooLarge {
                len: 1001,
                max: 1000
            })
        );
        assert_eq!(core.inputs_pending(), 0);
        assert_eq!(core.submit_input(&[0; 1000], now), Ok(1));
    }

    #[test]
    fn the_window_of_inputs_in_flight_says_would_block() {
        let now = Instant::now();
        let mut core = SessionCore::new(
            SessionConfig {
                inputs_in_flight_max: 2,
                ..config()
            },
            ME,
            7,
            now,
        );
        assert_eq!(core.submit_input(b"a", now), Ok(1));
        assert_eq!(core.submit_input(b"b", now), Ok(2));
        assert_eq!(core.submit_input(b"c", now), Err(CallError::WouldBlock));
    }

    #[test]
    fn a_host_never_proposes_a_record_over_the_limit() {
        let now = Instant::now();
        let mut core = hosting(now);
        // Far more input bytes than one record may carry beside a full payload.
        let inputs = (1..=40).map(|sequence| (sequence, vec![1; 1000])).collect();
        core.handle_message(OTHER, &inputs_message(3, inputs), now);
        core.handle_timeout(now);
        let (tick, inputs) = drain(&mut core)
            .into_iter()
            .find_map(|event| match event {
                Event::RunTick { tick, inputs } => Some((tick, inputs)),
                _ => None,
            })
            .expect("the host asks the game for a tick");
        assert!(
            !inputs.is_empty() && inputs.len() < 40,
            "inputs are bounded by bytes"
        );
        assert_eq!(
            core.commit_tick(tick, vec![0; 2001], now),
            Err(CallError::PayloadTooLarge {
                len: 2001,
                max: 2000
            }),
            "a payload over the limit is refused"
        );
        core.commit_tick(tick, vec![0; 2000], now)
            .expect("the request stayed open for a smaller answer");
        let record = std::iter::from_fn(|| core.poll_action())
            .find_map(|action| match action {
                Action::Propose { record, .. } => Some(record),
                _ => None,
            })
            .expect("the record is proposed");
        assert!(record.len() <= config().tick_record_bytes_max);
    }

    #[test]
    fn inputs_of_a_non_member_are_not_taken() {
        let now = Instant::now();
        let mut core = hosting(now);
        core.handle_message(99, &inputs_message(1, vec![(1, b"x".to_vec())]), now);
        core.handle_timeout(now);
        let inputs = drain(&mut core).into_iter().find_map(|event| match event {
            Event::RunTick { inputs, .. } => Some(inputs),
            _ => None,
        });
        assert_eq!(inputs, Some(vec![]));
    }

    #[test]
    fn a_restarted_player_is_heard_under_its_new_incarnation() {
        let now = Instant::now();
        let mut core = hosting(now);
        let mut record = TickRecord {
            tick: 1,
            inputs: vec![PlayerInput {
                player: OTHER,
                incarnation: 3,
                sequence: 1,
                data: vec![],
            }],
            payload: vec![],
        };
        core.handle_applied(Applied::Tick(record.clone()), now);
        // The player restarted: sequence 1 again, of a greater incarnation.
        core.handle_message(OTHER, &inputs_message(4, vec![(1, b"new".to_vec())]), now);
        // And a late copy of the old incarnation's input is ignored.
        core.handle_message(OTHER, &inputs_message(3, vec![(1, b"old".to_vec())]), now);
        core.handle_timeout(now + Duration::from_secs(1));
        let inputs = drain(&mut core)
            .into_iter()
            .find_map(|event| match event {
                Event::RunTick { inputs, .. } => Some(inputs),
                _ => None,
            })
            .expect("a tick");
        record.tick = 2;
        record.inputs = vec![PlayerInput {
            player: OTHER,
            incarnation: 4,
            sequence: 1,
            data: b"new".to_vec(),
        }];
        assert_eq!(inputs, record.inputs);
    }
}
