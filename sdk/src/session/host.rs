//! The session task of one player: sends its inputs to the host and acknowledges them;
//! while this player hosts, runs the tick loop, measures fitness, keeps the voter set
//! healthy and hands the host role to a clearly fitter voter.

use super::fitness::{self, FitnessInputs, HandoffHold, LossMeter};
use super::machine::{lock, CommittedTick, SharedReplica, TICK_REFUSED};
use super::{
    Game, GameMachine, PlayerInput, Request, SessionConfig, SessionEvent, SessionMessage, TickMode,
    TickRecord,
};
use crate::raft::{Fitness, Membership, MembershipChange, NodeId, PeerProgress, Role};
use crate::runtime::wire::{decode, encode};
use crate::runtime::{Node, NodeError, NodeEvent};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::MissedTickBehavior;

/// Inputs of one player a single tick consumes at most; the rest wait for the next tick.
const INPUTS_PER_PLAYER_PER_TICK_MAX: usize = 64;
/// Inputs a player re-sends in one message at most.
const INPUTS_PER_MESSAGE_MAX: usize = 256;
/// A voter this many entries behind the host's log still counts as caught up.
const CAUGHT_UP_LAG_ENTRIES_MAX: u64 = 8;
/// How often a turn-based host checks whether the turn is complete.
const TURN_POLL_INTERVAL: Duration = Duration::from_millis(5);
/// A fitness change smaller than this (in thousandths) is not reported as an event.
const FITNESS_EVENT_STEP: u16 = 25;
/// Longest a graceful leave waits for the handoff and its removal.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(10);
/// Weight of the newest tick in the smoothed tick load.
const TICK_LOAD_SMOOTHING: f64 = 0.2;

/// Results of work the task started in the background.
enum Internal {
    TickProposed {
        tick: u64,
        started: Instant,
        outcome: Result<Vec<u8>, NodeError>,
    },
    HostBarrier(Result<(), NodeError>),
    PolicyApplied {
        what: String,
        outcome: Result<(), NodeError>,
        removed: Option<NodeId>,
    },
}

struct Leaving {
    reply: oneshot::Sender<Result<(), NodeError>>,
    deadline: Instant,
}

pub(crate) struct SessionTask<G: Game> {
    config: SessionConfig,
    node: Node<GameMachine<G>>,
    replica: SharedReplica<G>,
    events: broadcast::Sender<SessionEvent>,
    internal_tx: mpsc::UnboundedSender<Internal>,
    me: NodeId,
    // Player side.
    next_sequence: u64,
    pending_inputs: BTreeMap<u64, Vec<u8>>,
    waiting_submits: VecDeque<(Vec<u8>, oneshot::Sender<u64>)>,
    host: Option<NodeId>,
    membership: Membership,
    game_score: f64,
    fitness: Fitness,
    reported_fitness: Fitness,
    leaving: Option<Leaving>,
    // Host side.
    hosting: bool,
    host_ready: bool,
    inbox: BTreeMap<NodeId, BTreeMap<u64, Vec<u8>>>,
    tick_in_flight: Option<u64>,
    turn_started: Instant,
    tick_load: f64,
    loss: LossMeter,
    policy_busy: bool,
    handoff: HandoffHold,
    absent_since: HashMap<NodeId, Instant>,
}

impl<G: Game> SessionTask<G> {
    pub(crate) fn spawn(
        config: SessionConfig,
        node: Node<GameMachine<G>>,
        replica: SharedReplica<G>,
        committed: mpsc::UnboundedReceiver<CommittedTick>,
        requests: mpsc::Receiver<Request>,
        events: broadcast::Sender<SessionEvent>,
    ) -> tokio::task::JoinHandle<()> {
        let (internal_tx, internal_rx) = mpsc::unbounded_channel();
        let task = SessionTask {
            me: node.id(),
            config,
            node,
            replica,
            events,
            internal_tx,
            next_sequence: 1,
            pending_inputs: BTreeMap::new(),
            waiting_submits: VecDeque::new(),
            host: None,
            membership: Membership::default(),
            game_score: 1.0,
            fitness: Fitness::default(),
            reported_fitness: Fitness::default(),
            leaving: None,
            hosting: false,
            host_ready: false,
            inbox: BTreeMap::new(),
            tick_in_flight: None,
            turn_started: Instant::now(),
            tick_load: 0.0,
            loss: LossMeter::default(),
            policy_busy: false,
            handoff: HandoffHold::default(),
            absent_since: HashMap::new(),
        };
        let span = tracing::info_span!("session", id = %format_args!("{:016x}", task.me));
        tokio::spawn(tracing::Instrument::instrument(
            task.run(committed, requests, internal_rx),
            span,
        ))
    }

    async fn run(
        mut self,
        mut committed: mpsc::UnboundedReceiver<CommittedTick>,
        mut requests: mpsc::Receiver<Request>,
        mut internal: mpsc::UnboundedReceiver<Internal>,
    ) {
        let mut node_events = self.node.events();
        let Some(mut messages) = self.node.take_session_messages() else {
            tracing::error!("session messages already taken; the session cannot run");
            return;
        };
        let tick_period = match self.config.tick_mode {
            TickMode::FixedRate { hz } => Duration::from_secs_f64(1.0 / f64::from(hz.max(1))),
            TickMode::TurnBased { .. } => TURN_POLL_INTERVAL,
        };
        let mut tick_timer = tokio::time::interval(tick_period);
        tick_timer.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let mut policy_timer = tokio::time::interval(self.config.policy_interval);
        policy_timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut resend_timer = tokio::time::interval(self.config.input_retry_interval);
        resend_timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // The node started before this task subscribed: events it sent in between (a
        // founder becomes leader at once) are read from its status instead.
        self.resync().await;
        loop {
            tokio::select! {
                request = requests.recv() => match request {
                    Some(request) => self.on_request(request).await,
                    None => break,
                },
                event = node_events.recv() => match event {
                    Ok(event) => self.on_node_event(event).await,
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "session fell behind the node's events; resynchronising");
                        self.resync().await;
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                message = messages.recv() => match message {
                    Some((from, bytes)) => self.on_message(from, bytes),
                    None => break,
                },
                tick = committed.recv() => match tick {
                    Some(tick) => self.on_committed(tick),
                    None => break,
                },
                Some(internal) = internal.recv() => self.on_internal(internal),
                _ = tick_timer.tick() => self.on_tick_timer(),
                _ = policy_timer.tick() => self.on_policy_timer().await,
                _ = resend_timer.tick() => self.send_pending_inputs().await,
            }
        }
        tracing::debug!("session task ended");
    }

    fn emit(&self, event: SessionEvent) {
        let _ = self.events.send(event);
    }

    // ---- player side --------------------------------------------------------------

    async fn on_request(&mut self, request: Request) {
        match request {
            Request::SubmitInput { data, reply } => {
                self.waiting_submits.push_back((data, reply));
                self.admit_submits();
                self.send_pending_inputs().await;
            }
            Request::SetGameScore(score) => self.game_score = score,
            Request::Leave { reply } => {
                self.leaving = Some(Leaving {
                    reply,
                    deadline: Instant::now() + LEAVE_TIMEOUT,
                });
                self.drive_leave().await;
            }
        }
    }

    fn admit_submits(&mut self) {
        while self.pending_inputs.len() < self.config.inputs_in_flight_max {
            let Some((data, reply)) = self.waiting_submits.pop_front() else {
                break;
            };
            let sequence = self.next_sequence;
            self.next_sequence += 1;
            self.pending_inputs.insert(sequence, data);
            let _ = reply.send(sequence);
        }
    }

    /// Sends every input not yet in a committed tick to the host. Duplicates are harmless:
    /// the host keys them by sequence and the replicated state admits each once.
    async fn send_pending_inputs(&mut self) {
        if self.pending_inputs.is_empty() {
            return;
        }
        let batch: Vec<(u64, Vec<u8>)> = self
            .pending_inputs
            .iter()
            .take(INPUTS_PER_MESSAGE_MAX)
            .map(|(sequence, data)| (*sequence, data.clone()))
            .collect();
        match self.host {
            Some(host) if host == self.me => self.receive_inputs(self.me, batch),
            Some(host) => match encode(&SessionMessage::Inputs(batch)) {
                Ok(bytes) => {
                    let _ = self.node.send_session_message(host, bytes).await;
                }
                Err(err) => tracing::error!(%err, "cannot encode inputs"),
            },
            None => {}
        }
    }

    fn on_committed(&mut self, committed: CommittedTick) {
        for (player, sequence) in &committed.inputs {
            if *player == self.me && self.pending_inputs.remove(sequence).is_some() {
                self.emit(SessionEvent::InputCommitted {
                    sequence: *sequence,
                    tick: committed.tick,
                });
            }
            if let Some(queue) = self.inbox.get_mut(player) {
                queue.retain(|queued, _| queued > sequence);
            }
        }
        self.admit_submits();
        self.emit(SessionEvent::TickCommitted {
            tick: committed.tick,
        });
    }

    async fn on_node_event(&mut self, event: NodeEvent) {
        match event {
            NodeEvent::RoleChanged { role, leader, .. } => self.on_role(role, leader).await,
            NodeEvent::MembershipChanged(membership) => self.on_membership(membership),
            NodeEvent::Joined => {}
            NodeEvent::Fatal(reason) => self.emit(SessionEvent::Error(reason)),
        }
    }

    async fn resync(&mut self) {
        if let Ok(status) = self.node.status().await {
            self.on_membership(status.membership.clone());
            self.on_role(status.role, status.leader).await;
        }
    }

    async fn on_role(&mut self, role: Role, leader: Option<NodeId>) {
        if leader != self.host {
            self.host = leader;
            self.emit(SessionEvent::HostChanged { host: leader });
            // The new host has not seen our uncommitted inputs: send them now, not on the
            // next retry, so a migration costs one round trip.
            self.send_pending_inputs().await;
        }
        if role == Role::Leader && !self.hosting {
            self.hosting = true;
            self.host_ready = false;
            self.handoff = HandoffHold::default();
            self.absent_since.clear();
            // Start ticking only once this replica holds every committed tick: a
            // linearizable read is exactly that barrier.
            let node = self.node.clone();
            let internal = self.internal_tx.clone();
            tokio::spawn(async move {
                let outcome = node.read(|_| ()).await;
                let _ = internal.send(Internal::HostBarrier(outcome));
            });
        } else if role != Role::Leader && self.hosting {
            self.hosting = false;
            self.host_ready = false;
            self.inbox.clear();
            self.emit(SessionEvent::LostHost);
        }
    }

    fn on_membership(&mut self, membership: Membership) {
        let before = std::mem::replace(&mut self.membership, membership);
        let now = &self.membership;
        let members = |m: &Membership| -> Vec<NodeId> {
            m.voters.iter().chain(m.learners.iter()).copied().collect()
        };
        let (old, new) = (members(&before), members(now));
        let joined: Vec<NodeId> = new.iter().filter(|id| !old.contains(id)).copied().collect();
        let left: Vec<NodeId> = old.iter().filter(|id| !new.contains(id)).copied().collect();
        let promoted = now.voters.contains(&self.me) && before.learners.contains(&self.me);
        let demoted = now.learners.contains(&self.me) && before.voters.contains(&self.me);
        let removed = !new.contains(&self.me) && old.contains(&self.me);
        for id in joined {
            self.emit(SessionEvent::PlayerJoined(id));
        }
        for id in left {
            self.inbox.remove(&id);
            self.emit(SessionEvent::PlayerLeft(id));
        }
        if promoted {
            self.emit(SessionEvent::Promoted);
        }
        if demoted {
            self.emit(SessionEvent::Demoted);
        }
        if removed {
            if let Some(leaving) = self.leaving.take() {
                let _ = leaving.reply.send(Ok(()));
            }
        }
    }

    fn on_message(&mut self, from: NodeId, bytes: Vec<u8>) {
        match decode::<SessionMessage>(&bytes) {
            Some(SessionMessage::Inputs(inputs)) => self.receive_inputs(from, inputs),
            Some(SessionMessage::Leave) => self.on_leave_request(from),
            Some(SessionMessage::Removed) => {
                if self.host == Some(from) {
                    if let Some(leaving) = self.leaving.take() {
                        let _ = leaving.reply.send(Ok(()));
                    }
                }
            }
            None => {
                tracing::warn!(peer = %format_args!("{from:016x}"), "malformed session message dropped")
            }
        }
    }

    // ---- host side ----------------------------------------------------------------

    fn receive_inputs(&mut self, from: NodeId, inputs: Vec<(u64, Vec<u8>)>) {
        if !self.hosting {
            return;
        }
        let last = lock(&self.replica)
            .progress
            .last_input
            .get(&from)
            .copied()
            .unwrap_or(0);
        let queue = self.inbox.entry(from).or_default();
        for (sequence, data) in inputs {
            if sequence > last && queue.len() < self.config.inputs_in_flight_max {
                queue.entry(sequence).or_insert(data);
            }
        }
    }

    fn on_tick_timer(&mut self) {
        if !self.hosting || !self.host_ready {
            return;
        }
        if let Some(tick) = self.tick_in_flight {
            if matches!(self.config.tick_mode, TickMode::FixedRate { .. }) {
                self.emit(SessionEvent::TickOverrun { tick: tick + 1 });
            }
            return;
        }
        let (last_tick, inputs, complete_turn) = self.collect_inputs();
        if let TickMode::TurnBased { turn_timeout } = self.config.tick_mode {
            if !complete_turn && self.turn_started.elapsed() < turn_timeout {
                return;
            }
        }
        self.start_tick(last_tick + 1, inputs);
    }

    /// The next inputs of each player, contiguous from the last one applied; and whether
    /// every member has one waiting (a complete turn).
    fn collect_inputs(&self) -> (u64, Vec<PlayerInput>, bool) {
        let replica = lock(&self.replica);
        let mut inputs = Vec::new();
        let mut players_with_input = 0;
        for (player, queue) in &self.inbox {
            let first = replica
                .progress
                .last_input
                .get(player)
                .copied()
                .unwrap_or(0)
                + 1;
            let before = inputs.len();
            let contiguous = (first..)
                .zip(queue.range(first..))
                .take_while(|(expected, (sequence, _))| *expected == **sequence)
                .take(INPUTS_PER_PLAYER_PER_TICK_MAX);
            for (_, (sequence, data)) in contiguous {
                inputs.push(PlayerInput {
                    player: *player,
                    sequence: *sequence,
                    data: data.clone(),
                });
            }
            if inputs.len() > before {
                players_with_input += 1;
            }
        }
        let members = self.membership.voters.len() + self.membership.learners.len();
        (
            replica.progress.last_tick,
            inputs,
            members > 0 && players_with_input >= members,
        )
    }

    fn start_tick(&mut self, tick: u64, inputs: Vec<PlayerInput>) {
        let payload = lock(&self.replica).game.tick(tick, &inputs);
        let record = TickRecord {
            tick,
            inputs,
            payload,
        };
        let bytes = match encode(&record) {
            Ok(bytes) => bytes,
            Err(err) => {
                self.emit(SessionEvent::Error(format!(
                    "cannot encode tick {tick}: {err}"
                )));
                return;
            }
        };
        self.tick_in_flight = Some(tick);
        self.turn_started = Instant::now();
        let node = self.node.clone();
        let internal = self.internal_tx.clone();
        let started = Instant::now();
        tokio::spawn(async move {
            let outcome = node.propose(bytes).await;
            let _ = internal.send(Internal::TickProposed {
                tick,
                started,
                outcome,
            });
        });
    }

    fn on_internal(&mut self, internal: Internal) {
        match internal {
            Internal::TickProposed {
                tick,
                started,
                outcome,
            } => {
                if self.tick_in_flight == Some(tick) {
                    self.tick_in_flight = None;
                }
                match outcome {
                    Ok(result) if result == TICK_REFUSED => {
                        tracing::debug!(tick, "tick refused: another record holds its number");
                    }
                    Ok(_) => {
                        let budget = self.tick_budget();
                        let load = started.elapsed().as_secs_f64() / budget.as_secs_f64();
                        self.tick_load = (1.0 - TICK_LOAD_SMOOTHING) * self.tick_load
                            + TICK_LOAD_SMOOTHING * load;
                    }
                    Err(err) => tracing::debug!(tick, %err, "tick not committed"),
                }
            }
            Internal::HostBarrier(outcome) => match outcome {
                Ok(()) if self.hosting => {
                    self.host_ready = true;
                    self.turn_started = Instant::now();
                    let next_tick = lock(&self.replica).progress.last_tick + 1;
                    tracing::info!(next_tick, "hosting");
                    self.emit(SessionEvent::BecameHost { next_tick });
                }
                Ok(()) => {}
                Err(err) => {
                    tracing::warn!(%err, "host barrier failed; stepping aside from hosting until re-elected");
                    self.hosting = false;
                }
            },
            Internal::PolicyApplied {
                what,
                outcome,
                removed,
            } => {
                self.policy_busy = false;
                match outcome {
                    Ok(()) => {
                        tracing::info!(what, "host policy applied");
                        if let Some(player) = removed {
                            self.tell_removed(player);
                        }
                    }
                    Err(err) => tracing::info!(what, %err, "host policy did not apply"),
                }
            }
        }
    }

    fn tick_budget(&self) -> Duration {
        match self.config.tick_mode {
            TickMode::FixedRate { hz } => Duration::from_secs_f64(1.0 / f64::from(hz.max(1))),
            TickMode::TurnBased { turn_timeout } => turn_timeout,
        }
    }

    fn on_leave_request(&mut self, from: NodeId) {
        if !self.hosting {
            return;
        }
        let member =
            self.membership.voters.contains(&from) || self.membership.learners.contains(&from);
        if !member {
            self.tell_removed(from);
            return;
        }
        if !self.policy_busy {
            let what = format!("remove leaving player {from:016x}");
            self.spawn_policy(what, MembershipChange::RemoveNode(from), Some(from));
        }
    }

    fn tell_removed(&self, player: NodeId) {
        if let Ok(bytes) = encode(&SessionMessage::Removed) {
            let node = self.node.clone();
            tokio::spawn(async move {
                let _ = node.send_session_message(player, bytes).await;
            });
        }
    }

    fn run_policy(&mut self, what: String, change: MembershipChange) {
        self.spawn_policy(what, change, None);
    }

    fn spawn_policy(&mut self, what: String, change: MembershipChange, removed: Option<NodeId>) {
        self.policy_busy = true;
        let node = self.node.clone();
        let internal = self.internal_tx.clone();
        tokio::spawn(async move {
            let outcome = node.change_membership(change, None).await;
            let _ = internal.send(Internal::PolicyApplied {
                what,
                outcome,
                removed,
            });
        });
    }

    fn run_transfer(&mut self, target: NodeId, why: &str) {
        self.policy_busy = true;
        let node = self.node.clone();
        let internal = self.internal_tx.clone();
        let what = format!("hand the host role to {target:016x} ({why})");
        tokio::spawn(async move {
            let outcome = node.transfer_leadership(target).await;
            let _ = internal.send(Internal::PolicyApplied {
                what,
                outcome,
                removed: None,
            });
        });
    }

    // ---- fitness and policies -----------------------------------------------------

    async fn on_policy_timer(&mut self) {
        let Ok(status) = self.node.status().await else {
            return;
        };
        let voter_links: Vec<_> = status
            .peer_links
            .iter()
            .filter(|(peer, _)| status.membership.voters.contains(peer))
            .copied()
            .collect();
        let loss = self.loss.observe(voter_links.iter().copied());
        let inputs = FitnessInputs {
            median_rtt: fitness::median(voter_links.iter().map(|(_, link)| link.rtt).collect()),
            loss,
            tick_load: if self.hosting { self.tick_load } else { 0.0 },
            game_score: self.game_score,
        };
        let fitness = fitness::combine(&inputs, &self.config.fitness_weights);
        tracing::debug!(
            ?inputs,
            fitness = fitness.0,
            hosting = self.hosting,
            "fitness measured"
        );
        if fitness != self.fitness {
            self.fitness = fitness;
            let _ = self.node.set_fitness(fitness).await;
        }
        if fitness.0.abs_diff(self.reported_fitness.0) >= FITNESS_EVENT_STEP {
            self.reported_fitness = fitness;
            self.emit(SessionEvent::FitnessChanged(fitness));
        }
        if self.leaving.is_some() {
            self.drive_leave().await;
            return;
        }
        if self.hosting && self.host_ready && !self.policy_busy {
            self.host_policies(&status.progress, status.last_index);
        }
    }

    fn caught_up(peer: &PeerProgress, last_index: u64) -> bool {
        peer.recently_active && peer.match_index + CAUGHT_UP_LAG_ENTRIES_MAX >= last_index
    }

    /// One policy step at a time (membership changes go one by one anyway): replace absent
    /// voters, fill the voter set from the fittest learners, swap a weak voter for a much
    /// fitter learner, and hand over to a clearly fitter voter.
    fn host_policies(&mut self, progress: &[PeerProgress], last_index: u64) {
        let now = Instant::now();
        let voters = self.membership.voters.len();
        let best_learner = progress
            .iter()
            .filter(|peer| !peer.is_voter && Self::caught_up(peer, last_index))
            .max_by_key(|peer| (peer.fitness, peer.id))
            .cloned();

        for peer in progress.iter().filter(|peer| peer.is_voter) {
            if peer.recently_active {
                self.absent_since.remove(&peer.id);
            } else {
                self.absent_since.entry(peer.id).or_insert(now);
            }
        }
        let absent = self
            .absent_since
            .iter()
            .find(|(_, since)| now.duration_since(**since) >= self.config.voter_absence_limit)
            .map(|(id, _)| *id);
        if let (Some(absent), Some(_)) = (absent, &best_learner) {
            self.absent_since.remove(&absent);
            self.run_policy(
                format!("demote absent voter {absent:016x}"),
                MembershipChange::DemoteVoter(absent),
            );
            return;
        }
        if voters < self.config.max_voters {
            if let Some(learner) = &best_learner {
                self.run_policy(
                    format!("promote learner {:016x}", learner.id),
                    MembershipChange::PromoteLearner(learner.id),
                );
                return;
            }
        }
        let weakest_voter = progress
            .iter()
            .filter(|peer| peer.is_voter)
            .min_by_key(|peer| (peer.fitness, peer.id))
            .cloned();
        if let (Some(learner), Some(voter)) = (&best_learner, &weakest_voter) {
            if voters >= self.config.max_voters
                && learner.fitness.0 > voter.fitness.0 + 2 * self.config.handoff_margin
            {
                self.run_policy(
                    format!(
                        "demote weak voter {:016x} for learner {:016x}",
                        voter.id, learner.id
                    ),
                    MembershipChange::DemoteVoter(voter.id),
                );
                return;
            }
        }
        self.consider_handoff(progress, last_index, now);
    }

    fn consider_handoff(&mut self, progress: &[PeerProgress], last_index: u64, now: Instant) {
        let best_voter = progress
            .iter()
            .filter(|peer| peer.is_voter && Self::caught_up(peer, last_index))
            .max_by_key(|peer| (peer.fitness, peer.id))
            .map(|peer| (peer.id, peer.fitness));
        let margin = self.config.handoff_margin;
        let hold = self.config.handoff_hold;
        if let Some(target) = self
            .handoff
            .observe(best_voter, self.fitness, margin, hold, now)
        {
            self.run_transfer(target, "fitter voter");
        }
    }

    /// One step of a graceful leave: a host hands over first; a non-host asks the host
    /// to remove it. Repeated from the policy timer until removed or out of time.
    async fn drive_leave(&mut self) {
        let Some(leaving) = &self.leaving else { return };
        if Instant::now() >= leaving.deadline {
            if let Some(leaving) = self.leaving.take() {
                let _ = leaving.reply.send(Err(NodeError::Timeout(LEAVE_TIMEOUT)));
            }
            return;
        }
        let Ok(status) = self.node.status().await else {
            return;
        };
        let membership = &status.membership;
        if !membership.voters.contains(&self.me) && !membership.learners.contains(&self.me) {
            // The configuration that removes us takes effect on append (§4.1); the leader
            // stops replicating to us then, so waiting to apply it could wait forever.
            if let Some(leaving) = self.leaving.take() {
                let _ = leaving.reply.send(Ok(()));
            }
            return;
        }
        if self.hosting {
            if self.policy_busy {
                return;
            }
            let target = status
                .progress
                .iter()
                .filter(|peer| peer.is_voter && peer.recently_active)
                .max_by_key(|peer| (peer.match_index, peer.fitness, peer.id))
                .map(|peer| peer.id);
            match target {
                Some(target) => self.run_transfer(target, "host leaving"),
                None => {
                    // No other voter can take over: removing ourselves would end the
                    // session, so the leave completes as a plain stop.
                    if let Some(leaving) = self.leaving.take() {
                        let _ = leaving.reply.send(Ok(()));
                    }
                }
            }
        } else if let Some(host) = self.host {
            if let Ok(bytes) = encode(&SessionMessage::Leave) {
                let _ = self.node.send_session_message(host, bytes).await;
            }
        }
    }
}
