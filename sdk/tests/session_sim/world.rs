//! One simulated session: players (each a Raft node, the real `SessionMachine` and
//! `SessionCore`, and a model game), the network between them, and the event loop.
//!
//! Time is a simulated millisecond counter; every action is an event in one priority
//! queue ordered by (time, insertion number), so the seed fixes the whole run. A step is
//! one event handled, with everything it sets off on that player pumped to quiescence:
//! Readies, applied records, the core's actions and the events the game polls. The
//! session's promises are checked as each thing happens, inside the step.
//!
//! The runtime layer is emulated as the real one behaves (`sdk/src/session/driver.rs`,
//! `sdk/src/runtime/applier.rs`): a host's own proposal is applied with
//! `Origin::Leader`, a proposal forwarded by another member with `Origin::Member`;
//! barriers are linearizable reads; status is read from the Raft node. Storage is
//! synchronous (a fast disk): what a Ready asks to persist is durable before its
//! messages leave, which the Raft simulator already varies.

use super::game::Game;
use super::log;
use super::network::{Network, PPM};
use super::oracle::{Oracle, Violation};
use super::profile::{Fault, Profile};
use baton::raft::{
    Config, Entry, EntryPayload, Index, Membership, MembershipChange, Message, NodeId,
    PersistedState, RaftNode, Ready, Role, Term,
};
use baton::runtime::{NodeStatus, Origin, StateMachine};
use baton::session::{
    Action, Event, LeaveOutcome, MachinePort, Outcome, PlayerInput, SessionCore, SessionMachine,
    TickRecord,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap};
use std::fmt;
use std::io::Write;
use std::time::{Duration, Instant};

/// Length of the fault phase, in simulated milliseconds.
pub const FAULT_PHASE_MS: u64 = 12_000;
/// After the heal every live player must have every input committed and agree on the
/// newest tick within this simulated time (a leave still under way may take its
/// `LEAVE_TIMEOUT` of 10 s; the others wait for nobody).
pub const LIVENESS_BOUND_MS: u64 = 15_000;
/// Ticks the session must commit after the heal, at least.
pub const LIVENESS_TICKS_MIN: u64 = 5;
/// Hard bound on the events of one seed, so a runaway session cannot hang the test.
pub const STEPS_PER_SEED_MAX: u64 = 3_000_000;
/// Rounds of one player's pump (Readies, records, actions, events) before it is a loop.
pub const PUMP_ROUNDS_MAX: usize = 256;
/// Readies taken from one node in a row before it is a loop.
pub const READY_DRAIN_MAX: usize = 64;
/// Longest a membership change or a read may stay unanswered before the runtime gives
/// up (ms; the runtime's `proposal_timeout`).
pub const POLICY_TIMEOUT_MS: u64 = 3_000;
/// A node that has known no leader this long asks to join again (the runtime driver's
/// `REJOIN_AFTER_LEADERLESS`).
const REJOIN_AFTER_LEADERLESS_MS: u64 = 3000;
/// A joiner knocks on a random player this often until it is a member (ms).
pub const JOIN_KNOCK_MS: u64 = 100;
/// Player messages kept for the replay fault.
const REPLAYABLE_MESSAGES_MAX: usize = 64;
/// Election timeout of the Raft nodes, in their ticks (the core's default range).
const ELECTION_TICKS_MAX: u64 = 20;

/// Sub-seed streams (fixed: changing one would change every replay).
const STREAM_PROFILE: u64 = 1;
const STREAM_NETWORK: u64 = 2;
const STREAM_CHAOS: u64 = 3;
const STREAM_INPUTS: u64 = 4;
const STREAM_GAME: u64 = 5;
const STREAM_NODE_BASE: u64 = 1 << 32;

/// splitmix64: derives independent sub-seeds from the printed seed.
pub fn derive_seed(seed: u64, stream: u64) -> u64 {
    let mut z = seed ^ stream.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// How a seed is run.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Print every event of the run.
    pub trace: bool,
    /// A departed player comes back with an empty store (as a game without a disk
    /// would) instead of the store it left with. Off by default: a node with an empty
    /// log grants its vote to a removed node still campaigning with a stale
    /// configuration naming it, which can then lead and replace committed ticks (a
    /// Raft-core issue; seeds in `docs/simulation.md`, "Open findings").
    pub fresh_rejoin: bool,
    /// Players detect a lost host after the fixed election range instead of by the
    /// measured arrival of its messages (the runtime's default).
    pub fixed_detection: bool,
}

/// Counters of what a run exercised.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub ticks: u64,
    pub inputs: u64,
    pub acked: u64,
    pub hostings: u64,
    pub crashes: u64,
    pub leaves: u64,
    pub left: u64,
    pub unfit: u64,
    pub joins: u64,
    pub forgeries: u64,
    pub restores: u64,
    pub compactions: u64,
    pub messages_lost: u64,
    pub overruns: u64,
    /// Barriers the core never answered, failed by the runtime's deadline: each one is a
    /// host waiting `POLICY_TIMEOUT_MS` for nothing.
    pub reads_timed_out: u64,
    pub sessions_ended: u64,
    pub liveness_ms: u64,
}

impl Stats {
    pub fn add(&mut self, other: &Stats) {
        self.ticks += other.ticks;
        self.inputs += other.inputs;
        self.acked += other.acked;
        self.hostings += other.hostings;
        self.crashes += other.crashes;
        self.leaves += other.leaves;
        self.left += other.left;
        self.unfit += other.unfit;
        self.joins += other.joins;
        self.forgeries += other.forgeries;
        self.restores += other.restores;
        self.compactions += other.compactions;
        self.messages_lost += other.messages_lost;
        self.overruns += other.overruns;
        self.reads_timed_out += other.reads_timed_out;
        self.sessions_ended += other.sessions_ended;
        self.liveness_ms = self.liveness_ms.max(other.liveness_ms);
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ticks {} inputs {} acked {} hostings {} crashes {} leaves {} left {} unfit-hosts {} \
             joins {} forgeries {} restores {} compactions {} lost-messages {} overruns {} \
             reads-timed-out {} sessions-ended {} slowest-liveness {} ms",
            self.ticks,
            self.inputs,
            self.acked,
            self.hostings,
            self.crashes,
            self.leaves,
            self.left,
            self.unfit,
            self.joins,
            self.forgeries,
            self.restores,
            self.compactions,
            self.messages_lost,
            self.overruns,
            self.reads_timed_out,
            self.sessions_ended,
            self.liveness_ms
        )
    }
}

/// The outcome of one seed.
pub struct SeedReport {
    pub seed: u64,
    pub steps: u64,
    pub sim_ms: u64,
    pub violation: Option<Violation>,
    pub stats: Stats,
}

/// Runs one seed to completion.
pub fn run_seed(seed: u64, options: Options) -> SeedReport {
    let mut world = World::new(seed, options);
    let violation = world.run().err();
    SeedReport {
        seed,
        steps: world.step,
        sim_ms: world.now_ms,
        violation,
        stats: world.stats,
    }
}

/// What happens at one instant. `u32` fields are the player's life the event belongs
/// to; an event for an earlier life is dropped.
#[derive(Debug)]
enum Ev {
    RaftTick(NodeId, u32),
    Raft(Message),
    /// A player message (`Action::Send`).
    Player {
        from: NodeId,
        to: NodeId,
        bytes: Vec<u8>,
    },
    /// A proposal a non-leader hands to the leader (the runtime's `Wire::Forward`).
    Forward {
        from: NodeId,
        to: NodeId,
        record: Vec<u8>,
    },
    /// A joiner asks to be added (the runtime's `Wire::JoinRequest`).
    Join {
        from: NodeId,
        to: NodeId,
    },
    JoinKnock(NodeId, u32),
    Wake(NodeId, u32),
    Outcome(NodeId, u32, Outcome),
    Status(NodeId, u32),
    GameTick(NodeId, u32, u64, Vec<u8>),
    GameSnapshot(NodeId, u32, u64, Vec<u8>),
    Submit(NodeId),
    ScoreBack(NodeId, u32),
    Restart(NodeId),
    Chaos,
    Heal,
}

struct Scheduled {
    at_ms: u64,
    order: u64,
    event: Ev,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at_ms, self.order) == (other.at_ms, other.order)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    // Reversed: BinaryHeap is a max-heap and the earliest event must come out first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at_ms, other.order).cmp(&(self.at_ms, self.order))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// A joiner that has not started yet.
    Unborn,
    Running,
    /// Down; restarts from its durable state.
    Crashed,
    /// Left (or stopped) for good, unless it joins again with a fresh store.
    Departed,
}

/// A running player: everything a crash loses.
struct Live {
    raft: RaftNode,
    machine: SessionMachine,
    port: MachinePort,
    core: SessionCore,
    game: Game,
    applied: Index,
    last_compact: Index,
    /// The host's proposals by index: (term, tick).
    proposals: BTreeMap<Index, (Term, u64)>,
    /// Membership changes by index: (term, deadline ms).
    changes: BTreeMap<Index, (Term, u64)>,
    /// A transfer under way: (target, deadline ms).
    transfer: Option<(NodeId, u64)>,
    /// Barriers: request id, its read index once confirmed, and its deadline (ms).
    reads: BTreeMap<u64, (Option<Index>, u64)>,
    next_read: u64,
    /// The instant (ms) the one valid `Wake` event is for.
    wake_at: u64,
    leaving: bool,
    /// A joiner (or a rejoiner, whose kept store may still name it in a stale
    /// configuration) knocks until it applies a configuration that includes it.
    joining: bool,
    /// Since when (ms) the node has known no leader; past `REJOIN_AFTER_LEADERLESS_MS` it
    /// knocks again, as the runtime's driver does, until it hears of one.
    leaderless_since: Option<u64>,
    /// Knocking because it knew no leader for long (not a join of its own).
    rejoining: bool,
    /// The core said the player is leaving (`Action::StopRejoining`): no rejoin knocks.
    rejoin_stopped: bool,
    /// The last index of the log the node booted with: configurations up to it are
    /// the node's own stale ones, not news from a leader.
    boot_last_index: Index,
}

struct Player {
    id: NodeId,
    phase: Phase,
    durable: PersistedState,
    life: u32,
    live: Option<Live>,
    tick_ms: u64,
    /// The game asked to leave: a restart (the leaver crashed, perhaps after it was
    /// removed) asks again, as a game that was quitting would.
    leave_requested: bool,
    /// A join under way survives a crash: the restarted node keeps knocking.
    join_pending: bool,
}

pub struct World {
    pub seed: u64,
    pub trace: bool,
    options: Options,
    pub now_ms: u64,
    pub step: u64,
    base: Instant,
    queue: BinaryHeap<Scheduled>,
    next_order: u64,
    profile: Profile,
    players: Vec<Player>,
    network: Network,
    chaos_rng: ChaCha8Rng,
    input_rng: ChaCha8Rng,
    game_rng: ChaCha8Rng,
    oracle: Oracle,
    heal_at: Option<u64>,
    tick_at_heal: u64,
    /// The newest player messages sent, for the replay fault.
    sent_player: std::collections::VecDeque<(NodeId, NodeId, Vec<u8>)>,
    /// Each player's messages sent while it was leaving, and the life that sent them:
    /// the replay fault delivers them to the host after the player came back.
    last_words: BTreeMap<NodeId, (u64, Vec<Vec<u8>>)>,
    finished: bool,
    pub stats: Stats,
}

fn frame_leader(record: &[u8]) -> Vec<u8> {
    let mut data = vec![0];
    data.extend_from_slice(record);
    data
}

fn frame_member(from: NodeId, record: &[u8]) -> Vec<u8> {
    let mut data = vec![1];
    data.extend_from_slice(&from.to_le_bytes());
    data.extend_from_slice(record);
    data
}

/// The origin the runtime vouches for and the record, as the applier would see them.
fn unframe(data: &[u8]) -> Option<(Origin, &[u8])> {
    match data.split_first()? {
        (0, record) => Some((Origin::Leader, record)),
        (1, rest) if rest.len() >= 8 => {
            let from = NodeId::from_le_bytes(rest[..8].try_into().ok()?);
            Some((Origin::Member(from), &rest[8..]))
        }
        _ => None,
    }
}

fn encode_record(record: &TickRecord) -> Vec<u8> {
    bincode::serde::encode_to_vec(record, bincode::config::standard())
        .expect("a tick record encodes")
}

impl World {
    pub fn new(seed: u64, options: Options) -> World {
        let mut profile_rng = ChaCha8Rng::seed_from_u64(derive_seed(seed, STREAM_PROFILE));
        let profile = Profile::draw(&mut profile_rng);
        let mut chaos_rng = ChaCha8Rng::seed_from_u64(derive_seed(seed, STREAM_CHAOS));
        let founders = Membership {
            voters: (1..=profile.founders as NodeId).collect(),
            learners: Default::default(),
        };
        let players = (1..=profile.players as NodeId)
            .map(|id| {
                let founding = founders.voters.contains(&id);
                Player {
                    id,
                    phase: if founding {
                        Phase::Running
                    } else {
                        Phase::Unborn
                    },
                    durable: if founding {
                        PersistedState::bootstrap(founders.clone())
                    } else {
                        PersistedState::default()
                    },
                    life: 0,
                    live: None,
                    tick_ms: chaos_rng
                        .random_range(profile.raft_tick_ms - 1..=profile.raft_tick_ms + 1),
                    leave_requested: false,
                    join_pending: false,
                }
            })
            .collect();
        World {
            seed,
            trace: options.trace,
            options,
            now_ms: 0,
            step: 0,
            base: Instant::now(),
            queue: BinaryHeap::new(),
            next_order: 0,
            profile,
            players,
            network: Network::new(ChaCha8Rng::seed_from_u64(derive_seed(seed, STREAM_NETWORK))),
            chaos_rng,
            input_rng: ChaCha8Rng::seed_from_u64(derive_seed(seed, STREAM_INPUTS)),
            game_rng: ChaCha8Rng::seed_from_u64(derive_seed(seed, STREAM_GAME)),
            oracle: Oracle::default(),
            heal_at: None,
            tick_at_heal: 0,
            sent_player: Default::default(),
            last_words: Default::default(),
            finished: false,
            stats: Stats::default(),
        }
    }

    pub fn emit(&self, line: fmt::Arguments<'_>) {
        // Straight to the process's stderr: libtest's capture only covers print! macros.
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "[{:>6} ms] {line}", self.now_ms);
    }

    fn schedule(&mut self, at_ms: u64, event: Ev) {
        self.next_order += 1;
        self.queue.push(Scheduled {
            at_ms,
            order: self.next_order,
            event,
        });
    }

    /// The simulated clock as the core sees it: only differences matter to it.
    fn instant(&self) -> Instant {
        self.base + Duration::from_millis(self.now_ms)
    }

    fn ms_of(&self, at: Instant) -> u64 {
        let since = at.saturating_duration_since(self.base);
        u64::try_from(since.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX)
    }

    fn slot(&self, id: NodeId) -> Option<usize> {
        let slot = usize::try_from(id).ok()?.checked_sub(1)?;
        (slot < self.players.len()).then_some(slot)
    }

    /// The running player `id` in life `life` (any life if `None`).
    fn live(&mut self, id: NodeId, life: Option<u32>) -> Option<&mut Live> {
        let slot = self.slot(id)?;
        let player = &mut self.players[slot];
        if life.is_some_and(|life| life != player.life) {
            return None;
        }
        player.live.as_mut()
    }

    fn host(&self) -> Option<NodeId> {
        self.players
            .iter()
            .filter(|p| p.live.as_ref().is_some_and(|l| l.core.is_hosting()))
            .map(|p| p.id)
            .next()
    }

    fn running(&self) -> Vec<NodeId> {
        self.players
            .iter()
            .filter(|p| p.live.is_some())
            .map(|p| p.id)
            .collect()
    }

    // ---------------------------------------------------------------- main loop

    pub fn run(&mut self) -> Result<(), Violation> {
        trace!(self, "seed {} profile {:?}", self.seed, self.profile);
        for slot in 0..self.players.len() {
            if self.players[slot].phase == Phase::Running {
                let id = self.players[slot].id;
                self.boot(id, false, false)?;
            }
        }
        for id in 1..=self.players.len() as NodeId {
            let at = self.input_pause();
            self.schedule(at, Ev::Submit(id));
        }
        self.schedule(0, Ev::Chaos);
        self.schedule(FAULT_PHASE_MS, Ev::Heal);
        loop {
            if self.step >= STEPS_PER_SEED_MAX {
                return Err(Violation::new(
                    "StepBound",
                    format!("{STEPS_PER_SEED_MAX} steps without finishing"),
                ));
            }
            let Some(next) = self.queue.pop() else {
                return Err(Violation::new("EventQueue", "no event left".into()));
            };
            self.now_ms = next.at_ms;
            self.handle(next.event)?;
            self.step += 1;
            self.check_step()?;
            if self.finished {
                return self.oracle.check_lives();
            }
        }
    }

    fn handle(&mut self, event: Ev) -> Result<(), Violation> {
        let now = self.instant();
        match event {
            Ev::RaftTick(id, life) => self.on_raft_tick(id, life),
            Ev::Raft(msg) => self.on_raft_message(msg),
            Ev::Player { from, to, bytes } => {
                if !self.network.link_up(from, to) {
                    self.stats.messages_lost += 1;
                    return Ok(());
                }
                let Some(live) = self.live(to, None) else {
                    return Ok(());
                };
                live.core.handle_message(from, &bytes, now);
                self.pump(to)
            }
            Ev::Forward { from, to, record } => {
                let Some(live) = self.live(to, None) else {
                    return Ok(());
                };
                if live.raft.role() == Role::Leader {
                    let result = live.raft.propose(frame_member(from, &record), None);
                    trace!(
                        self,
                        "node {to} appends a record forwarded by {from}: {result:?}"
                    );
                }
                self.pump(to)
            }
            Ev::Join { from, to } => {
                let Some(live) = self.live(to, None) else {
                    return Ok(());
                };
                let member = live.raft.membership().voters.contains(&from)
                    || live.raft.membership().learners.contains(&from);
                if live.raft.role() == Role::Leader && !member {
                    let result = live
                        .raft
                        .propose_membership(MembershipChange::AddLearner(from));
                    trace!(
                        self,
                        "leader {to} adds joiner {from} as a learner: {result:?}"
                    );
                }
                self.pump(to)
            }
            Ev::JoinKnock(id, life) => self.on_join_knock(id, life),
            Ev::Wake(id, life) => self.on_wake(id, life),
            Ev::Outcome(id, life, outcome) => {
                let Some(live) = self.live(id, Some(life)) else {
                    return Ok(());
                };
                live.core.handle_outcome(outcome, now);
                self.pump(id)
            }
            Ev::Status(id, life) => {
                let Some(live) = self.live(id, Some(life)) else {
                    return Ok(());
                };
                let status = node_status(live);
                live.core.handle_status(&status, now);
                self.pump(id)
            }
            Ev::GameTick(id, life, tick, payload) => {
                let Some(live) = self.live(id, Some(life)) else {
                    return Ok(());
                };
                let result = live.core.commit_tick(tick, payload, now);
                trace!(self, "player {id}'s game answers tick {tick}: {result:?}");
                self.pump(id)
            }
            Ev::GameSnapshot(id, life, tick, bytes) => {
                let Some(live) = self.live(id, Some(life)) else {
                    return Ok(());
                };
                let result = live.core.answer_snapshot(tick, bytes);
                trace!(
                    self,
                    "player {id}'s game answers the snapshot at tick {tick}: {result:?}"
                );
                self.pump(id)
            }
            Ev::Submit(id) => self.on_submit(id),
            Ev::ScoreBack(id, life) => {
                if let Some(live) = self.live(id, Some(life)) {
                    live.core.set_game_score(1.0);
                    trace!(self, "player {id}'s game score is 1 again");
                }
                Ok(())
            }
            Ev::Restart(id) => {
                let slot = self.slot(id).unwrap_or(0);
                if self.players[slot].phase == Phase::Crashed {
                    self.boot(id, false, false)?;
                }
                Ok(())
            }
            Ev::Chaos => self.on_chaos(),
            Ev::Heal => self.on_heal(),
        }
    }

    // ---------------------------------------------------------------- players

    fn node_config(&self, id: NodeId, life: u32) -> Config {
        let mut config = Config::new(
            id,
            derive_seed(self.seed, STREAM_NODE_BASE + (id << 16) + u64::from(life)),
        );
        // The runtime's default is the measured detection; `fixed_detection` runs the
        // fixed election range, which these schedules were first written for.
        config.adaptive_election_timeout = !self.options.fixed_detection;
        config
    }

    /// Starts a player: from its durable state (a founder, or a restart after a crash),
    /// or from an empty store (`fresh`: a joiner, or a departed player coming back). Each
    /// start is a new life with a greater incarnation, as the runtime's wall clock gives.
    fn boot(&mut self, id: NodeId, fresh: bool, rejoin: bool) -> Result<(), Violation> {
        let slot = self.slot(id).unwrap_or(0);
        if fresh {
            self.players[slot].durable = PersistedState::default();
        }
        if rejoin {
            self.players[slot].leave_requested = false;
        }
        self.players[slot].life += 1;
        let life = self.players[slot].life;
        let mut config = self.node_config(id, life);
        let durable = self.players[slot].durable.clone();
        // As the runtime sets it for a joiner that starts from an empty store.
        config.refuse_votes_without_configuration = rejoin && durable == PersistedState::default();
        let raft = RaftNode::new(config, durable.clone())
            .map_err(|e| Violation::new("RestartFromDurableState", format!("node {id}: {e}")))?;
        let session_config = self.profile.session_config(u64::from(life));
        let (mut machine, port) = SessionMachine::new(&session_config);
        let mut applied = 0;
        if let Some(snapshot) = &durable.snapshot {
            machine.restore(&snapshot.data).map_err(|e| {
                Violation::new("SnapshotRestore", format!("node {id} at boot: {e}"))
            })?;
            applied = snapshot.meta.last_index;
        }
        let now = self.instant();
        let mut core = SessionCore::new(session_config, id, u64::from(life), now);
        core.handle_started();
        // As the runtime's session task does: the node started before the core listened,
        // so its membership and role are read from its status.
        core.handle_membership(raft.membership().clone(), now);
        core.handle_role(raft.role(), raft.leader_id(), now);
        let member =
            raft.membership().voters.contains(&id) || raft.membership().learners.contains(&id);
        let joining = !member || rejoin || self.players[slot].join_pending;
        self.players[slot].join_pending = joining;
        let player = &mut self.players[slot];
        player.phase = Phase::Running;
        player.live = Some(Live {
            raft,
            machine,
            port,
            core,
            game: Game::default(),
            applied,
            last_compact: applied,
            proposals: BTreeMap::new(),
            changes: BTreeMap::new(),
            transfer: None,
            reads: BTreeMap::new(),
            next_read: 1,
            wake_at: u64::MAX,
            leaving: false,
            joining,
            leaderless_since: None,
            rejoining: false,
            rejoin_stopped: false,
            boot_last_index: log::last_index(&durable),
        });
        let tick_ms = player.tick_ms;
        trace!(
            self,
            "player {id} starts, life {life} ({})",
            if fresh {
                "empty store"
            } else {
                "durable state"
            }
        );
        self.schedule(self.now_ms + tick_ms, Ev::RaftTick(id, life));
        if joining {
            self.schedule(self.now_ms + 1, Ev::JoinKnock(id, life));
        }
        if self.players[slot].leave_requested {
            if let Some(live) = self.players[slot].live.as_mut() {
                live.leaving = live.core.leave(now).is_ok();
            }
            trace!(self, "player {id} leaves again after its restart");
        }
        self.pump(id)
    }

    fn crash(&mut self, id: NodeId) {
        let slot = self.slot(id).unwrap_or(0);
        self.players[slot].live = None;
        self.players[slot].phase = Phase::Crashed;
        self.stats.crashes += 1;
        trace!(self, "FAULT player {id} crashes");
    }

    fn on_raft_tick(&mut self, id: NodeId, life: u32) -> Result<(), Violation> {
        let now_ms = self.now_ms;
        let slot = self.slot(id).unwrap_or(0);
        let tick_ms = self.players[slot].tick_ms;
        let now = self.instant();
        let Some(live) = self.live(id, Some(life)) else {
            return Ok(());
        };
        live.raft.tick();
        // The runtime driver's REJOIN_AFTER_LEADERLESS: a node removed in its absence
        // hears from no leader again unless it asks to join.
        let mut knock = false;
        if live.raft.leader_id().is_some() {
            live.leaderless_since = None;
            if live.rejoining {
                live.rejoining = false;
                live.joining = false;
            }
        } else if !live.joining && !live.rejoin_stopped {
            let since = *live.leaderless_since.get_or_insert(now_ms);
            if now_ms - since >= REJOIN_AFTER_LEADERLESS_MS {
                live.joining = true;
                live.rejoining = true;
                knock = true;
            }
        }
        let mut expired = Vec::new();
        if live
            .transfer
            .is_some_and(|(_, deadline)| deadline <= now_ms)
        {
            live.transfer = None;
            expired.push(Outcome::Policy(Err("transfer timed out".into())));
        }
        let late: Vec<Index> = live
            .changes
            .iter()
            .filter(|(_, (_, deadline))| *deadline <= now_ms)
            .map(|(index, _)| *index)
            .collect();
        for index in late {
            live.changes.remove(&index);
            expired.push(Outcome::Policy(Err("membership change timed out".into())));
        }
        // Like the runtime's proposal_timeout on reads: a read the core never answers
        // (its quorum shrank under it, say) fails, and the core asks again.
        let stale: Vec<u64> = live
            .reads
            .iter()
            .filter(|(_, (_, deadline))| *deadline <= now_ms)
            .map(|(request, _)| *request)
            .collect();
        let timed_out = stale.len() as u64;
        for request in stale {
            live.reads.remove(&request);
            expired.push(Outcome::Barrier(Err("read timed out".into())));
        }
        for outcome in expired {
            live.core.handle_outcome(outcome, now);
        }
        self.stats.reads_timed_out += timed_out;
        if knock {
            trace!(self, "player {id} heard no leader for {REJOIN_AFTER_LEADERLESS_MS} ms: asks to join again");
            self.schedule(now_ms + 1, Ev::JoinKnock(id, life));
        }
        self.schedule(now_ms + tick_ms, Ev::RaftTick(id, life));
        self.pump(id)
    }

    fn on_raft_message(&mut self, msg: Message) -> Result<(), Violation> {
        let (from, to) = (msg.from, msg.to);
        if !self.network.link_up(from, to) {
            self.stats.messages_lost += 1;
            return Ok(());
        }
        if self.trace {
            if let baton::raft::MessageBody::RequestVoteResponse { pre_vote, granted } = &msg.body {
                trace!(
                    self,
                    "vote {from}->{to} term {} pre_vote {pre_vote} granted {granted}",
                    msg.term
                );
            }
        }
        let Some(live) = self.live(to, None) else {
            return Ok(());
        };
        let _ = live.raft.step(msg);
        self.pump(to)
    }

    fn on_join_knock(&mut self, id: NodeId, life: u32) -> Result<(), Violation> {
        let Some(live) = self.live(id, Some(life)) else {
            return Ok(());
        };
        if !live.joining {
            let slot = self.slot(id).unwrap_or(0);
            self.players[slot].join_pending = false;
            return Ok(());
        }
        let others: Vec<NodeId> = self.running().into_iter().filter(|o| *o != id).collect();
        if !others.is_empty() {
            let to = others[self.chaos_rng.random_range(0..others.len())];
            self.send(id, to, Ev::Join { from: id, to });
        }
        self.schedule(self.now_ms + JOIN_KNOCK_MS, Ev::JoinKnock(id, life));
        Ok(())
    }

    fn on_wake(&mut self, id: NodeId, life: u32) -> Result<(), Violation> {
        let now_ms = self.now_ms;
        let now = self.instant();
        let Some(live) = self.live(id, Some(life)) else {
            return Ok(());
        };
        if live.wake_at != now_ms {
            return Ok(()); // superseded by an earlier or later deadline
        }
        live.wake_at = u64::MAX;
        live.core.handle_timeout(now);
        if let Some(due) = live.core.poll_timeout() {
            if due <= now {
                return Err(Violation::new(
                    "TimerAdvances",
                    format!(
                        "player {id}: after handle_timeout at {now_ms} ms the core is due again at once (hosting {}): a runtime would spin",
                        live.core.is_hosting()
                    ),
                ));
            }
        }
        self.pump(id)
    }

    fn on_submit(&mut self, id: NodeId) -> Result<(), Violation> {
        if self.heal_at.is_some() {
            return Ok(()); // the liveness phase drains what was submitted
        }
        let next = self.now_ms + self.input_pause();
        self.schedule(next, Ev::Submit(id));
        let now = self.instant();
        let slot = self.slot(id).unwrap_or(0);
        let life = self.players[slot].life;
        let len = self.input_rng.random_range(0..=12);
        let mut data: Vec<u8> = (0..len).map(|_| self.input_rng.random()).collect();
        data.extend_from_slice(&id.to_le_bytes()[..1]);
        let Some(live) = self.live(id, None) else {
            return Ok(());
        };
        let incarnation = live.core.incarnation();
        match live.core.submit_input(&data, now) {
            Ok(sequence) => {
                self.stats.inputs += 1;
                trace!(self, "player {id} (life {life}) submits input {sequence}");
                self.oracle.submit((id, incarnation, sequence), data)?;
            }
            Err(err) => trace!(self, "player {id} cannot submit: {err}"),
        }
        self.pump(id)
    }

    fn input_pause(&mut self) -> u64 {
        let mean = self.profile.input_pause_ms_mean;
        self.input_rng.random_range(1..=2 * mean)
    }

    fn game_delay(&mut self) -> u64 {
        match self.profile.game_delay_ms_max {
            0 => 0,
            max => self.game_rng.random_range(0..=max),
        }
    }

    // ---------------------------------------------------------------- the pump

    /// Runs one player to quiescence: Readies, records for the core, the core's actions,
    /// and the events its game polls, until none of them has anything more.
    fn pump(&mut self, id: NodeId) -> Result<(), Violation> {
        for _ in 0..PUMP_ROUNDS_MAX {
            if self.live(id, None).is_none() {
                return Ok(());
            }
            let mut busy = self.drain_ready(id)?;
            busy |= self.serve_reads(id);
            busy |= self.carry_out_actions(id)?;
            busy |= self.game_polls(id)?;
            if !busy {
                self.reschedule_wake(id);
                return Ok(());
            }
        }
        Err(Violation::new(
            "PumpBounded",
            format!("player {id} is still busy after {PUMP_ROUNDS_MAX} rounds"),
        ))
    }

    fn reschedule_wake(&mut self, id: NodeId) {
        let now_ms = self.now_ms;
        let slot = self.slot(id).unwrap_or(0);
        let life = self.players[slot].life;
        let Some(due) = self.players[slot]
            .live
            .as_ref()
            .and_then(|l| l.core.poll_timeout())
        else {
            return;
        };
        let at = self.ms_of(due).max(now_ms + 1);
        let Some(live) = self.live(id, None) else {
            return;
        };
        if live.wake_at != at {
            live.wake_at = at;
            self.schedule(at, Ev::Wake(id, life));
        }
    }

    fn drain_ready(&mut self, id: NodeId) -> Result<bool, Violation> {
        let mut busy = false;
        for _ in 0..READY_DRAIN_MAX {
            let Some(live) = self.live(id, None) else {
                return Ok(busy);
            };
            if !live.raft.has_ready() {
                return Ok(busy);
            }
            let ready = live.raft.ready();
            self.on_ready(id, ready)?;
            busy = true;
        }
        Err(Violation::new(
            "ReadyBounded",
            format!("node {id} produced {READY_DRAIN_MAX} Readies in a row"),
        ))
    }

    fn on_ready(&mut self, id: NodeId, ready: Ready) -> Result<(), Violation> {
        let now = self.instant();
        let slot = self.slot(id).unwrap_or(0);
        for msg in ready.messages {
            self.send_raft(msg);
        }
        let contract =
            |detail: String| Violation::new("ReadyContract", format!("node {id}: {detail}"));
        {
            let durable = &mut self.players[slot].durable;
            if let Some(snapshot) = &ready.snapshot {
                log::install_snapshot(durable, snapshot).map_err(contract)?;
            }
            if let Some(compaction) = &ready.compaction {
                log::compact(durable, compaction).map_err(contract)?;
            }
            log::append(durable, &ready.entries).map_err(contract)?;
            if let Some(hard_state) = ready.hard_state {
                durable.hard_state = hard_state;
            }
        }
        for msg in ready.persisted_messages {
            self.send_raft(msg);
        }
        let Some(live) = self.live(id, None) else {
            return Ok(());
        };
        live.raft.advance(ready.number);
        if let Some(snapshot) = &ready.snapshot {
            live.machine
                .restore(&snapshot.data)
                .map_err(|e| Violation::new("SnapshotRestore", format!("node {id}: {e}")))?;
            let index = snapshot.meta.last_index;
            let membership = &snapshot.meta.membership;
            if membership.voters.contains(&id) || membership.learners.contains(&id) {
                live.joining = false;
            }
            live.applied = index;
            live.last_compact = index;
            // Proposals the snapshot skipped: their fate is unknown here.
            let skipped: Vec<(Index, (Term, u64))> = live
                .proposals
                .range(..=index)
                .map(|(i, p)| (*i, *p))
                .collect();
            for (i, (_, tick)) in skipped {
                live.proposals.remove(&i);
                live.core.handle_outcome(
                    Outcome::TickProposed {
                        tick,
                        result: Err("skipped by a snapshot".into()),
                    },
                    now,
                );
            }
            Self::feed_applied(live, now);
            self.stats.restores += 1;
            trace!(
                self,
                "node {id} restores the leader's snapshot at index {index}"
            );
        }
        for entry in &ready.committed_entries {
            self.apply_entry(id, entry)?;
        }
        let Some(live) = self.live(id, None) else {
            return Ok(());
        };
        for read in ready.read_states {
            if let Some((slot, _)) = live.reads.get_mut(&read.request_id) {
                *slot = Some(read.index);
            }
        }
        let life = self.players[slot].life;
        let Some(live) = self.live(id, None) else {
            return Ok(());
        };
        let mut failed = Vec::new();
        for request in ready.failed_reads {
            if live.reads.remove(&request).is_some() {
                failed.push(request);
            }
        }
        if let Some(soft) = ready.soft_state {
            live.core.handle_role(soft.role, soft.leader, now);
            if let Some((target, _)) = live.transfer {
                if soft.leader == Some(target) {
                    live.transfer = None;
                    live.core.handle_outcome(Outcome::Policy(Ok(())), now);
                }
            }
            trace!(
                self,
                "ROLE node {id} is {:?} in term {} (leader {:?})",
                soft.role,
                soft.term,
                soft.leader
            );
        }
        for _ in failed {
            // Answered later, as the runtime's task would: a failed barrier is retried
            // by the core, and must not spin within one instant.
            self.schedule(
                self.now_ms + 5,
                Ev::Outcome(id, life, Outcome::Barrier(Err("read failed".into()))),
            );
        }
        Ok(())
    }

    /// Hands what the machine applied to the core, in order.
    fn feed_applied(live: &mut Live, now: Instant) {
        while let Ok(applied) = live.port.applied.try_recv() {
            live.core.handle_applied(applied, now);
        }
    }

    fn apply_entry(&mut self, id: NodeId, entry: &Entry) -> Result<(), Violation> {
        let now = self.instant();
        let compact_every = self.profile.compact_every_entries;
        let Some(live) = self.live(id, None) else {
            return Ok(());
        };
        if entry.index <= live.applied {
            return Ok(());
        }
        if entry.index != live.applied + 1 {
            return Err(Violation::new(
                "ApplyInOrder",
                format!(
                    "node {id} applies index {} after {}",
                    entry.index, live.applied
                ),
            ));
        }
        live.applied = entry.index;
        match &entry.payload {
            EntryPayload::Noop => {}
            EntryPayload::Membership(membership) => {
                let news = entry.index > live.boot_last_index;
                if news && (membership.voters.contains(&id) || membership.learners.contains(&id)) {
                    live.joining = false;
                }
                live.core.handle_membership(membership.clone(), now);
                if let Some((term, _)) = live.changes.remove(&entry.index) {
                    let result = if term == entry.term {
                        Ok(())
                    } else {
                        Err("dropped".into())
                    };
                    live.core.handle_outcome(Outcome::Policy(result), now);
                }
            }
            EntryPayload::Command { data, .. } => {
                let result = unframe(data)
                    .map(|(origin, record)| live.machine.apply(entry.index, origin, record));
                Self::feed_applied(live, now);
                if let Some((term, tick)) = live.proposals.remove(&entry.index) {
                    let result = match result {
                        Some(bytes) if term == entry.term => Ok(bytes == [1]),
                        _ => Err("another entry took the proposal's index".into()),
                    };
                    live.core
                        .handle_outcome(Outcome::TickProposed { tick, result }, now);
                }
            }
        }
        // Like the runtime, compact once enough entries were applied, from the machine's
        // snapshot (which refuses until the game's image is recent enough).
        if live.applied >= live.last_compact + compact_every {
            if let Ok(data) = live.machine.snapshot() {
                let applied = live.applied;
                if live.raft.compact(applied, data).is_ok() {
                    live.last_compact = applied;
                    self.stats.compactions += 1;
                }
            }
        }
        Ok(())
    }

    /// Barriers whose read index is applied complete.
    fn serve_reads(&mut self, id: NodeId) -> bool {
        let now = self.instant();
        let Some(live) = self.live(id, None) else {
            return false;
        };
        let applied = live.applied;
        let done: Vec<u64> = live
            .reads
            .iter()
            .filter(|(_, (index, _))| index.is_some_and(|index| index <= applied))
            .map(|(request, _)| *request)
            .collect();
        for request in &done {
            live.reads.remove(request);
            Self::feed_applied(live, now);
            live.core.handle_outcome(Outcome::Barrier(Ok(())), now);
        }
        !done.is_empty()
    }

    fn carry_out_actions(&mut self, id: NodeId) -> Result<bool, Violation> {
        let mut busy = false;
        loop {
            let Some(live) = self.live(id, None) else {
                return Ok(busy);
            };
            let Some(action) = live.core.poll_action() else {
                return Ok(busy);
            };
            busy = true;
            self.carry_out(id, action)?;
        }
    }

    fn carry_out(&mut self, id: NodeId, action: Action) -> Result<(), Violation> {
        let now_ms = self.now_ms;
        let slot = self.slot(id).unwrap_or(0);
        let life = self.players[slot].life;
        let election_ms = ELECTION_TICKS_MAX * self.players[slot].tick_ms;
        let Some(live) = self.live(id, None) else {
            return Ok(());
        };
        let mut later: Option<Outcome> = None;
        match action {
            Action::Propose { tick, record } => {
                if live.raft.role() == Role::Leader {
                    match live.raft.propose(frame_leader(&record), None) {
                        Ok(proposal) => {
                            live.proposals.insert(proposal.index, (proposal.term, tick));
                        }
                        Err(err) => {
                            later = Some(Outcome::TickProposed {
                                tick,
                                result: Err(err.to_string()),
                            })
                        }
                    }
                } else {
                    // The runtime forwards a proposal to the leader it knows; a record
                    // that arrives that way is a member's, not the leader's own.
                    if let Some(leader) = live.raft.leader_id() {
                        self.send(
                            id,
                            leader,
                            Ev::Forward {
                                from: id,
                                to: leader,
                                record,
                            },
                        );
                    }
                    later = Some(Outcome::TickProposed {
                        tick,
                        result: Err("not the leader; forwarded".into()),
                    });
                }
                trace!(self, "player {id} proposes tick {tick}");
            }
            Action::Send { to, bytes } => self.send(
                id,
                to,
                Ev::Player {
                    from: id,
                    to,
                    bytes,
                },
            ),
            Action::Barrier => {
                let request = live.next_read;
                live.next_read += 1;
                match live.raft.read_index(request) {
                    Ok(()) => {
                        live.reads
                            .insert(request, (None, now_ms + POLICY_TIMEOUT_MS));
                    }
                    Err(err) => later = Some(Outcome::Barrier(Err(err.to_string()))),
                }
            }
            Action::ChangeMembership(change) => {
                let result = live.raft.propose_membership(change);
                match &result {
                    Ok(proposal) => {
                        live.changes
                            .insert(proposal.index, (proposal.term, now_ms + POLICY_TIMEOUT_MS));
                    }
                    Err(err) => later = Some(Outcome::Policy(Err(err.to_string()))),
                }
                trace!(
                    self,
                    "player {id} changes membership: {change:?}: {result:?}"
                );
            }
            Action::Transfer { target } => {
                let result = live.raft.transfer_leadership(target);
                match &result {
                    Ok(()) => live.transfer = Some((target, now_ms + 2 * election_ms)),
                    Err(err) => later = Some(Outcome::Policy(Err(err.to_string()))),
                }
                trace!(
                    self,
                    "player {id} hands the host role to {target}: {result:?}"
                );
            }
            Action::QueryStatus => self.schedule(now_ms + 1, Ev::Status(id, life)),
            Action::SetFitness(fitness) => live.raft.set_fitness(fitness),
            Action::StopRejoining => live.rejoin_stopped = true,
            Action::SaveImage(image) => live.port.save_image(image),
            Action::Stop => {
                // The game hears what the core said last (Left, a warning) first.
                while let Some(event) = self.players[slot]
                    .live
                    .as_mut()
                    .and_then(|live| live.core.poll_event())
                {
                    self.on_game_event(id, event)?;
                }
                self.players[slot].live = None;
                self.players[slot].phase = Phase::Departed;
                self.stats.left += 1;
                trace!(self, "player {id} stops (departed)");
                return Ok(());
            }
        }
        if let Some(outcome) = later {
            self.schedule(now_ms + 1, Ev::Outcome(id, life, outcome));
        }
        Ok(())
    }

    fn game_polls(&mut self, id: NodeId) -> Result<bool, Violation> {
        let mut busy = false;
        loop {
            let Some(live) = self.live(id, None) else {
                return Ok(busy);
            };
            let Some(event) = live.core.poll_event() else {
                return Ok(busy);
            };
            busy = true;
            self.on_game_event(id, event)?;
        }
    }

    /// The model game handles one event, and the oracle judges it.
    fn on_game_event(&mut self, id: NodeId, event: Event) -> Result<(), Violation> {
        let slot = self.slot(id).unwrap_or(0);
        let life = self.players[slot].life;
        let delay = self.game_delay();
        let now_ms = self.now_ms;
        let Some(live) = self.players[slot].live.as_mut() else {
            return Ok(());
        };
        match event {
            Event::ApplyTick(record) => {
                let before = live.game.clone();
                live.game.apply(&record);
                let after = live.game.clone();
                let fresh = record.tick > self.oracle.last_tick();
                self.oracle.apply(id, life, &before, &record, &after)?;
                if fresh {
                    self.stats.ticks += 1;
                }
                trace!(
                    self,
                    "player {id} applies tick {} ({} inputs) hash {:016x}",
                    record.tick,
                    record.inputs.len(),
                    after.hash
                );
            }
            Event::RunTick { tick, inputs } => {
                if tick != live.game.tick + 1 {
                    return Err(Violation::new(
                        "TickOnAppliedState",
                        format!(
                            "host {id} is asked to run tick {tick} while its game is at tick {}",
                            live.game.tick
                        ),
                    ));
                }
                let payload = live.game.payload_for(tick);
                trace!(
                    self,
                    "host {id} runs tick {tick} with {} inputs (answer in {delay} ms)",
                    inputs.len()
                );
                self.schedule(now_ms + delay, Ev::GameTick(id, life, tick, payload));
            }
            Event::MakeSnapshot { tick } => {
                if tick != live.game.tick {
                    return Err(Violation::new(
                        "SnapshotAtTick",
                        format!("player {id} is asked for a snapshot at tick {tick} while its game is at tick {}", live.game.tick),
                    ));
                }
                let bytes = live.game.snapshot();
                self.schedule(now_ms + delay, Ev::GameSnapshot(id, life, tick, bytes));
            }
            Event::Restore { tick, snapshot } => {
                let Some(restored) = Game::from_snapshot(&snapshot) else {
                    return Err(Violation::new(
                        "RestoreMatchesHistory",
                        format!("player {id} is given a snapshot that is not its game's"),
                    ));
                };
                let before = live.game.clone();
                self.oracle.restore(id, life, &before, tick, &restored)?;
                live.game = restored;
                trace!(self, "player {id}'s game restores tick {tick}");
            }
            Event::InputCommitted { sequence, tick } => {
                let incarnation = live.core.incarnation();
                self.oracle.ack(id, incarnation, sequence, tick)?;
                self.stats.acked += 1;
            }
            Event::BecameHost { next_tick } => {
                if next_tick != live.game.tick + 1 {
                    return Err(Violation::new(
                        "TickOnAppliedState",
                        format!("player {id} becomes host for tick {next_tick} while its game is at tick {}", live.game.tick),
                    ));
                }
                self.stats.hostings += 1;
                trace!(self, "player {id} hosts from tick {next_tick}");
            }
            Event::Fatal(reason) => {
                return Err(Violation::new(
                    "NoFatal",
                    format!("player {id} stopped: {reason}"),
                ))
            }
            Event::TickOverrun { .. } => self.stats.overruns += 1,
            Event::Left(LeaveOutcome::SessionEnded) => {
                // The last voter left with nobody caught up to take over, as documented:
                // there is no session left to demand progress from.
                trace!(
                    self,
                    "player {id} hears Left(SessionEnded): the session is over"
                );
                self.stats.sessions_ended += 1;
                self.finished = true;
            }
            other => trace!(self, "player {id} hears {other:?}"),
        }
        Ok(())
    }

    // ---------------------------------------------------------------- the network

    fn send_raft(&mut self, msg: Message) {
        let (from, to) = (msg.from, msg.to);
        self.send(from, to, Ev::Raft(msg));
    }

    /// Routes one message (Raft, player, forward or join) through the seeded network.
    fn send(&mut self, from: NodeId, to: NodeId, event: Ev) {
        if let Ev::Player { bytes, .. } = &event {
            if self.sent_player.len() >= REPLAYABLE_MESSAGES_MAX {
                self.sent_player.pop_front();
            }
            self.sent_player.push_back((from, to, bytes.clone()));
            let leaving = self
                .live(from, None)
                .and_then(|live| live.leaving.then(|| live.core.incarnation()));
            if let Some(life) = leaving {
                let words = self.last_words.entry(from).or_insert((life, Vec::new()));
                if words.0 != life {
                    *words = (life, Vec::new());
                }
                if words.1.len() < REPLAYABLE_MESSAGES_MAX {
                    words.1.push(bytes.clone());
                }
            }
        }
        let times = self.network.route(from, to, self.now_ms);
        if times.is_empty() {
            self.stats.messages_lost += 1;
            return;
        }
        let copies = times.len();
        let mut event = Some(event);
        for (copy, at) in times.into_iter().enumerate() {
            let one = if copy + 1 == copies {
                event.take()
            } else {
                event.as_ref().map(clone_message)
            };
            if let Some(one) = one {
                self.schedule(at, one);
            }
        }
    }

    // ---------------------------------------------------------------- faults

    fn on_chaos(&mut self) -> Result<(), Violation> {
        if self.heal_at.is_some() {
            return Ok(());
        }
        let mean = self.profile.chaos_pause_ms_mean;
        let next = self.now_ms + self.chaos_rng.random_range(1..=2 * mean);
        self.schedule(next, Ev::Chaos);
        let total: u32 = self.profile.weights.iter().map(|(_, w)| w).sum();
        if total == 0 {
            return Ok(());
        }
        let mut pick = self.chaos_rng.random_range(0..total);
        let mut fault = Fault::Weather;
        for (candidate, weight) in &self.profile.weights {
            if pick < *weight {
                fault = *candidate;
                break;
            }
            pick -= weight;
        }
        match fault {
            Fault::Crash => self.fault_crash(),
            Fault::Leave => self.fault_leave(),
            Fault::Unfit => self.fault_unfit(),
            Fault::Join => self.fault_join(),
            Fault::Forge => self.fault_forge(),
            Fault::Weather => {
                let weather = &mut self.network.weather;
                let rng = &mut self.chaos_rng;
                weather.drop_ppm = if rng.random_ratio(1, 2) {
                    0
                } else {
                    rng.random_range(0..=PPM / 5)
                };
                weather.duplicate_ppm = if rng.random_ratio(1, 2) {
                    0
                } else {
                    rng.random_range(0..=PPM / 10)
                };
                weather.long_delay_ppm = if rng.random_ratio(1, 2) {
                    0
                } else {
                    rng.random_range(0..=PPM / 10)
                };
                weather.reorder = rng.random_ratio(1, 3);
                trace!(self, "FAULT weather {:?}", self.network.weather);
                Ok(())
            }
            Fault::Partition => {
                let all: Vec<NodeId> = self.players.iter().map(|p| p.id).collect();
                let side: std::collections::BTreeSet<NodeId> = match self.host() {
                    Some(host) if self.chaos_rng.random_ratio(1, 2) => [host].into(),
                    _ => all
                        .iter()
                        .copied()
                        .filter(|_| self.chaos_rng.random_ratio(1, 2))
                        .collect(),
                };
                self.network.partition(&side, &all);
                trace!(self, "FAULT partition {side:?} from the rest");
                Ok(())
            }
            Fault::Replay => {
                if self.chaos_rng.random_ratio(1, 2) && self.replay_last_words() {
                    return Ok(());
                }
                if self.sent_player.is_empty() {
                    return Ok(());
                }
                let pick = self.chaos_rng.random_range(0..self.sent_player.len());
                let (from, to, bytes) = self.sent_player[pick].clone();
                trace!(self, "FAULT an old message {from}->{to} arrives again");
                self.schedule(self.now_ms + 1, Ev::Player { from, to, bytes });
                Ok(())
            }
            Fault::HealPartitions => {
                self.network.heal();
                trace!(self, "FAULT partitions heal");
                Ok(())
            }
        }
    }

    /// Delivers to the host what a player said while leaving in an earlier life (its
    /// leave request above all), now that a later life of it plays: the old request must
    /// not remove the new life. False if no player came back after leaving.
    fn replay_last_words(&mut self) -> bool {
        let Some(host) = self.host() else {
            return false;
        };
        let returned: Vec<NodeId> = self
            .players
            .iter()
            .filter_map(|player| {
                let live = player.live.as_ref()?;
                let (life, _) = self.last_words.get(&player.id)?;
                (player.id != host && live.core.incarnation() > *life).then_some(player.id)
            })
            .collect();
        if returned.is_empty() {
            return false;
        }
        let from = returned[self.chaos_rng.random_range(0..returned.len())];
        let words = self.last_words[&from].1.clone();
        trace!(
            self,
            "FAULT {} messages player {from} sent while leaving in an earlier life reach host {host}",
            words.len()
        );
        for bytes in words {
            self.schedule(
                self.now_ms + 1,
                Ev::Player {
                    from,
                    to: host,
                    bytes,
                },
            );
        }
        true
    }

    fn fault_crash(&mut self) -> Result<(), Violation> {
        let down = self
            .players
            .iter()
            .filter(|p| p.phase == Phase::Crashed)
            .count();
        if down >= self.profile.down_max {
            return Ok(());
        }
        let running = self.running();
        if running.is_empty() {
            return Ok(());
        }
        let victim = match self.host() {
            Some(host) if self.chaos_rng.random_ratio(1, 2) => host,
            _ => running[self.chaos_rng.random_range(0..running.len())],
        };
        self.crash(victim);
        let at = self.now_ms + self.chaos_rng.random_range(50..=1_500);
        self.schedule(at, Ev::Restart(victim));
        Ok(())
    }

    fn fault_leave(&mut self) -> Result<(), Violation> {
        let staying: Vec<NodeId> = self
            .players
            .iter()
            .filter(|p| {
                p.live
                    .as_ref()
                    .is_some_and(|l| !l.leaving && !l.core.is_stopped())
            })
            .map(|p| p.id)
            .collect();
        // Enough players stay for a quorum of three voters after the leave.
        if staying.len() <= 3 {
            return Ok(());
        }
        let leaver = match self.host() {
            Some(host) if self.chaos_rng.random_ratio(2, 3) => host,
            _ => staying[self.chaos_rng.random_range(0..staying.len())],
        };
        let now = self.instant();
        let Some(live) = self.live(leaver, None) else {
            return Ok(());
        };
        let hosting = live.core.is_hosting();
        let result = live.core.leave(now);
        if result.is_ok() {
            live.leaving = true;
            self.stats.leaves += 1;
        }
        if result.is_ok() {
            let slot = self.slot(leaver).unwrap_or(0);
            self.players[slot].leave_requested = true;
        }
        trace!(
            self,
            "FAULT player {leaver} leaves (hosting {hosting}): {result:?}"
        );
        self.pump(leaver)
    }

    fn fault_unfit(&mut self) -> Result<(), Violation> {
        let Some(host) = self.host() else {
            return Ok(());
        };
        let slot = self.slot(host).unwrap_or(0);
        let life = self.players[slot].life;
        if let Some(live) = self.live(host, None) {
            live.core.set_game_score(0.0);
        }
        self.stats.unfit += 1;
        trace!(self, "FAULT host {host}'s game score drops to 0");
        let at = self.now_ms + self.chaos_rng.random_range(500..=3_000);
        self.schedule(at, Ev::ScoreBack(host, life));
        Ok(())
    }

    fn fault_join(&mut self) -> Result<(), Violation> {
        let candidates: Vec<NodeId> = self
            .players
            .iter()
            .filter(|p| matches!(p.phase, Phase::Unborn | Phase::Departed))
            .map(|p| p.id)
            .collect();
        if candidates.is_empty() {
            return Ok(());
        }
        let joiner = candidates[self.chaos_rng.random_range(0..candidates.len())];
        let slot = self.slot(joiner).unwrap_or(0);
        let fresh = self.players[slot].phase == Phase::Unborn || self.options.fresh_rejoin;
        self.stats.joins += 1;
        trace!(self, "FAULT player {joiner} joins");
        self.boot(joiner, fresh, true)
    }

    /// A member forwards a record it made up: the next tick, crediting another player
    /// with an input of a "newer incarnation" (which the marks would admit as its first).
    fn fault_forge(&mut self) -> Result<(), Violation> {
        let host = self.host();
        let running: Vec<NodeId> = self
            .running()
            .into_iter()
            .filter(|p| Some(*p) != host)
            .collect();
        if running.is_empty() {
            return Ok(());
        }
        let forger = running[self.chaos_rng.random_range(0..running.len())];
        let victim = self.players[self.chaos_rng.random_range(0..self.players.len())].id;
        let victim_life = self.players[self.slot(victim).unwrap_or(0)].life;
        let lockstep = self.profile.lockstep;
        let Some(live) = self.live(forger, None) else {
            return Ok(());
        };
        let tick = live.game.tick + 1;
        let record = TickRecord {
            tick,
            inputs: vec![PlayerInput {
                player: victim,
                incarnation: u64::from(victim_life) + 1_000,
                sequence: 1,
                data: b"forged".to_vec(),
            }],
            payload: if lockstep {
                Vec::new()
            } else {
                live.game.payload_for(tick)
            },
        };
        let Some(leader) = live.raft.leader_id() else {
            return Ok(());
        };
        self.stats.forgeries += 1;
        trace!(
            self,
            "FAULT player {forger} forwards a forged tick {tick} crediting player {victim}"
        );
        self.send(
            forger,
            leader,
            Ev::Forward {
                from: forger,
                to: leader,
                record: encode_record(&record),
            },
        );
        Ok(())
    }

    fn on_heal(&mut self) -> Result<(), Violation> {
        self.heal_at = Some(self.now_ms);
        self.tick_at_heal = self.oracle.last_tick();
        self.network.heal();
        self.network.weather = Default::default();
        trace!(self, "HEAL: faults end; every crashed player restarts");
        for slot in 0..self.players.len() {
            let id = self.players[slot].id;
            match self.players[slot].phase {
                Phase::Crashed => self.boot(id, false, false)?,
                Phase::Running => {
                    if let Some(live) = self.live(id, None) {
                        live.core.set_game_score(1.0);
                    }
                }
                Phase::Unborn | Phase::Departed => {}
            }
        }
        Ok(())
    }

    // ---------------------------------------------------------------- checks

    /// After every step: the harness's own consistency, and, after the heal, whether
    /// the session has recovered (or has run out of time to).
    fn check_step(&mut self) -> Result<(), Violation> {
        for player in &self.players {
            if let Some(live) = &player.live {
                if live.core.last_tick() < live.game.tick && !live.core.is_stopped() {
                    return Err(Violation::new(
                        "GameBehindSession",
                        format!(
                            "player {}: the game is at tick {} past the session's {}",
                            player.id,
                            live.game.tick,
                            live.core.last_tick()
                        ),
                    ));
                }
            }
        }
        let Some(heal_at) = self.heal_at else {
            return Ok(());
        };
        match self.recovered() {
            Ok(()) => {
                self.stats.liveness_ms = self.now_ms - heal_at;
                self.finished = true;
                trace!(
                    self,
                    "LIVENESS: recovered {} ms after the heal",
                    self.now_ms - heal_at
                );
                Ok(())
            }
            Err(why) if self.now_ms > heal_at + LIVENESS_BOUND_MS => Err(Violation::new(
                "Liveness",
                format!(
                    "{LIVENESS_BOUND_MS} ms after the heal: {why}; {}",
                    self.describe()
                ),
            )),
            Err(_) => Ok(()),
        }
    }

    /// Each running player's state, for a liveness failure.
    fn describe(&self) -> String {
        let mut out = String::new();
        for player in &self.players {
            let Some(live) = &player.live else { continue };
            out += &format!(
                "[player {} {:?} term {} leader {:?} voters {:?} learners {:?} commit {} last {} applied {} reads {:?} hosting {} leaving {} pending {} tick {}] ",
                player.id,
                live.raft.role(),
                live.raft.term(),
                live.raft.leader_id(),
                live.raft.membership().voters,
                live.raft.membership().learners,
                live.raft.commit_index(),
                live.raft.last_index(),
                live.applied,
                live.reads,
                live.core.is_hosting(),
                live.leaving,
                live.core.inputs_pending(),
                live.game.tick,
            );
        }
        out
    }

    /// The liveness goal: a host, ticks committed since the heal, and every player that
    /// stays a member, its inputs all committed and its game at the newest tick.
    fn recovered(&self) -> Result<(), String> {
        let Some(host) = self.host() else {
            return Err("no player hosts".into());
        };
        let last = self.oracle.last_tick();
        if last < self.tick_at_heal + LIVENESS_TICKS_MIN {
            return Err(format!(
                "only {} ticks committed since the heal",
                last - self.tick_at_heal
            ));
        }
        let host_live = self.players[self.slot(host).unwrap_or(0)].live.as_ref();
        let membership = host_live
            .map(|l| l.raft.membership().clone())
            .unwrap_or_default();
        for player in &self.players {
            let Some(live) = &player.live else { continue };
            if live.leaving || live.core.is_stopped() {
                continue;
            }
            let id = player.id;
            if !membership.voters.contains(&id) && !membership.learners.contains(&id) {
                return Err(format!("player {id} is not a member"));
            }
            if live.core.inputs_pending() > 0 {
                return Err(format!(
                    "player {id} has {} inputs not committed (incarnation {}, highest committed sequence {:?})",
                    live.core.inputs_pending(),
                    live.core.incarnation(),
                    self.oracle.committed_max(id, live.core.incarnation())
                ));
            }
            if live.game.tick != last || self.oracle.hash_at(last) != Some(live.game.hash) {
                return Err(format!(
                    "player {id}'s game is at tick {}, the session at {last}",
                    live.game.tick
                ));
            }
            let incarnation = live.core.incarnation();
            let unacked = self
                .oracle
                .submitted
                .keys()
                .filter(|(p, inc, _)| *p == id && *inc == incarnation)
                .filter(|input| !self.oracle.acked.contains(input))
                .count();
            if unacked > 0 {
                return Err(format!(
                    "player {id} has {unacked} inputs never reported committed"
                ));
            }
        }
        Ok(())
    }
}

fn clone_message(event: &Ev) -> Ev {
    match event {
        Ev::Raft(msg) => Ev::Raft(msg.clone()),
        Ev::Player { from, to, bytes } => Ev::Player {
            from: *from,
            to: *to,
            bytes: bytes.clone(),
        },
        Ev::Forward { from, to, record } => Ev::Forward {
            from: *from,
            to: *to,
            record: record.clone(),
        },
        Ev::Join { from, to } => Ev::Join {
            from: *from,
            to: *to,
        },
        other => unreachable!("only messages travel the network, not {other:?}"),
    }
}

/// The node's status as the runtime reports it (no QUIC links in the simulator).
fn node_status(live: &Live) -> NodeStatus {
    let status = live.raft.status();
    NodeStatus {
        id: status.id,
        addr: std::net::SocketAddr::from(([127, 0, 0, 1], 1)),
        address_book: BTreeMap::new(),
        role: status.role,
        term: status.term,
        leader: status.leader,
        commit_index: status.commit,
        applied_index: live.applied,
        last_index: status.last_index,
        membership: status.membership,
        committed_membership: status.committed_membership,
        fitness: status.fitness,
        progress: live.raft.progress(),
        peer_links: Vec::new(),
        internet: None,
        dialed_peers: Vec::new(),
        // The session core does not read it.
        detection_timeout: None,
    }
}
