//! One simulated run: the cluster, its storage, network, clients and the event loop.
//!
//! Time is a simulated millisecond counter; every action is an event in one priority
//! queue ordered by (time, insertion number), so a seed fixes the whole run. A "step" is
//! one event handled; the invariants are checked after every step.

use super::app::{Applied, StateMachine};
use super::check::{Checker, Violation};
use super::client::{Client, Outstanding, CLIENT_THINK_MS_MAX, CLIENT_THINK_MS_MIN};
use super::log::{self, holds, payload_digest, snapshot_index};
use super::network::{Network, Weather};
use super::profile::{Fault, Profile};
use baton::raft::{
    AppendOutcome, ClientTag, Config, Entry, EntryPayload, Fitness, HardState, Index, Membership,
    MembershipChange, Message, MessageBody, NodeId, PersistedState, ProposalId, ProposeError,
    RaftNode, Ready, Role, Snapshot, Term,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use std::fmt;
use std::io::Write;

/// Length of the fault phase, in simulated milliseconds (≈ 40 election timeouts).
pub const FAULT_PHASE_MS: u64 = 6_000;
/// Liveness: after the heal, a leader must be elected and a fresh proposal must commit
/// within this simulated time (≈ 25 election timeouts at the slowest clock).
pub const LIVENESS_BOUND_MS: u64 = 5_000;
/// After the fresh proposal commits, every member must have applied it within this time.
pub const CONVERGENCE_BOUND_MS: u64 = 5_000;
/// Hard bound on the events of one seed, so a runaway core cannot hang the test.
pub const STEPS_PER_SEED_MAX: u64 = 2_000_000;
/// Most Readies drained from one node after one input before we call it a loop.
pub const READY_DRAIN_MAX: usize = 64;
/// Shortest downtime of a crashed node during the fault phase (ms).
pub const DOWNTIME_MS_MIN: u64 = 20;
/// Longest downtime of a crashed node during the fault phase (ms).
pub const DOWNTIME_MS_MAX: u64 = 2_000;
/// Voters a membership change may leave, at least.
pub const VOTERS_MIN: usize = 1;
/// Client id of the liveness probe (regular clients are 1, 2, ...).
pub const PROBE_CLIENT_ID: u64 = 1_000;

/// What happens at one instant.
#[derive(Debug)]
enum Event {
    /// A node's clock ticks (ignored if the node restarted since it was scheduled).
    Tick(NodeId, u32),
    /// The network hands a message over.
    Deliver(Message),
    /// The oldest pending Ready of a node becomes durable.
    Durable(NodeId, u32),
    /// A crashed node comes back.
    Restart(NodeId, u32),
    /// The fault scheduler acts.
    Chaos,
    /// A client acts.
    Client(usize),
    /// End of the fault phase.
    Heal,
}

struct Scheduled {
    at_ms: u64,
    order: u64,
    event: Event,
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

/// A Ready whose persistence is under way.
struct Pending {
    number: u64,
    hard_state: Option<HardState>,
    snapshot: Option<Snapshot>,
    compaction: Option<Snapshot>,
    entries: Vec<Entry>,
    persisted_messages: Vec<Message>,
    committed_entries: Vec<Entry>,
}

/// A proposal a client made through a node, waiting for that node to apply its index.
struct Attempt {
    client: usize,
    tag: ClientTag,
    proposal: ProposalId,
}

/// One node: the core (None while crashed), its application, and its storage.
struct SimNode {
    id: NodeId,
    raft: Option<RaftNode>,
    app: StateMachine,
    /// What survives a crash.
    durable: PersistedState,
    /// What the core has asked to persist so far: its own view of its log.
    volatile: PersistedState,
    pending: VecDeque<Pending>,
    last_durable_ms: u64,
    incarnation: u32,
    tick_ms: u64,
    fitness: Fitness,
    last_ready_number: u64,
    last_commit: Index,
    leader_term: Option<Term>,
    last_role: Option<Role>,
    attempts: BTreeMap<Index, Vec<Attempt>>,
    /// An application snapshot taken earlier, to compact at an index below the applied one.
    checkpoint: Option<(Index, Vec<u8>)>,
}

/// Counters of what a run exercised (printed per seed in replay, summed otherwise).
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub delivered: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub rejected_steps: u64,
    pub crashes: u64,
    pub partitions: u64,
    pub elections_won: u64,
    pub membership_changes: u64,
    pub transfers: u64,
    pub compactions: u64,
    pub snapshots_installed: u64,
    pub proposals: u64,
    pub acked: u64,
    pub duplicates_suppressed: u64,
    pub liveness_ms: u64,
}

impl Stats {
    pub fn add(&mut self, other: &Stats) {
        self.delivered += other.delivered;
        self.lost += other.lost;
        self.duplicated += other.duplicated;
        self.rejected_steps += other.rejected_steps;
        self.crashes += other.crashes;
        self.partitions += other.partitions;
        self.elections_won += other.elections_won;
        self.membership_changes += other.membership_changes;
        self.transfers += other.transfers;
        self.compactions += other.compactions;
        self.snapshots_installed += other.snapshots_installed;
        self.proposals += other.proposals;
        self.acked += other.acked;
        self.duplicates_suppressed += other.duplicates_suppressed;
        self.liveness_ms = self.liveness_ms.max(other.liveness_ms);
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "delivered {} lost {} duplicated {} rejected {} crashes {} partitions {} elections {} \
             membership {} transfers {} compactions {} snapshots-installed {} proposals {} acked {} \
             dedup-suppressed {} slowest-liveness {} ms",
            self.delivered,
            self.lost,
            self.duplicated,
            self.rejected_steps,
            self.crashes,
            self.partitions,
            self.elections_won,
            self.membership_changes,
            self.transfers,
            self.compactions,
            self.snapshots_installed,
            self.proposals,
            self.acked,
            self.duplicates_suppressed,
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

/// splitmix64: derives independent sub-seeds from the printed seed.
pub fn derive_seed(seed: u64, stream: u64) -> u64 {
    let mut z = seed ^ stream.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Sub-seed streams (fixed numbers: changing one would change every replay).
const STREAM_PROFILE: u64 = 1;
const STREAM_NETWORK: u64 = 2;
const STREAM_CHAOS: u64 = 3;
const STREAM_CLIENTS: u64 = 4;
const STREAM_PERSIST: u64 = 5;
const STREAM_NODE_BASE: u64 = 1 << 32;

/// Runs one seed to completion.
pub fn run_seed(seed: u64, trace: bool) -> SeedReport {
    let mut world = World::new(seed, trace);
    let violation = world.run().err();
    SeedReport {
        seed,
        steps: world.step,
        sim_ms: world.now_ms,
        violation,
        stats: world.stats,
    }
}

struct World {
    seed: u64,
    trace: bool,
    now_ms: u64,
    step: u64,
    queue: BinaryHeap<Scheduled>,
    next_order: u64,
    profile: Profile,
    nodes: Vec<SimNode>,
    network: Network,
    chaos_rng: ChaCha8Rng,
    client_rng: ChaCha8Rng,
    persist_rng: ChaCha8Rng,
    checker: Checker,
    clients: Vec<Client>,
    probe_client: usize,
    /// Every acknowledged tag and the result its client was given.
    acked: BTreeMap<ClientTag, Vec<u8>>,
    /// Log index at which the liveness probe was acknowledged.
    probe_index: Option<Index>,
    heal_at_ms: Option<u64>,
    stats: Stats,
}

macro_rules! trace {
    ($world:expr, $($arg:tt)*) => {
        if $world.trace {
            $world.emit(format_args!($($arg)*));
        }
    };
}

impl World {
    fn new(seed: u64, trace: bool) -> World {
        let mut profile_rng = ChaCha8Rng::seed_from_u64(derive_seed(seed, STREAM_PROFILE));
        let profile = Profile::draw(&mut profile_rng);
        let mut chaos_rng = ChaCha8Rng::seed_from_u64(derive_seed(seed, STREAM_CHAOS));
        let founders = Membership {
            voters: (1..=profile.voters as NodeId).collect(),
            learners: (profile.voters as NodeId + 1
                ..=(profile.voters + profile.learners) as NodeId)
                .collect(),
        };
        let mut nodes = Vec::with_capacity(profile.nodes);
        for id in 1..=profile.nodes as NodeId {
            let founding = founders.voters.contains(&id) || founders.learners.contains(&id);
            let durable = if founding {
                PersistedState::bootstrap(founders.clone())
            } else {
                PersistedState::default()
            };
            nodes.push(SimNode {
                id,
                raft: None,
                app: StateMachine::default(),
                volatile: durable.clone(),
                durable,
                pending: VecDeque::new(),
                last_durable_ms: 0,
                incarnation: 0,
                tick_ms: chaos_rng.random_range(profile.tick_ms_min..=profile.tick_ms_max),
                fitness: Fitness(chaos_rng.random_range(0..=1000)),
                last_ready_number: 0,
                last_commit: 0,
                leader_term: None,
                last_role: None,
                attempts: BTreeMap::new(),
                checkpoint: None,
            });
        }
        let mut clients: Vec<Client> = (1..=profile.clients as u64)
            .map(|id| Client::new(id, profile.commands_per_client))
            .collect();
        let probe_client = clients.len();
        clients.push(Client::new(PROBE_CLIENT_ID, 1));
        World {
            seed,
            trace,
            now_ms: 0,
            step: 0,
            queue: BinaryHeap::new(),
            next_order: 0,
            nodes,
            network: Network::new(ChaCha8Rng::seed_from_u64(derive_seed(seed, STREAM_NETWORK))),
            chaos_rng,
            client_rng: ChaCha8Rng::seed_from_u64(derive_seed(seed, STREAM_CLIENTS)),
            persist_rng: ChaCha8Rng::seed_from_u64(derive_seed(seed, STREAM_PERSIST)),
            checker: Checker::default(),
            clients,
            probe_client,
            acked: BTreeMap::new(),
            probe_index: None,
            heal_at_ms: None,
            stats: Stats::default(),
            profile,
        }
    }

    fn emit(&self, line: fmt::Arguments<'_>) {
        // Straight to the process's stderr: libtest's capture only covers print! macros.
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "[{:>6} ms] {line}", self.now_ms);
    }

    fn schedule(&mut self, at_ms: u64, event: Event) {
        self.next_order += 1;
        self.queue.push(Scheduled {
            at_ms,
            order: self.next_order,
            event,
        });
    }

    fn slot(&self, id: NodeId) -> Option<usize> {
        let slot = usize::try_from(id).ok()?.checked_sub(1)?;
        (slot < self.nodes.len()).then_some(slot)
    }

    fn up(&self, id: NodeId) -> bool {
        self.slot(id).is_some_and(|s| self.nodes[s].raft.is_some())
    }

    fn all_ids(&self) -> Vec<NodeId> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    fn up_ids(&self) -> Vec<NodeId> {
        self.nodes
            .iter()
            .filter(|n| n.raft.is_some())
            .map(|n| n.id)
            .collect()
    }

    // ---------------------------------------------------------------- main loop

    fn run(&mut self) -> Result<(), Violation> {
        trace!(self, "seed {} profile {:?}", self.seed, self.profile);
        for id in self.all_ids() {
            self.boot(id)?;
        }
        for client in 0..self.probe_client {
            let at = self.client_rng.random_range(0..=CLIENT_THINK_MS_MAX);
            self.schedule(at, Event::Client(client));
        }
        self.schedule(0, Event::Chaos);
        self.schedule(FAULT_PHASE_MS, Event::Heal);
        self.check_step()?;
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
            self.liveness_deadlines()?;
            self.handle(next.event)?;
            self.step += 1;
            self.check_step()?;
            if self.converged() {
                return self.final_oracle();
            }
        }
    }

    fn handle(&mut self, event: Event) -> Result<(), Violation> {
        match event {
            Event::Tick(id, incarnation) => self.on_tick(id, incarnation),
            Event::Deliver(msg) => self.on_deliver(msg),
            Event::Durable(id, incarnation) => self.on_durable(id, incarnation),
            Event::Restart(id, incarnation) => {
                let slot = self.slot(id).unwrap_or(0);
                if self.nodes[slot].raft.is_none() && self.nodes[slot].incarnation == incarnation {
                    self.boot(id)?;
                }
                Ok(())
            }
            Event::Chaos => self.on_chaos(),
            Event::Client(client) => self.on_client(client),
            Event::Heal => self.on_heal(),
        }
    }

    // ---------------------------------------------------------------- nodes

    fn node_config(&self, id: NodeId, incarnation: u32) -> Config {
        let mut config = Config::new(
            id,
            derive_seed(
                self.seed,
                STREAM_NODE_BASE + (id << 16) + u64::from(incarnation),
            ),
        );
        config.fitness = self.nodes[self.slot(id).unwrap_or(0)].fitness;
        config.snapshot_chunk_bytes = self.profile.snapshot_chunk_bytes;
        config.max_entries_per_append = self.profile.max_entries_per_append;
        config.max_inflight_appends = self.profile.max_inflight_appends;
        config
    }

    /// Starts (or restarts) a node from its durable state alone.
    fn boot(&mut self, id: NodeId) -> Result<(), Violation> {
        let slot = self.slot(id).unwrap_or(0);
        let incarnation = self.nodes[slot].incarnation;
        let config = self.node_config(id, incarnation);
        let durable = self.nodes[slot].durable.clone();
        let raft = RaftNode::new(config, durable.clone())
            .map_err(|e| Violation::new("RestartFromDurableState", format!("node {id}: {e}")))?;
        let app = match &durable.snapshot {
            Some(snapshot) => StateMachine::restore(&snapshot.data)
                .map_err(|e| Violation::new("SnapshotRestore", format!("node {id}: {e}")))?,
            None => StateMachine::default(),
        };
        if let Some(snapshot) = &durable.snapshot {
            self.check_restored(id, &app, snapshot)?;
        }
        let node = &mut self.nodes[slot];
        node.last_commit = raft.commit_index();
        node.raft = Some(raft);
        node.app = app;
        node.volatile = durable;
        node.pending.clear();
        node.last_durable_ms = self.now_ms;
        node.last_ready_number = 0;
        node.leader_term = None;
        node.last_role = None;
        node.attempts.clear();
        node.checkpoint = None;
        let at = self.now_ms + self.nodes[slot].tick_ms;
        self.schedule(at, Event::Tick(id, incarnation));
        trace!(self, "node {id} starts (incarnation {incarnation})");
        self.drain(id)
    }

    fn crash(&mut self, id: NodeId) {
        let slot = self.slot(id).unwrap_or(0);
        let node = &mut self.nodes[slot];
        node.raft = None;
        node.incarnation += 1;
        let lost = node.pending.len();
        node.pending.clear();
        node.volatile = node.durable.clone();
        node.attempts.clear();
        node.checkpoint = None;
        self.stats.crashes += 1;
        trace!(
            self,
            "FAULT crash node {id} ({lost} Readies not yet durable are lost)"
        );
    }

    fn on_tick(&mut self, id: NodeId, incarnation: u32) -> Result<(), Violation> {
        let slot = self.slot(id).unwrap_or(0);
        if self.nodes[slot].incarnation != incarnation {
            return Ok(());
        }
        let Some(raft) = self.nodes[slot].raft.as_mut() else {
            return Ok(());
        };
        raft.tick();
        let at = self.now_ms + self.nodes[slot].tick_ms;
        self.schedule(at, Event::Tick(id, incarnation));
        self.drain(id)
    }

    fn on_deliver(&mut self, msg: Message) -> Result<(), Violation> {
        let (from, to) = (msg.from, msg.to);
        let Some(slot) = self.slot(to) else {
            return Ok(());
        };
        if !self.network.link_up(from, to) {
            self.stats.lost += 1;
            trace!(self, "lost (partition) {from}->{to} {}", brief(&msg));
            return Ok(());
        }
        let Some(raft) = self.nodes[slot].raft.as_mut() else {
            self.stats.lost += 1;
            trace!(self, "lost (node down) {from}->{to} {}", brief(&msg));
            return Ok(());
        };
        let text = if self.trace {
            brief(&msg)
        } else {
            String::new()
        };
        let result = raft.step(msg);
        self.stats.delivered += 1;
        match result {
            Ok(()) => trace!(self, "deliver {from}->{to} {text}"),
            Err(e) => {
                self.stats.rejected_steps += 1;
                trace!(self, "deliver {from}->{to} {text} REJECTED: {e}");
            }
        }
        self.drain(to)
    }

    // ---------------------------------------------------------------- Ready handling

    fn drain(&mut self, id: NodeId) -> Result<(), Violation> {
        let slot = self.slot(id).unwrap_or(0);
        for _ in 0..READY_DRAIN_MAX {
            let Some(raft) = self.nodes[slot].raft.as_mut() else {
                return Ok(());
            };
            if !raft.has_ready() {
                return Ok(());
            }
            let ready = raft.ready();
            let role = raft.role();
            self.on_ready(slot, ready, role)?;
        }
        Err(Violation::new(
            "ReadyBounded",
            format!("node {id} produced {READY_DRAIN_MAX} Readies in a row"),
        ))
    }

    fn on_ready(&mut self, slot: usize, ready: Ready, role: Role) -> Result<(), Violation> {
        let id = self.nodes[slot].id;
        let contract =
            |detail: String| Violation::new("ReadyContract", format!("node {id}: {detail}"));
        let node = &mut self.nodes[slot];
        if ready.number != node.last_ready_number + 1 {
            return Err(contract(format!(
                "Ready {} after {}",
                ready.number, node.last_ready_number
            )));
        }
        node.last_ready_number = ready.number;
        if let Some(soft) = ready.soft_state {
            if node.last_role != Some(soft.role) {
                node.last_role = Some(soft.role);
                trace!(
                    self,
                    "ROLE node {id} is {:?} in term {} (leader {:?})",
                    soft.role,
                    soft.term,
                    soft.leader
                );
            }
        }
        let node = &mut self.nodes[slot];
        if let Some(snapshot) = &ready.snapshot {
            let removed = log::install_snapshot(&mut node.volatile, snapshot).map_err(contract)?;
            self.checker
                .check_removed(id, "installing a snapshot", &removed, &node.volatile)?;
            if role == Role::Leader {
                return Err(Violation::new(
                    "LeaderAppendOnly",
                    format!("leader {id} installs a snapshot"),
                ));
            }
        }
        if let Some(compaction) = &ready.compaction {
            log::compact(&mut node.volatile, compaction).map_err(contract)?;
        }
        if !ready.entries.is_empty() {
            let removed = log::append(&mut node.volatile, &ready.entries).map_err(contract)?;
            self.checker
                .check_removed(id, "appending", &removed, &node.volatile)?;
            if role == Role::Leader
                && removed
                    .iter()
                    .any(|e| !holds(&node.volatile, e.index, e.term))
            {
                return Err(Violation::new(
                    "LeaderAppendOnly",
                    format!(
                        "leader {id} overwrote its log from index {}",
                        removed[0].index
                    ),
                ));
            }
            self.checker
                .observe_entries(id, &node.volatile, &ready.entries)?;
        }
        if let Some(hard_state) = ready.hard_state {
            node.volatile.hard_state = hard_state;
        }
        let must_persist = ready.must_persist();
        for msg in ready.messages {
            self.send(msg)?;
        }
        let latency = if self.profile.persist_ms_max == 0 || !must_persist {
            0
        } else {
            self.persist_rng
                .random_range(0..=self.profile.persist_ms_max)
        };
        let node = &mut self.nodes[slot];
        // Storage completes writes in order: a later Ready is never durable before an earlier one.
        let at = node.last_durable_ms.max(self.now_ms + latency);
        node.last_durable_ms = at;
        node.pending.push_back(Pending {
            number: ready.number,
            hard_state: ready.hard_state,
            snapshot: ready.snapshot,
            compaction: ready.compaction,
            entries: ready.entries,
            persisted_messages: ready.persisted_messages,
            committed_entries: ready.committed_entries,
        });
        let incarnation = node.incarnation;
        self.schedule(at, Event::Durable(id, incarnation));
        Ok(())
    }

    fn on_durable(&mut self, id: NodeId, incarnation: u32) -> Result<(), Violation> {
        let slot = self.slot(id).unwrap_or(0);
        if self.nodes[slot].incarnation != incarnation || self.nodes[slot].raft.is_none() {
            return Ok(());
        }
        let Some(pending) = self.nodes[slot].pending.pop_front() else {
            return Err(Violation::new(
                "ReadyContract",
                format!("node {id}: durable event without a pending Ready"),
            ));
        };
        self.persist(slot, &pending)?;
        for msg in pending.persisted_messages {
            self.send(msg)?;
        }
        if let Some(raft) = self.nodes[slot].raft.as_mut() {
            raft.advance(pending.number);
        }
        if let Some(snapshot) = &pending.snapshot {
            self.restore_app(slot, snapshot)?;
        }
        for entry in &pending.committed_entries {
            self.apply(slot, entry)?;
        }
        self.drain(id)
    }

    /// Makes one Ready durable in the node's storage, checking the storage contract.
    fn persist(&mut self, slot: usize, pending: &Pending) -> Result<(), Violation> {
        let id = self.nodes[slot].id;
        let contract =
            |detail: String| Violation::new("ReadyContract", format!("node {id}: {detail}"));
        let node = &mut self.nodes[slot];
        if let Some(snapshot) = &pending.snapshot {
            let removed = log::install_snapshot(&mut node.durable, snapshot).map_err(contract)?;
            self.checker.check_removed(
                id,
                "durably installing a snapshot",
                &removed,
                &node.durable,
            )?;
        }
        if let Some(compaction) = &pending.compaction {
            log::compact(&mut node.durable, compaction).map_err(contract)?;
        }
        let removed = log::append(&mut node.durable, &pending.entries).map_err(contract)?;
        self.checker
            .check_removed(id, "durably truncating", &removed, &node.durable)?;
        if let Some(hard_state) = pending.hard_state {
            let old = node.durable.hard_state;
            if hard_state.term < old.term {
                return Err(Violation::new(
                    "TermMonotonic",
                    format!(
                        "node {id} persists term {} after {}",
                        hard_state.term, old.term
                    ),
                ));
            }
            if hard_state.term == old.term && old.vote.is_some() && hard_state.vote != old.vote {
                return Err(Violation::new(
                    "VoteOncePerTerm",
                    format!(
                        "node {id} voted {:?} then {:?} in term {}",
                        old.vote, hard_state.vote, old.term
                    ),
                ));
            }
            if hard_state.commit < old.commit {
                return Err(Violation::new(
                    "CommitIndexMonotonic",
                    format!(
                        "node {id} persists commit {} after {}",
                        hard_state.commit, old.commit
                    ),
                ));
            }
            node.durable.hard_state = hard_state;
        }
        Ok(())
    }

    fn restore_app(&mut self, slot: usize, snapshot: &Snapshot) -> Result<(), Violation> {
        let id = self.nodes[slot].id;
        let applied = self.nodes[slot].app.state.applied_index;
        if snapshot.meta.last_index <= applied {
            return Err(Violation::new(
                "ApplyInOrder",
                format!(
                    "node {id} restores a snapshot at {} after applying {applied}",
                    snapshot.meta.last_index
                ),
            ));
        }
        let app = StateMachine::restore(&snapshot.data)
            .map_err(|e| Violation::new("SnapshotRestore", format!("node {id}: {e}")))?;
        self.check_restored(id, &app, snapshot)?;
        let node = &mut self.nodes[slot];
        node.app = app;
        // Proposals whose index the snapshot skipped: their fate is unknown here; the
        // clients will retry (the tag makes that safe).
        let keep = node.attempts.split_off(&(snapshot.meta.last_index + 1));
        node.attempts = keep;
        self.stats.snapshots_installed += 1;
        trace!(
            self,
            "node {id} restores its application from a snapshot at {}",
            snapshot.meta.last_index
        );
        Ok(())
    }

    fn check_restored(
        &mut self,
        id: NodeId,
        app: &StateMachine,
        snapshot: &Snapshot,
    ) -> Result<(), Violation> {
        if app.state.applied_index != snapshot.meta.last_index {
            return Err(Violation::new(
                "SnapshotRestore",
                format!(
                    "node {id}: snapshot meta says {} but its data was taken at {}",
                    snapshot.meta.last_index, app.state.applied_index
                ),
            ));
        }
        if let Some(term) = self.checker.committed_term(snapshot.meta.last_index) {
            if term != snapshot.meta.last_term {
                return Err(Violation::new(
                    "StateMachineSafety",
                    format!(
                        "node {id} restores a snapshot ending at {} in term {}, but term {term} is committed there",
                        snapshot.meta.last_index, snapshot.meta.last_term
                    ),
                ));
            }
        }
        self.checker
            .observe_state_hash(id, app.state.applied_index, app.state.state_hash)
    }

    fn apply(&mut self, slot: usize, entry: &Entry) -> Result<(), Violation> {
        let id = self.nodes[slot].id;
        let observed_term = self.nodes[slot].raft.as_ref().map_or(0, |r| r.term());
        let outcome = self.nodes[slot]
            .app
            .apply(entry)
            .map_err(|(invariant, detail)| {
                Violation::new(invariant, format!("node {id}: {detail}"))
            })?;
        let newly = self.checker.record_committed(
            id,
            entry.index,
            entry.term,
            payload_digest(&entry.payload),
            observed_term,
        )?;
        if newly {
            self.check_leaders_hold(entry.index)?;
        }
        let hash = self.nodes[slot].app.state.state_hash;
        self.checker.observe_state_hash(id, entry.index, hash)?;
        if matches!(outcome, Applied::Duplicate { .. }) {
            self.stats.duplicates_suppressed += 1;
        }
        let Some(attempts) = self.nodes[slot].attempts.remove(&entry.index) else {
            return Ok(());
        };
        for attempt in attempts {
            self.resolve(id, attempt, entry, &outcome)?;
        }
        Ok(())
    }

    /// The proposer applied the index of a client's attempt: acknowledge it or retry.
    fn resolve(
        &mut self,
        id: NodeId,
        attempt: Attempt,
        entry: &Entry,
        outcome: &Applied,
    ) -> Result<(), Violation> {
        if entry.term != attempt.proposal.term {
            trace!(
                self,
                "client {} attempt {:?} at {:?} was lost: retry",
                attempt.client,
                attempt.tag,
                attempt.proposal
            );
            if let Some(outstanding) = self.clients[attempt.client].outstanding.as_mut() {
                if outstanding.tag == attempt.tag {
                    outstanding.last_sent_ms = None;
                }
            }
            return Ok(());
        }
        let carries_tag = matches!(&entry.payload, EntryPayload::Command { tag: Some(tag), .. } if *tag == attempt.tag);
        if !carries_tag {
            return Err(Violation::new(
                "ProposalIdentity",
                format!(
                    "node {id}: proposal {:?} of {:?} committed as {:?}",
                    attempt.proposal, attempt.tag, entry.payload
                ),
            ));
        }
        let result = match outcome {
            Applied::New { result } | Applied::Duplicate { result } => result.clone(),
            Applied::Stale | Applied::NotACommand => return Ok(()),
        };
        if let Some(previous) = self.acked.get(&attempt.tag) {
            if *previous != result {
                return Err(Violation::new(
                    "DedupAppliedOnce",
                    format!(
                        "{:?} acknowledged with result {previous:?} and later {result:?}",
                        attempt.tag
                    ),
                ));
            }
        } else {
            self.acked.insert(attempt.tag, result);
            self.stats.acked += 1;
        }
        let client = &mut self.clients[attempt.client];
        if client
            .outstanding
            .as_ref()
            .is_some_and(|o| o.tag == attempt.tag)
        {
            client.outstanding = None;
            trace!(
                self,
                "client {} acknowledged {:?} at {}",
                attempt.tag.client_id,
                attempt.tag,
                entry.index
            );
            if attempt.client == self.probe_client {
                self.probe_index = Some(entry.index);
                let heal_at = self.heal_at_ms.unwrap_or(0);
                self.stats.liveness_ms = self.now_ms - heal_at;
                trace!(
                    self,
                    "LIVENESS fresh proposal committed {} ms after the heal",
                    self.now_ms - heal_at
                );
            }
        }
        Ok(())
    }

    fn send(&mut self, msg: Message) -> Result<(), Violation> {
        self.check_outgoing(&msg)?;
        let times = self.network.route(msg.from, msg.to, self.now_ms);
        if times.is_empty() {
            self.stats.lost += 1;
            trace!(
                self,
                "lost (network) {}->{} {}",
                msg.from,
                msg.to,
                brief(&msg)
            );
            return Ok(());
        }
        if times.len() > 1 {
            self.stats.duplicated += 1;
        }
        let last = times.len() - 1;
        let mut msg = Some(msg);
        for (copy, at) in times.into_iter().enumerate() {
            let one = if copy == last {
                msg.take()
            } else {
                msg.clone()
            };
            if let Some(one) = one {
                self.schedule(at, Event::Deliver(one));
            }
        }
        Ok(())
    }

    /// Persist-before-send (Figure 2): what a message promises must be durable on its sender.
    fn check_outgoing(&self, msg: &Message) -> Result<(), Violation> {
        let Some(slot) = self.slot(msg.from) else {
            return Err(Violation::new(
                "ReadyContract",
                format!("message from unknown node {}", msg.from),
            ));
        };
        let durable = &self.nodes[slot].durable;
        match &msg.body {
            MessageBody::RequestVoteResponse {
                pre_vote: false,
                granted: true,
            } => {
                let hard = durable.hard_state;
                if hard.term != msg.term || hard.vote != Some(msg.to) {
                    return Err(Violation::new(
                        "VoteDurableBeforeSend",
                        format!(
                            "node {} grants its term-{} vote to {} while its durable hard state is {:?}",
                            msg.from, msg.term, msg.to, hard
                        ),
                    ));
                }
            }
            MessageBody::AppendEntriesResponse {
                outcome: AppendOutcome::Accepted { match_index },
                ..
            } => {
                if *match_index > log::last_index(durable) {
                    return Err(Violation::new(
                        "AckDurableBeforeSend",
                        format!(
                            "node {} acknowledges up to {match_index} but has only {} durable",
                            msg.from,
                            log::last_index(durable)
                        ),
                    ));
                }
            }
            MessageBody::InstallSnapshotResponse {
                snapshot_index: index,
                complete: true,
                ..
            } => {
                if snapshot_index(durable) < *index {
                    return Err(Violation::new(
                        "AckDurableBeforeSend",
                        format!(
                            "node {} reports snapshot {index} installed, durable snapshot is at {}",
                            msg.from,
                            snapshot_index(durable)
                        ),
                    ));
                }
            }
            _ => {}
        }
        Ok(())
    }

    // ---------------------------------------------------------------- invariants per step

    fn check_step(&mut self) -> Result<(), Violation> {
        for slot in 0..self.nodes.len() {
            let id = self.nodes[slot].id;
            let Some(raft) = self.nodes[slot].raft.as_ref() else {
                continue;
            };
            let (role, term, commit) = (raft.role(), raft.term(), raft.commit_index());
            if role == Role::Leader {
                self.checker.observe_leader(term, id)?;
                if self.nodes[slot].leader_term != Some(term) {
                    self.nodes[slot].leader_term = Some(term);
                    self.stats.elections_won += 1;
                    trace!(self, "ROLE node {id} leads term {term}");
                    self.checker
                        .check_leader_completeness(id, term, &self.nodes[slot].volatile)?;
                }
            } else {
                self.nodes[slot].leader_term = None;
            }
            let last_commit = self.nodes[slot].last_commit;
            if commit < last_commit {
                return Err(Violation::new(
                    "CommitIndexMonotonic",
                    format!("node {id} commit index went from {last_commit} to {commit}"),
                ));
            }
            for index in last_commit + 1..=commit {
                let newly =
                    self.checker
                        .observe_commit(id, &self.nodes[slot].volatile, index, term)?;
                if role == Role::Leader {
                    self.check_commit_quorum(slot, index)?;
                }
                if newly {
                    self.check_leaders_hold(index)?;
                }
            }
            self.nodes[slot].last_commit = commit;
        }
        Ok(())
    }

    /// CommittedDurableOnQuorum: when a leader commits an index, a majority of its voters
    /// hold that entry durably (so no crash can lose it).
    fn check_commit_quorum(&self, leader_slot: usize, index: Index) -> Result<(), Violation> {
        let leader = &self.nodes[leader_slot];
        let Some(raft) = leader.raft.as_ref() else {
            return Ok(());
        };
        if index <= snapshot_index(&leader.volatile) {
            return Ok(());
        }
        let Some(term) = log::term_at(&leader.volatile, index) else {
            return Ok(());
        };
        let voters = &raft.membership().voters;
        let holders: Vec<NodeId> = voters
            .iter()
            .filter(|v| {
                self.slot(**v)
                    .is_some_and(|s| holds(&self.nodes[s].durable, index, term))
            })
            .copied()
            .collect();
        if holders.len() * 2 <= voters.len() {
            return Err(Violation::new(
                "CommittedDurableOnQuorum",
                format!(
                    "leader {} commits {index} (term {term}) but only {holders:?} of voters {voters:?} hold it durably",
                    leader.id
                ),
            ));
        }
        Ok(())
    }

    fn check_leaders_hold(&self, index: Index) -> Result<(), Violation> {
        for node in &self.nodes {
            if let (Some(raft), Some(term)) = (node.raft.as_ref(), node.leader_term) {
                if raft.role() == Role::Leader {
                    self.checker
                        .check_leader_holds(node.id, term, &node.volatile, index)?;
                }
            }
        }
        Ok(())
    }

    // ---------------------------------------------------------------- clients

    fn on_client(&mut self, client: usize) -> Result<(), Violation> {
        let c = &mut self.clients[client];
        if c.outstanding.is_none() && c.budget > 0 {
            c.budget -= 1;
            let tag = ClientTag {
                client_id: c.id,
                sequence: c.next_sequence,
            };
            c.next_sequence += 1;
            let len = self.client_rng.random_range(1..=24);
            let mut data = Vec::with_capacity(len + 16);
            data.extend_from_slice(&tag.client_id.to_le_bytes());
            data.extend_from_slice(&tag.sequence.to_le_bytes());
            data.extend((0..len).map(|_| self.client_rng.random::<u8>()));
            c.outstanding = Some(Outstanding {
                tag,
                data,
                last_sent_ms: None,
                attempts: 0,
            });
        }
        if self.clients[client].due(self.now_ms) {
            self.client_send(client)?;
        }
        let c = &self.clients[client];
        if c.outstanding.is_some() || c.budget > 0 {
            let at = self.now_ms
                + self
                    .client_rng
                    .random_range(CLIENT_THINK_MS_MIN..=CLIENT_THINK_MS_MAX);
            self.schedule(at, Event::Client(client));
        }
        Ok(())
    }

    fn client_send(&mut self, client: usize) -> Result<(), Violation> {
        let up = self.up_ids();
        if up.is_empty() {
            return Ok(());
        }
        let hint = self.clients[client].leader_hint.filter(|h| up.contains(h));
        let target = match hint {
            Some(h) if self.client_rng.random_bool(0.9) => h,
            _ => up[self.client_rng.random_range(0..up.len())],
        };
        let Some(outstanding) = self.clients[client].outstanding.clone() else {
            return Ok(());
        };
        let slot = self.slot(target).unwrap_or(0);
        let Some(raft) = self.nodes[slot].raft.as_mut() else {
            return Ok(());
        };
        match raft.propose(outstanding.data.clone(), Some(outstanding.tag)) {
            Ok(proposal) => {
                self.stats.proposals += 1;
                self.nodes[slot]
                    .attempts
                    .entry(proposal.index)
                    .or_default()
                    .push(Attempt {
                        client,
                        tag: outstanding.tag,
                        proposal,
                    });
                let c = &mut self.clients[client];
                c.leader_hint = Some(target);
                if let Some(o) = c.outstanding.as_mut() {
                    o.last_sent_ms = Some(self.now_ms);
                    o.attempts += 1;
                }
                trace!(
                    self,
                    "client {} proposes {:?} at node {target}: {:?}",
                    outstanding.tag.client_id,
                    outstanding.tag,
                    proposal
                );
                self.drain(target)
            }
            Err(error) => {
                if let ProposeError::NotLeader { leader } = error {
                    self.clients[client].leader_hint = leader;
                }
                trace!(
                    self,
                    "client {} proposes {:?} at node {target}: {error}",
                    outstanding.tag.client_id,
                    outstanding.tag
                );
                Ok(())
            }
        }
    }

    // ---------------------------------------------------------------- faults

    fn on_chaos(&mut self) -> Result<(), Violation> {
        if self.heal_at_ms.is_some() {
            return Ok(());
        }
        if let Some(fault) = self.profile.pick_fault(&mut self.chaos_rng) {
            self.inject(fault)?;
        }
        let mean = self.profile.chaos_interval_ms;
        let at = self.now_ms + self.chaos_rng.random_range(1..=2 * mean);
        self.schedule(at, Event::Chaos);
        Ok(())
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> Option<T> {
        if items.is_empty() {
            return None;
        }
        Some(items[self.chaos_rng.random_range(0..items.len())])
    }

    /// The leader of the highest term among the running nodes.
    fn current_leader(&self) -> Option<NodeId> {
        self.nodes
            .iter()
            .filter_map(|n| n.raft.as_ref().map(|r| (n.id, r)))
            .filter(|(_, r)| r.role() == Role::Leader)
            .max_by_key(|(_, r)| r.term())
            .map(|(id, _)| id)
    }

    fn inject(&mut self, fault: Fault) -> Result<(), Violation> {
        let all = self.all_ids();
        match fault {
            Fault::Crash => {
                let down = all.len() - self.up_ids().len();
                if down >= self.profile.crashed_max {
                    return Ok(());
                }
                let Some(id) = self.pick(&self.up_ids()) else {
                    return Ok(());
                };
                self.crash(id);
                let slot = self.slot(id).unwrap_or(0);
                let incarnation = self.nodes[slot].incarnation;
                let at = self.now_ms
                    + self
                        .chaos_rng
                        .random_range(DOWNTIME_MS_MIN..=DOWNTIME_MS_MAX);
                self.schedule(at, Event::Restart(id, incarnation));
            }
            Fault::PartitionSymmetric => {
                let side: BTreeSet<NodeId> = all
                    .iter()
                    .copied()
                    .filter(|_| self.chaos_rng.random_bool(0.5))
                    .collect();
                self.network.partition(&side, &all);
                self.stats.partitions += 1;
                trace!(self, "FAULT partition {side:?} | rest");
            }
            Fault::PartitionAsymmetric => {
                let (Some(from), Some(to)) = (self.pick(&all), self.pick(&all)) else {
                    return Ok(());
                };
                if from != to {
                    self.network.blocked.insert((from, to));
                    self.stats.partitions += 1;
                    trace!(self, "FAULT one-way partition: {from} cannot reach {to}");
                }
            }
            Fault::IsolateLeader => {
                if let Some(leader) = self.current_leader() {
                    self.network.partition(&BTreeSet::from([leader]), &all);
                    self.stats.partitions += 1;
                    trace!(self, "FAULT isolate leader {leader}");
                }
            }
            Fault::HealPartitions => {
                self.network.heal();
                trace!(self, "FAULT heal partitions");
            }
            Fault::Weather => {
                let p = &self.profile;
                let (drop_max, dup_max, delay_max, reorder) = (
                    p.drop_ppm_max,
                    p.duplicate_ppm_max,
                    p.long_delay_ppm_max,
                    p.reorder,
                );
                self.network.weather = Weather {
                    drop_ppm: self.chaos_rng.random_range(0..=drop_max),
                    duplicate_ppm: self.chaos_rng.random_range(0..=dup_max),
                    long_delay_ppm: self.chaos_rng.random_range(0..=delay_max),
                    reorder: reorder && self.chaos_rng.random_bool(0.5),
                };
                trace!(self, "FAULT network weather {:?}", self.network.weather);
            }
            Fault::Membership => self.change_membership()?,
            Fault::Transfer => {
                let Some(leader) = self.current_leader() else {
                    return Ok(());
                };
                let slot = self.slot(leader).unwrap_or(0);
                let voters: Vec<NodeId> = self.nodes[slot]
                    .raft
                    .as_ref()
                    .map(|r| {
                        r.membership()
                            .voters
                            .iter()
                            .copied()
                            .filter(|v| *v != leader)
                            .collect()
                    })
                    .unwrap_or_default();
                // Mostly a voter (a real transfer); sometimes anyone, to exercise refusals.
                let candidates = if self.chaos_rng.random_bool(0.8) && !voters.is_empty() {
                    voters
                } else {
                    all.clone()
                };
                let Some(target) = self.pick(&candidates) else {
                    return Ok(());
                };
                if let Some(raft) = self.nodes[slot].raft.as_mut() {
                    let result = raft.transfer_leadership(target);
                    if result.is_ok() {
                        self.stats.transfers += 1;
                    }
                    trace!(
                        self,
                        "FAULT leader {leader} transfers to {target}: {result:?}"
                    );
                    self.drain(leader)?;
                }
            }
            Fault::Compact => {
                let Some(id) = self.pick(&self.up_ids()) else {
                    return Ok(());
                };
                self.compact(id)?;
            }
            Fault::Fitness => {
                let Some(id) = self.pick(&self.up_ids()) else {
                    return Ok(());
                };
                let fitness = Fitness(self.chaos_rng.random_range(0..=1000));
                let slot = self.slot(id).unwrap_or(0);
                self.nodes[slot].fitness = fitness;
                if let Some(raft) = self.nodes[slot].raft.as_mut() {
                    raft.set_fitness(fitness);
                }
                trace!(self, "FAULT node {id} fitness {}", fitness.0);
                self.drain(id)?;
            }
            Fault::Drift => {
                let Some(id) = self.pick(&all) else {
                    return Ok(());
                };
                let tick_ms = self
                    .chaos_rng
                    .random_range(self.profile.tick_ms_min..=self.profile.tick_ms_max);
                let slot = self.slot(id).unwrap_or(0);
                self.nodes[slot].tick_ms = tick_ms;
                trace!(self, "FAULT node {id} clock now ticks every {tick_ms} ms");
            }
            Fault::Campaign => {
                let Some(id) = self.pick(&self.up_ids()) else {
                    return Ok(());
                };
                let slot = self.slot(id).unwrap_or(0);
                if let Some(raft) = self.nodes[slot].raft.as_mut() {
                    let result = raft.campaign();
                    trace!(self, "FAULT node {id} campaigns: {result:?}");
                    self.drain(id)?;
                }
            }
        }
        Ok(())
    }

    fn change_membership(&mut self) -> Result<(), Violation> {
        let Some(leader) = self.current_leader() else {
            return Ok(());
        };
        let slot = self.slot(leader).unwrap_or(0);
        let Some(membership) = self.nodes[slot]
            .raft
            .as_ref()
            .map(|r| r.membership().clone())
        else {
            return Ok(());
        };
        let mut options = Vec::new();
        for id in self.all_ids() {
            let voter = membership.voters.contains(&id);
            let learner = membership.learners.contains(&id);
            let can_lose_voter = membership.voters.len() > VOTERS_MIN;
            if !voter && !learner {
                options.push(MembershipChange::AddLearner(id));
            }
            if learner {
                options.push(MembershipChange::PromoteLearner(id));
                options.push(MembershipChange::RemoveNode(id));
            }
            if voter && can_lose_voter {
                options.push(MembershipChange::DemoteVoter(id));
                options.push(MembershipChange::RemoveNode(id));
            }
        }
        let Some(change) = self.pick(&options) else {
            return Ok(());
        };
        let Some(raft) = self.nodes[slot].raft.as_mut() else {
            return Ok(());
        };
        let result = raft.propose_membership(change);
        if result.is_ok() {
            self.stats.membership_changes += 1;
        }
        trace!(
            self,
            "FAULT leader {leader} proposes {change:?}: {result:?}"
        );
        self.drain(leader)
    }

    fn compact(&mut self, id: NodeId) -> Result<(), Violation> {
        let slot = self.slot(id).unwrap_or(0);
        let node = &mut self.nodes[slot];
        let applied = node.app.state.applied_index;
        let current = (applied, node.app.snapshot());
        let older = node.checkpoint.take();
        let use_older = older.is_some() && self.chaos_rng.random_bool(0.5);
        let node = &mut self.nodes[slot];
        let (index, data) = match older {
            Some(older) if use_older => {
                node.checkpoint = Some(current);
                older
            }
            _ => {
                node.checkpoint = Some(current.clone());
                current
            }
        };
        if index <= snapshot_index(&node.volatile) {
            return Ok(());
        }
        let Some(raft) = node.raft.as_mut() else {
            return Ok(());
        };
        let result = raft.compact(index, data);
        if result.is_ok() {
            self.stats.compactions += 1;
        }
        trace!(
            self,
            "FAULT node {id} compacts at {index} (applied {applied}): {result:?}"
        );
        self.drain(id)
    }

    // ---------------------------------------------------------------- heal and liveness

    fn on_heal(&mut self) -> Result<(), Violation> {
        self.heal_at_ms = Some(self.now_ms);
        self.network.heal();
        self.network.weather = Weather::default();
        trace!(self, "HEAL all faults off; crashed nodes restart");
        for id in self.all_ids() {
            if !self.up(id) {
                self.boot(id)?;
            }
        }
        let probe = self.probe_client;
        self.schedule(self.now_ms, Event::Client(probe));
        Ok(())
    }

    fn liveness_deadlines(&self) -> Result<(), Violation> {
        let Some(heal_at) = self.heal_at_ms else {
            return Ok(());
        };
        if self.probe_index.is_none() && self.now_ms > heal_at + LIVENESS_BOUND_MS {
            let leader = self.current_leader();
            return Err(Violation::new(
                "Liveness",
                format!(
                    "no fresh proposal committed within {LIVENESS_BOUND_MS} ms of the heal (leader now: {leader:?}; {})",
                    self.describe_nodes()
                ),
            ));
        }
        if self.now_ms > heal_at + LIVENESS_BOUND_MS + CONVERGENCE_BOUND_MS {
            return Err(Violation::new(
                "Liveness",
                format!(
                    "members did not all apply the fresh proposal within {CONVERGENCE_BOUND_MS} ms ({})",
                    self.describe_nodes()
                ),
            ));
        }
        Ok(())
    }

    fn describe_nodes(&self) -> String {
        let mut parts = Vec::new();
        for node in &self.nodes {
            match node.raft.as_ref() {
                Some(r) => parts.push(format!(
                    "{}: {:?} term {} commit {} last {} applied {} voters {:?} learners {:?}",
                    node.id,
                    r.role(),
                    r.term(),
                    r.commit_index(),
                    r.last_index(),
                    node.app.state.applied_index,
                    r.membership().voters,
                    r.membership().learners
                )),
                None => parts.push(format!("{}: down", node.id)),
            }
        }
        parts.join("; ")
    }

    /// The members of the final configuration that must all hold the fresh proposal.
    fn final_members(&self) -> Option<Vec<NodeId>> {
        let leader = self.current_leader()?;
        let raft = self.nodes[self.slot(leader)?].raft.as_ref()?;
        let membership = raft.membership();
        Some(
            membership
                .voters
                .iter()
                .chain(membership.learners.iter())
                .copied()
                .collect(),
        )
    }

    fn converged(&self) -> bool {
        let Some(probe_index) = self.probe_index else {
            return false;
        };
        let Some(members) = self.final_members() else {
            return false;
        };
        members.iter().all(|id| {
            self.slot(*id).is_some_and(|s| {
                self.nodes[s].raft.is_some() && self.nodes[s].app.state.applied_index >= probe_index
            })
        })
    }

    /// The client oracle: every acknowledged proposal is in every member's applied
    /// sequence, exactly once, at the position its client was told.
    fn final_oracle(&self) -> Result<(), Violation> {
        let members = self.final_members().unwrap_or_default();
        for id in &members {
            let Some(slot) = self.slot(*id) else { continue };
            let sequence = &self.nodes[slot].app.state.sequence;
            for (tag, result) in &self.acked {
                let position = result
                    .as_slice()
                    .try_into()
                    .map(u64::from_le_bytes)
                    .ok()
                    .and_then(|p| usize::try_from(p).ok());
                let found = position
                    .and_then(|p| sequence.get(p))
                    .is_some_and(|c| c.tag == Some(*tag));
                if !found {
                    return Err(Violation::new(
                        "AckedProposalLost",
                        format!("acknowledged {tag:?} (result {result:?}) is not where promised in node {id}'s applied sequence"),
                    ));
                }
            }
        }
        trace!(
            self,
            "END {} acknowledged proposals found in members {members:?}; {}",
            self.acked.len(),
            self.describe_nodes()
        );
        Ok(())
    }
}

/// A one-line description of a message for the trace (entries summarized).
fn brief(msg: &Message) -> String {
    match &msg.body {
        MessageBody::AppendEntries {
            prev_log_index,
            prev_log_term,
            entries,
            leader_commit,
        } => {
            let span = match (entries.first(), entries.last()) {
                (Some(first), Some(last)) => format!(
                    "{}..={} (terms {}..={})",
                    first.index, last.index, first.term, last.term
                ),
                _ => "none".to_string(),
            };
            format!(
                "term {} AppendEntries prev ({prev_log_index}, {prev_log_term}) entries {span} commit {leader_commit}",
                msg.term
            )
        }
        MessageBody::InstallSnapshot {
            meta,
            offset,
            total_bytes,
            data,
        } => format!(
            "term {} InstallSnapshot last ({}, {}) bytes {offset}+{} of {total_bytes}",
            msg.term,
            meta.last_index,
            meta.last_term,
            data.len()
        ),
        body => format!("term {} {body:?}", msg.term),
    }
}
