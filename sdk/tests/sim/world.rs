//! One simulated run: the cluster, its storage, network, clients and the event loop.
//!
//! Time is a simulated millisecond counter; every action is an event in one priority
//! queue ordered by (time, insertion number), so a seed fixes the whole run. A "step" is
//! one event handled; the invariants are checked after every step.

use super::app::{Applied, StateMachine};
use super::check::{Checker, Violation};
use super::client::{Client, CLIENT_THINK_MS_MAX};
use super::detector::{Script, Step};
use super::log::{self, holds, payload_digest, snapshot_index};
use super::network::Network;
use super::profile::{Link, Profile};
use baton::raft::{
    AppendOutcome, ClientTag, Config, Entry, Fitness, HardState, Index, Membership, Message,
    MessageBody, NodeId, PersistedState, ProposalId, RaftNode, Ready, Role, Snapshot, Term,
};
use baton::storage::{newest_snapshot, MemoryStorage, PersistBatch, Storage};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::fmt;
use std::io::Write;

/// Length of the fault phase, in simulated milliseconds (≈ 40 election timeouts).
pub const FAULT_PHASE_MS: u64 = 120_000;
/// Liveness: after the heal, a leader must be elected and a fresh proposal must commit
/// within this simulated time (≈ 25 election timeouts at the slowest clock).
pub const LIVENESS_BOUND_MS: u64 = 5_000;
/// After the fresh proposal commits, every member must have applied it within this time.
pub const CONVERGENCE_BOUND_MS: u64 = 20_000;
/// Messages in flight at once beyond which the core is amplifying traffic (a healthy
/// 7-node cluster under duplication and long delays stays around a few hundred).
pub const IN_FLIGHT_MESSAGES_MAX: u64 = 5_000;
/// Hard bound on the events of one seed, so a runaway core cannot hang the test.
pub const STEPS_PER_SEED_MAX: u64 = 2_000_000;
/// Most Readies drained from one node after one input before we call it a loop.
pub const READY_DRAIN_MAX: usize = 64;
/// Shortest downtime of a crashed node during the fault phase (ms).
pub const DOWNTIME_MS_MIN: u64 = 20;
/// Longest downtime of a crashed node during the fault phase (ms).
pub const DOWNTIME_MS_MAX: u64 = 2_000;
/// Longest delay between a leader's election and its crash by the reactive nemesis (ms).
pub const NEW_LEADER_CRASH_DELAY_MS_MAX: u64 = 40;
/// Voters a membership change may leave, at least.
pub const VOTERS_MIN: usize = 1;
/// Client id of the liveness probe (regular clients are 1, 2, ...).
pub const PROBE_CLIENT_ID: u64 = 1_000;

/// What happens at one instant.
#[derive(Debug)]
pub(super) enum Event {
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
    /// The reactive nemesis crashes a node if it is still leader.
    CrashLeader(NodeId, u32),
    /// The reactive nemesis crashes a node (that just granted a vote).
    CrashVoter(NodeId, u32),
    /// A client acts.
    Client(usize),
    /// End of the fault phase.
    Heal,
    /// The detector scenario's next step.
    Script(Step),
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
pub(super) struct Pending {
    pub(super) number: u64,
    pub(super) hard_state: Option<HardState>,
    pub(super) snapshot: Option<Snapshot>,
    pub(super) compaction: Option<Snapshot>,
    pub(super) entries: Vec<Entry>,
    pub(super) persisted_messages: Vec<Message>,
    pub(super) committed_entries: Vec<Entry>,
}

/// A proposal a client made through a node, waiting for that node to apply its index.
pub(super) struct Attempt {
    pub(super) client: usize,
    pub(super) tag: ClientTag,
    pub(super) proposal: ProposalId,
}

/// One node: the core (None while crashed), its application, and its storage.
pub(super) struct SimNode {
    pub(super) id: NodeId,
    pub(super) raft: Option<RaftNode>,
    pub(super) app: StateMachine,
    /// What survives a crash: the simulator's own model of it.
    pub(super) durable: PersistedState,
    /// The SDK's in-memory store, fed the same batches as the runtime feeds it; a restart
    /// boots from what it returns, after checking it against the model.
    pub(super) store: MemoryStorage,
    /// What the core has asked to persist so far: its own view of its log.
    pub(super) volatile: PersistedState,
    pub(super) pending: VecDeque<Pending>,
    pub(super) last_durable_ms: u64,
    pub(super) incarnation: u32,
    pub(super) tick_ms: u64,
    pub(super) fitness: Fitness,
    pub(super) last_ready_number: u64,
    pub(super) last_commit: Index,
    pub(super) leader_term: Option<Term>,
    pub(super) last_role: Option<Role>,
    pub(super) attempts: BTreeMap<Index, Vec<Attempt>>,
    /// An application snapshot taken earlier, to compact at an index below the applied one.
    pub(super) checkpoint: Option<(Index, Vec<u8>)>,
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
    pub in_flight_max: u64,
    /// Detector scenario: each seed's crash failover (crash to a later term's leader), ms.
    pub failovers_lan_ms: Vec<u64>,
    pub failovers_internet_ms: Vec<u64>,
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
        self.in_flight_max = self.in_flight_max.max(other.in_flight_max);
        self.failovers_lan_ms.extend(&other.failovers_lan_ms);
        self.failovers_internet_ms
            .extend(&other.failovers_internet_ms);
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "delivered {} lost {} duplicated {} rejected {} crashes {} partitions {} elections {} \
             membership {} transfers {} compactions {} snapshots-installed {} proposals {} acked {} \
             dedup-suppressed {} slowest-liveness {} ms most-in-flight {}",
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
            self.liveness_ms,
            self.in_flight_max
        )?;
        for (link, failovers) in [
            ("LAN", &self.failovers_lan_ms),
            ("Internet", &self.failovers_internet_ms),
        ] {
            if failovers.is_empty() {
                continue;
            }
            let mut sorted = failovers.clone();
            sorted.sort_unstable();
            let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
            write!(
                f,
                " failover-{link} n {} p50 {} p99 {} max {} ms",
                sorted.len(),
                at(0.5),
                at(0.99),
                at(1.0)
            )?;
        }
        Ok(())
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

/// How a seed is run.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Print every event of the run.
    pub trace: bool,
    /// Also check the implementation's own rules (persist before send, commit only in
    /// the current term, durable quorum at commit, one vote per term), not only the
    /// protocol-level invariants. Turning them off measures what the consequences alone
    /// catch.
    pub white_box: bool,
    /// Random chaos, or the failure detector's script.
    pub scenario: Scenario,
    /// Detector scenario: time out on the fixed range instead (Baton before the detector),
    /// to compare.
    pub fixed_election_timeout: bool,
}

/// What a seed runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// Swarm-tested random faults (`profile`, `faults`).
    Chaos,
    /// The failure detector's script (`detector`), with the runtime's election timing.
    Detector,
}

/// Runs one seed to completion.
pub fn run_seed(seed: u64, options: Options) -> SeedReport {
    let mut world = World::new(seed, options);
    let violation = world.run().err();
    if let Some(script) = &world.script {
        if let Some(ms) = script.failover_ms {
            match script.link {
                Link::Lan => world.stats.failovers_lan_ms.push(ms),
                Link::Internet => world.stats.failovers_internet_ms.push(ms),
            }
        }
    }
    SeedReport {
        seed,
        steps: world.step,
        sim_ms: world.now_ms,
        violation,
        stats: world.stats,
    }
}

pub(super) struct World {
    pub(super) seed: u64,
    pub(super) trace: bool,
    pub(super) options: Options,
    pub(super) now_ms: u64,
    pub(super) step: u64,
    queue: BinaryHeap<Scheduled>,
    pub(super) next_order: u64,
    pub(super) profile: Profile,
    pub(super) nodes: Vec<SimNode>,
    pub(super) network: Network,
    pub(super) chaos_rng: ChaCha8Rng,
    pub(super) client_rng: ChaCha8Rng,
    pub(super) persist_rng: ChaCha8Rng,
    pub(super) checker: Checker,
    pub(super) clients: Vec<Client>,
    pub(super) probe_client: usize,
    /// Every acknowledged tag and the result its client was given.
    pub(super) acked: BTreeMap<ClientTag, Vec<u8>>,
    /// Log index at which the liveness probe was acknowledged.
    pub(super) probe_index: Option<Index>,
    /// Messages scheduled for delivery and not yet delivered.
    pub(super) in_flight: u64,
    /// Highest log index at which any client was acknowledged.
    pub(super) acked_index_max: Index,
    pub(super) heal_at_ms: Option<u64>,
    pub(super) stats: Stats,
    /// The detector scenario's script (`None` in chaos runs).
    pub(super) script: Option<Script>,
}

impl World {
    pub(super) fn new(seed: u64, options: Options) -> World {
        let mut profile_rng = ChaCha8Rng::seed_from_u64(derive_seed(seed, STREAM_PROFILE));
        let (profile, script) = match options.scenario {
            Scenario::Chaos => (Profile::draw(&mut profile_rng), None),
            Scenario::Detector => {
                let (profile, link) = Profile::detector(&mut profile_rng);
                (profile, Some(Script::new(link)))
            }
        };
        let mut network =
            Network::new(ChaCha8Rng::seed_from_u64(derive_seed(seed, STREAM_NETWORK)));
        network.weather.latency_ms = script.as_ref().map(|s| s.link.latency_ms());
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
                store: MemoryStorage::with_state(durable.clone()),
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
            trace: options.trace,
            options,
            now_ms: 0,
            step: 0,
            queue: BinaryHeap::new(),
            next_order: 0,
            nodes,
            network,
            chaos_rng,
            client_rng: ChaCha8Rng::seed_from_u64(derive_seed(seed, STREAM_CLIENTS)),
            persist_rng: ChaCha8Rng::seed_from_u64(derive_seed(seed, STREAM_PERSIST)),
            checker: Checker::default(),
            clients,
            probe_client,
            acked: BTreeMap::new(),
            probe_index: None,
            in_flight: 0,
            acked_index_max: 0,
            heal_at_ms: None,
            stats: Stats::default(),
            profile,
            script,
        }
    }

    pub(super) fn emit(&self, line: fmt::Arguments<'_>) {
        // Straight to the process's stderr: libtest's capture only covers print! macros.
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "[{:>6} ms] {line}", self.now_ms);
    }

    pub(super) fn schedule(&mut self, at_ms: u64, event: Event) {
        self.next_order += 1;
        self.queue.push(Scheduled {
            at_ms,
            order: self.next_order,
            event,
        });
    }

    pub(super) fn slot(&self, id: NodeId) -> Option<usize> {
        let slot = usize::try_from(id).ok()?.checked_sub(1)?;
        (slot < self.nodes.len()).then_some(slot)
    }

    pub(super) fn up(&self, id: NodeId) -> bool {
        self.slot(id).is_some_and(|s| self.nodes[s].raft.is_some())
    }

    pub(super) fn all_ids(&self) -> Vec<NodeId> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    pub(super) fn up_ids(&self) -> Vec<NodeId> {
        self.nodes
            .iter()
            .filter(|n| n.raft.is_some())
            .map(|n| n.id)
            .collect()
    }

    // ---------------------------------------------------------------- main loop

    pub(super) fn run(&mut self) -> Result<(), Violation> {
        trace!(self, "seed {} profile {:?}", self.seed, self.profile);
        for id in self.all_ids() {
            self.boot(id)?;
        }
        for client in 0..self.probe_client {
            let at = self.client_rng.random_range(0..=CLIENT_THINK_MS_MAX);
            self.schedule(at, Event::Client(client));
        }
        if self.script.is_some() {
            self.start_script();
        } else {
            self.schedule(0, Event::Chaos);
            self.schedule(FAULT_PHASE_MS, Event::Heal);
        }
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
            self.check_script()?;
            if self.converged() {
                return self.final_oracle();
            }
        }
    }

    pub(super) fn handle(&mut self, event: Event) -> Result<(), Violation> {
        match event {
            Event::Tick(id, incarnation) => self.on_tick(id, incarnation),
            Event::Deliver(msg) => {
                self.in_flight -= 1;
                self.on_deliver(msg)
            }
            Event::Durable(id, incarnation) => self.on_durable(id, incarnation),
            Event::Restart(id, incarnation) => {
                let slot = self.slot(id).unwrap_or(0);
                if self.nodes[slot].raft.is_none() && self.nodes[slot].incarnation == incarnation {
                    self.boot(id)?;
                }
                Ok(())
            }
            Event::Chaos => self.on_chaos(),
            Event::CrashVoter(id, incarnation) => {
                let slot = self.slot(id).unwrap_or(0);
                if self.nodes[slot].incarnation == incarnation && self.heal_at_ms.is_none() {
                    trace!(self, "FAULT node {id} is crashed right after voting");
                    self.crash_for_a_while(id);
                }
                Ok(())
            }
            Event::CrashLeader(id, incarnation) => {
                let slot = self.slot(id).unwrap_or(0);
                let node = &self.nodes[slot];
                let leads = node.raft.as_ref().is_some_and(|r| r.role() == Role::Leader);
                if leads && node.incarnation == incarnation && self.heal_at_ms.is_none() {
                    trace!(self, "FAULT the new leader {id} is crashed");
                    self.crash_for_a_while(id);
                }
                Ok(())
            }
            Event::Client(client) => self.on_client(client),
            Event::Heal => self.on_heal(),
            Event::Script(step) => self.on_script(step),
        }
    }

    // ---------------------------------------------------------------- nodes

    pub(super) fn node_config(&self, id: NodeId, incarnation: u32) -> Config {
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
        if self.script.is_some() {
            // What ships: the runtime's election timing, detector included.
            let shipped = baton::runtime::NodeConfig::default().raft;
            config.election_timeout_ticks_min = shipped.election_timeout_ticks_min;
            config.election_timeout_ticks_max = shipped.election_timeout_ticks_max;
            config.heartbeat_interval_ticks = shipped.heartbeat_interval_ticks;
            config.adaptive_election_timeout =
                shipped.adaptive_election_timeout && !self.options.fixed_election_timeout;
            config.detection_timeout_ticks_floor = shipped.detection_timeout_ticks_floor;
            config.detection_timeout_ticks_ceiling = shipped.detection_timeout_ticks_ceiling;
            config.detection_deviations = shipped.detection_deviations;
        }
        config
    }

    /// Starts (or restarts) a node from its durable state alone.
    pub(super) fn boot(&mut self, id: NodeId) -> Result<(), Violation> {
        let slot = self.slot(id).unwrap_or(0);
        let incarnation = self.nodes[slot].incarnation;
        let config = self.node_config(id, incarnation);
        // A restart reopens the store: only what it returns survives.
        let reopened = MemoryStorage::with_state(self.nodes[slot].store.state().clone());
        let durable = reopened.initial_state().clone();
        if durable != self.nodes[slot].durable {
            return Err(Violation::new(
                "StorageAgreesWithModel",
                format!("node {id}: the in-memory store reopened with a different state than the model's durable one"),
            ));
        }
        self.nodes[slot].store = reopened;
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

    pub(super) fn crash(&mut self, id: NodeId) {
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

    pub(super) fn on_tick(&mut self, id: NodeId, incarnation: u32) -> Result<(), Violation> {
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

    pub(super) fn on_deliver(&mut self, msg: Message) -> Result<(), Violation> {
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
        let msg_term = msg.term;
        let must_adopt_term = adopts_higher_term(&msg.body);
        let result = raft.step(msg);
        let term_after = raft.term();
        let accepted = result.is_ok();
        self.stats.delivered += 1;
        match result {
            Ok(()) => trace!(self, "deliver {from}->{to} {text}"),
            Err(e) => {
                self.stats.rejected_steps += 1;
                trace!(self, "deliver {from}->{to} {text} REJECTED: {e}");
            }
        }
        if self.options.white_box && accepted && must_adopt_term && term_after < msg_term {
            return Err(Violation::new(
                "HigherTermAdopted",
                format!(
                    "node {to} accepted a term-{msg_term} message from {from} but stayed in term {term_after}"
                ),
            ));
        }
        self.drain(to)
    }

    // ---------------------------------------------------------------- Ready handling

    pub(super) fn drain(&mut self, id: NodeId) -> Result<(), Violation> {
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

    pub(super) fn on_ready(
        &mut self,
        slot: usize,
        ready: Ready,
        role: Role,
    ) -> Result<(), Violation> {
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

    pub(super) fn on_durable(&mut self, id: NodeId, incarnation: u32) -> Result<(), Violation> {
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
        self.compact_past_threshold(slot);
        self.drain(id)
    }

    /// Like a real runtime, a node compacts once its log holds enough applied entries
    /// (this also bounds how far behind a follower can be before it needs a snapshot).
    pub(super) fn compact_past_threshold(&mut self, slot: usize) {
        let threshold = self.profile.compact_threshold_entries;
        let node = &mut self.nodes[slot];
        let id = node.id;
        let applied = node.app.state.applied_index;
        if applied < snapshot_index(&node.volatile) + threshold {
            return;
        }
        let data = node.app.snapshot();
        let Some(raft) = node.raft.as_mut() else {
            return;
        };
        let result = raft.compact(applied, data);
        if result.is_ok() {
            self.stats.compactions += 1;
        }
        trace!(
            self,
            "node {id} compacts at {applied} (threshold): {result:?}"
        );
    }

    /// Makes one Ready durable in the node's storage, checking the storage contract.
    pub(super) fn persist(&mut self, slot: usize, pending: &Pending) -> Result<(), Violation> {
        let id = self.nodes[slot].id;
        let contract =
            |detail: String| Violation::new("ReadyContract", format!("node {id}: {detail}"));
        let node = &mut self.nodes[slot];
        let snapshot = newest_snapshot(pending.snapshot.clone(), pending.compaction.clone());
        let batch = PersistBatch {
            hard_state: pending.hard_state,
            snapshot: snapshot.as_ref(),
            entries: &pending.entries,
        };
        node.store.persist(&batch).map_err(|err| {
            Violation::new(
                "StorageContract",
                format!("node {id}: the in-memory store refused a Ready: {err}"),
            )
        })?;
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
            if self.options.white_box
                && hard_state.term == old.term
                && old.vote.is_some()
                && hard_state.vote != old.vote
            {
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

    pub(super) fn restore_app(
        &mut self,
        slot: usize,
        snapshot: &Snapshot,
    ) -> Result<(), Violation> {
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

    pub(super) fn check_restored(
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

    pub(super) fn apply(&mut self, slot: usize, entry: &Entry) -> Result<(), Violation> {
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
    pub(super) fn send(&mut self, msg: Message) -> Result<(), Violation> {
        self.check_outgoing(&msg)?;
        if matches!(
            msg.body,
            MessageBody::RequestVoteResponse {
                pre_vote: false,
                granted: true
            }
        ) {
            self.maybe_doom_voter(msg.from);
        }
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
                self.in_flight += 1;
                self.stats.in_flight_max = self.stats.in_flight_max.max(self.in_flight);
                if self.in_flight > IN_FLIGHT_MESSAGES_MAX {
                    return Err(Violation::new(
                        "BoundedTraffic",
                        format!(
                            "{} messages in flight (limit {IN_FLIGHT_MESSAGES_MAX}): the cluster amplifies traffic",
                            self.in_flight
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Persist-before-send (Figure 2): what a message promises must be durable on its sender.
    pub(super) fn check_outgoing(&self, msg: &Message) -> Result<(), Violation> {
        let Some(slot) = self.slot(msg.from) else {
            return Err(Violation::new(
                "ReadyContract",
                format!("message from unknown node {}", msg.from),
            ));
        };
        if !self.options.white_box {
            return Ok(());
        }
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
            } if *match_index > log::last_index(durable) => {
                return Err(Violation::new(
                    "AckDurableBeforeSend",
                    format!(
                        "node {} acknowledges up to {match_index} but has only {} durable",
                        msg.from,
                        log::last_index(durable)
                    ),
                ));
            }
            MessageBody::InstallSnapshotResponse {
                snapshot_index: index,
                complete: true,
                ..
            } if snapshot_index(durable) < *index => {
                return Err(Violation::new(
                    "AckDurableBeforeSend",
                    format!(
                        "node {} reports snapshot {index} installed, durable snapshot is at {}",
                        msg.from,
                        snapshot_index(durable)
                    ),
                ));
            }
            _ => {}
        }
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

/// §5.1: a node that accepts a message of a later term moves to that term (and so stops
/// leading). Vote requests are exempt: a pre-vote changes no term, and a vote request is
/// ignored while the node hears from a leader (§4.2.3). A granted pre-vote answer carries
/// the term its candidate would campaign in, not the voter's.
fn adopts_higher_term(body: &MessageBody) -> bool {
    !matches!(
        body,
        MessageBody::RequestVote { .. }
            | MessageBody::RequestVoteResponse {
                pre_vote: true,
                granted: true
            }
    )
}
