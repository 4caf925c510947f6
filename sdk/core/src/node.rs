//! The Raft node: inputs (`tick`, `step`, `propose`, ...) and outputs (`ready`, `advance`).

use crate::config::{Config, ConfigError};
use crate::error::{CompactError, ProposeError, StepError};
use crate::message::Message;
use crate::ready::Ready;
use crate::status::{MembershipChange, PeerProgress, ProposalId, Role, Status};
use crate::types::{ClientTag, Fitness, Index, Membership, NodeId, PersistedState, Term};

/// A sans-IO Raft node.
pub struct RaftNode {
    config: Config,
}

impl RaftNode {
    /// Rebuilds a node from what storage holds.
    pub fn new(config: Config, persisted: PersistedState) -> Result<RaftNode, ConfigError> {
        let _ = persisted;
        config.validate()?;
        Ok(RaftNode { config })
    }
    /// One logical clock tick.
    pub fn tick(&mut self) {
        todo!()
    }
    /// A message from a peer.
    pub fn step(&mut self, msg: Message) -> Result<(), StepError> {
        let _ = msg;
        todo!()
    }
    /// Proposes application data.
    pub fn propose(
        &mut self,
        data: Vec<u8>,
        tag: Option<ClientTag>,
    ) -> Result<ProposalId, ProposeError> {
        let _ = (data, tag);
        todo!()
    }
    /// Proposes a single-server membership change.
    pub fn propose_membership(
        &mut self,
        change: MembershipChange,
    ) -> Result<ProposalId, ProposeError> {
        let _ = change;
        todo!()
    }
    /// Starts a leadership transfer.
    pub fn transfer_leadership(&mut self, target: NodeId) -> Result<(), ProposeError> {
        let _ = target;
        todo!()
    }
    /// Starts a linearizable read.
    pub fn read_index(&mut self, request_id: u64) -> Result<(), ProposeError> {
        let _ = request_id;
        todo!()
    }
    /// Updates this node's fitness.
    pub fn set_fitness(&mut self, fitness: Fitness) {
        let _ = fitness;
        todo!()
    }
    /// Starts an election now.
    pub fn campaign(&mut self) -> Result<(), ProposeError> {
        todo!()
    }
    /// Snapshot at `applied_index` with the application state `data`.
    pub fn compact(&mut self, applied_index: Index, data: Vec<u8>) -> Result<(), CompactError> {
        let _ = (applied_index, data);
        todo!()
    }
    /// Whether `ready()` has something.
    pub fn has_ready(&self) -> bool {
        todo!()
    }
    /// Takes everything pending.
    #[must_use]
    pub fn ready(&mut self) -> Ready {
        todo!()
    }
    /// Ready `ready_number` and every earlier one are durable.
    pub fn advance(&mut self, ready_number: u64) {
        let _ = ready_number;
        todo!()
    }
    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.config.id
    }
    /// Current role.
    pub fn role(&self) -> Role {
        todo!()
    }
    /// Current term.
    pub fn term(&self) -> Term {
        todo!()
    }
    /// Known leader.
    pub fn leader_id(&self) -> Option<NodeId> {
        todo!()
    }
    /// Commit index.
    pub fn commit_index(&self) -> Index {
        todo!()
    }
    /// Last log index.
    pub fn last_index(&self) -> Index {
        todo!()
    }
    /// Configuration in effect.
    pub fn membership(&self) -> &Membership {
        todo!()
    }
    /// This node's fitness.
    pub fn fitness(&self) -> Fitness {
        todo!()
    }
    /// Leader's view of the other members.
    pub fn progress(&self) -> Vec<PeerProgress> {
        todo!()
    }
    /// Status snapshot.
    pub fn status(&self) -> Status {
        todo!()
    }
    /// Target of the transfer in progress.
    pub fn transfer_target(&self) -> Option<NodeId> {
        todo!()
    }
}
