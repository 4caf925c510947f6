//! A small deterministic in-memory network of nodes for scenario tests: every message is
//! queued, and the test decides what is delivered, dropped, or cut off.

#![allow(dead_code)]

use baton_core::{
    Config, Entry, EntryPayload, HardState, Index, Membership, Message, MessageBody, NodeId,
    PersistedState, RaftNode, ReadState, Ready, Role, Snapshot, Term,
};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Bound on delivery rounds of one `deliver_all`, so a livelock fails instead of hanging.
pub const DELIVERY_ROUNDS_MAX: usize = 10_000;

/// Durable state of one node, as a storage would hold it.
#[derive(Clone, Debug, Default)]
pub struct MemStorage {
    pub hard_state: HardState,
    pub snapshot: Option<Snapshot>,
    pub entries: Vec<Entry>,
}

impl MemStorage {
    pub fn persist(&mut self, ready: &Ready) {
        if let Some(snapshot) = &ready.snapshot {
            self.snapshot = Some(snapshot.clone());
            self.entries.clear();
        }
        if let Some(snapshot) = &ready.compaction {
            self.entries.retain(|e| e.index > snapshot.meta.last_index);
            self.snapshot = Some(snapshot.clone());
        }
        if let Some(first) = ready.entries.first() {
            self.entries.retain(|e| e.index < first.index);
            self.entries.extend(ready.entries.iter().cloned());
        }
        if let Some(hard_state) = ready.hard_state {
            self.hard_state = hard_state;
        }
    }

    pub fn persisted_state(&self) -> PersistedState {
        PersistedState {
            hard_state: self.hard_state,
            snapshot: self.snapshot.clone(),
            entries: self.entries.clone(),
        }
    }
}

/// A node and what its driver did with its Readies.
pub struct Node {
    pub raft: RaftNode,
    pub config: Config,
    pub storage: MemStorage,
    /// The application state: applied entries (index, term, payload) since the snapshot.
    pub applied: Vec<Entry>,
    pub restored_from: Option<Index>,
    pub read_states: Vec<ReadState>,
    pub failed_reads: Vec<u64>,
    /// Readies handed out but not yet durable (fsync stall).
    pub unpersisted: VecDeque<Ready>,
    pub stalled: bool,
    pub up: bool,
}

impl Node {
    pub fn applied_index(&self) -> Index {
        self.applied
            .last()
            .map(|e| e.index)
            .or(self.restored_from)
            .unwrap_or(0)
    }

    pub fn applied_commands(&self) -> Vec<Vec<u8>> {
        self.applied
            .iter()
            .filter_map(|e| match &e.payload {
                EntryPayload::Command { data, .. } => Some(data.clone()),
                _ => None,
            })
            .collect()
    }
}

pub struct Network {
    pub nodes: BTreeMap<NodeId, Node>,
    pub queue: VecDeque<Message>,
    /// Directed links that drop everything.
    pub cut: BTreeSet<(NodeId, NodeId)>,
    /// Every entry applied anywhere, by index: state machine safety is checked against it.
    pub applied_anywhere: BTreeMap<Index, (Term, EntryPayload)>,
    pub delivered: u64,
    /// Messages delivered, by kind.
    pub delivered_kinds: BTreeMap<&'static str, usize>,
    /// Messages delivered, by receiver and kind.
    pub delivered_to: BTreeMap<(NodeId, &'static str), usize>,
}

pub fn kind(body: &MessageBody) -> &'static str {
    match body {
        MessageBody::RequestVote { .. } => "RequestVote",
        MessageBody::RequestVoteResponse { .. } => "RequestVoteResponse",
        MessageBody::AppendEntries { .. } => "AppendEntries",
        MessageBody::AppendEntriesResponse { .. } => "AppendEntriesResponse",
        MessageBody::Heartbeat { .. } => "Heartbeat",
        MessageBody::HeartbeatResponse { .. } => "HeartbeatResponse",
        MessageBody::InstallSnapshot { .. } => "InstallSnapshot",
        MessageBody::InstallSnapshotResponse { .. } => "InstallSnapshotResponse",
        MessageBody::TimeoutNow => "TimeoutNow",
        MessageBody::ReadIndexRequest { .. } => "ReadIndexRequest",
        MessageBody::ReadIndexResponse { .. } => "ReadIndexResponse",
    }
}

pub fn config(id: NodeId) -> Config {
    let mut config = Config::new(id, 0xBA70 + id);
    config.election_timeout_ticks_min = 10;
    config.election_timeout_ticks_max = 20;
    config
}

pub fn membership(voters: &[NodeId], learners: &[NodeId]) -> Membership {
    Membership {
        voters: voters.iter().copied().collect(),
        learners: learners.iter().copied().collect(),
    }
}

impl Network {
    /// A new cluster of founding members, every node built with `configure`.
    pub fn with_config(
        voters: &[NodeId],
        learners: &[NodeId],
        configure: impl Fn(&mut Config),
    ) -> Network {
        let mut network = Network {
            nodes: BTreeMap::new(),
            queue: VecDeque::new(),
            cut: BTreeSet::new(),
            applied_anywhere: BTreeMap::new(),
            delivered: 0,
            delivered_kinds: BTreeMap::new(),
            delivered_to: BTreeMap::new(),
        };
        let boot = PersistedState::bootstrap(membership(voters, learners));
        for &id in voters.iter().chain(learners) {
            let mut cfg = config(id);
            configure(&mut cfg);
            network.add_node_with(cfg, boot.clone());
        }
        network
    }

    pub fn new(voters: &[NodeId]) -> Network {
        Network::with_config(voters, &[], |_| {})
    }

    /// Adds a node started from `persisted` (a joining node uses the default).
    pub fn add_node_with(&mut self, config: Config, persisted: PersistedState) {
        let storage = MemStorage {
            hard_state: persisted.hard_state,
            snapshot: persisted.snapshot.clone(),
            entries: persisted.entries.clone(),
        };
        let raft = RaftNode::new(config.clone(), persisted).unwrap();
        let restored_from = storage.snapshot.as_ref().map(|s| s.meta.last_index);
        let node = Node {
            raft,
            config,
            storage,
            applied: Vec::new(),
            restored_from,
            read_states: Vec::new(),
            failed_reads: Vec::new(),
            unpersisted: VecDeque::new(),
            stalled: false,
            up: true,
        };
        self.nodes.insert(node.config.id, node);
    }

    pub fn add_joining_node(&mut self, id: NodeId) {
        self.add_node_with(config(id), PersistedState::default());
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[&id]
    }

    pub fn raft(&mut self, id: NodeId) -> &mut RaftNode {
        &mut self.nodes.get_mut(&id).unwrap().raft
    }

    /// Drains every Ready of `id` like a runtime would (unless its storage is stalled).
    pub fn process(&mut self, id: NodeId) {
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        if !node.up {
            return;
        }
        for _ in 0..DELIVERY_ROUNDS_MAX {
            if !node.raft.has_ready() {
                break;
            }
            let ready = node.raft.ready();
            self.queue.extend(ready.messages.iter().cloned());
            node.unpersisted.push_back(ready);
            if !node.stalled {
                flush_storage(node, &mut self.queue, &mut self.applied_anywhere);
            }
        }
    }

    pub fn process_all(&mut self) {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            self.process(id);
        }
    }

    /// Ends an fsync stall: everything handed out becomes durable.
    pub fn unstall(&mut self, id: NodeId) {
        let node = self.nodes.get_mut(&id).unwrap();
        node.stalled = false;
        flush_storage(node, &mut self.queue, &mut self.applied_anywhere);
        self.process(id);
    }

    pub fn link_ok(&self, msg: &Message) -> bool {
        !self.cut.contains(&(msg.from, msg.to)) && self.nodes.get(&msg.to).is_some_and(|n| n.up)
    }

    /// Delivers one queued message (or drops it on a cut link).
    pub fn deliver_one(&mut self) -> bool {
        let Some(msg) = self.queue.pop_front() else {
            return false;
        };
        if self.link_ok(&msg) {
            let to = msg.to;
            self.delivered += 1;
            *self.delivered_kinds.entry(kind(&msg.body)).or_default() += 1;
            *self.delivered_to.entry((to, kind(&msg.body))).or_default() += 1;
            match self.raft(to).step(msg) {
                // Late answers from a node removed from the configuration.
                Ok(()) | Err(baton_core::StepError::UnknownPeer(_)) => {}
                Err(other) => panic!("an honest message was refused: {other}"),
            }
            self.process(to);
        }
        true
    }

    /// Delivers until nothing is in flight.
    pub fn deliver_all(&mut self) {
        self.process_all();
        for _ in 0..DELIVERY_ROUNDS_MAX * 10 {
            if !self.deliver_one() {
                return;
            }
        }
        panic!("messages kept flowing: livelock");
    }

    /// Drops every message in flight.
    pub fn drop_all(&mut self) {
        self.queue.clear();
    }

    pub fn tick(&mut self, id: NodeId) {
        if self.nodes[&id].up {
            self.raft(id).tick();
            self.process(id);
        }
    }

    pub fn tick_all(&mut self) {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            self.tick(id);
        }
    }

    /// `ticks` rounds of: tick everyone, deliver everything.
    pub fn run(&mut self, ticks: usize) {
        for _ in 0..ticks {
            self.tick_all();
            self.deliver_all();
        }
    }

    /// Runs until `predicate` holds, at most `ticks_max` ticks; returns the ticks taken.
    pub fn run_until(
        &mut self,
        ticks_max: usize,
        predicate: impl Fn(&Network) -> bool,
    ) -> Option<usize> {
        for elapsed in 0..ticks_max {
            if predicate(self) {
                return Some(elapsed);
            }
            self.tick_all();
            self.deliver_all();
        }
        predicate(self).then_some(ticks_max)
    }

    /// Isolates `id` both ways.
    pub fn isolate(&mut self, id: NodeId) {
        let ids: Vec<NodeId> = self.nodes.keys().copied().filter(|&o| o != id).collect();
        for other in ids {
            self.cut.insert((id, other));
            self.cut.insert((other, id));
        }
    }

    pub fn cut_link(&mut self, a: NodeId, b: NodeId) {
        self.cut.insert((a, b));
        self.cut.insert((b, a));
    }

    pub fn heal(&mut self) {
        self.cut.clear();
    }

    /// The process dies: unpersisted Readies are lost, messages to it are dropped.
    pub fn crash(&mut self, id: NodeId) {
        let node = self.nodes.get_mut(&id).unwrap();
        node.up = false;
        node.unpersisted.clear();
    }

    /// Restarts a crashed node from its durable state.
    pub fn restart(&mut self, id: NodeId) {
        let config = self.nodes[&id].config.clone();
        self.restart_with(id, config);
    }

    /// Restarts a node from its durable state with another configuration.
    pub fn restart_with(&mut self, id: NodeId, config: Config) {
        let node = self.nodes.get_mut(&id).unwrap();
        node.unpersisted.clear();
        node.config = config;
        let persisted = node.storage.persisted_state();
        node.raft = RaftNode::new(node.config.clone(), persisted).unwrap();
        node.applied.clear();
        node.restored_from = node.storage.snapshot.as_ref().map(|s| s.meta.last_index);
        node.stalled = false;
        node.up = true;
        self.process(id);
    }

    /// Elects `id` by campaigning and delivering everything.
    pub fn elect(&mut self, id: NodeId) {
        self.raft(id).campaign().unwrap();
        self.process(id);
        self.deliver_all();
        assert_eq!(
            self.raft(id).role(),
            Role::Leader,
            "node {id} should have been elected"
        );
        // Commit the leader's no-op everywhere.
        self.deliver_all();
    }

    pub fn leaders(&self) -> Vec<NodeId> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.up && n.raft.role() == Role::Leader)
            .map(|(&id, _)| id)
            .collect()
    }

    pub fn leader(&self) -> Option<NodeId> {
        let leaders = self.leaders();
        // Several nodes may believe they lead (different terms); the highest term wins.
        leaders
            .into_iter()
            .max_by_key(|id| self.nodes[id].raft.term())
    }

    pub fn propose(&mut self, leader: NodeId, data: &[u8]) -> baton_core::ProposalId {
        let id = self.raft(leader).propose(data.to_vec(), None).unwrap();
        self.process(leader);
        id
    }
}

fn flush_storage(
    node: &mut Node,
    queue: &mut VecDeque<Message>,
    applied_anywhere: &mut BTreeMap<Index, (Term, EntryPayload)>,
) {
    while let Some(ready) = node.unpersisted.pop_front() {
        node.storage.persist(&ready);
        queue.extend(ready.persisted_messages.iter().cloned());
        node.raft.advance(ready.number);
        if let Some(snapshot) = &ready.snapshot {
            node.applied.clear();
            node.restored_from = Some(snapshot.meta.last_index);
        }
        for entry in &ready.committed_entries {
            assert_eq!(
                entry.index,
                node.applied_index() + 1,
                "node {} applies in order",
                node.config.id
            );
            let seen = applied_anywhere
                .entry(entry.index)
                .or_insert((entry.term, entry.payload.clone()));
            assert_eq!(
                *seen,
                (entry.term, entry.payload.clone()),
                "state machine safety: two different entries applied at index {}",
                entry.index
            );
            node.applied.push(entry.clone());
        }
        node.read_states.extend(ready.read_states.iter().copied());
        node.failed_reads.extend(ready.failed_reads.iter().copied());
    }
}
