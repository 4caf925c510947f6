//! openraft, the Raft library a Rust developer would otherwise pick, set up the way its
//! authors benchmark it (`benchmarks/` and `cluster_benchmark/` in its repository): three
//! nodes in this process, an in-memory log and state machine that do no work, and a
//! "network" that is a direct call into the target node's `Raft` handle, with their
//! throughput configuration (election timeout 200–2000 ms, `purge_batch_size` and
//! `max_payload_entries` 1024). Written for this harness from openraft's trait
//! definitions; only the shape of the setup follows theirs.
//!
//! Its proposals are timed by the same client driver as Baton's ([`crate::saturation`]).

use crate::BenchError;
use openraft::error::{InstallSnapshotError, RPCError, RaftError, RemoteError};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::storage::{LogFlushed, LogState, RaftLogStorage, RaftStateMachine, Snapshot};
use openraft::{
    BasicNode, Config, Entry, EntryPayload, LogId, RaftLogReader, RaftSnapshotBuilder,
    SnapshotMeta, StorageError, StoredMembership, Vote,
};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::io::Cursor;
use std::ops::RangeBounds;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

openraft::declare_raft_types!(
    /// The types of the compared cluster: opaque byte commands, empty responses.
    pub BenchTypes:
        D = Vec<u8>,
        R = (),
);

/// A running openraft node of the compared cluster.
pub type BenchRaft = openraft::Raft<BenchTypes>;
type NodeId = u64;

/// Nodes in the compared cluster.
pub const NODES: u64 = 3;
/// Longest wait for the cluster's first leader to be seen by every node.
const INIT_TIMEOUT: Duration = Duration::from_secs(10);

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The in-memory log of one node: entries by index, the vote, what was purged.
#[derive(Default)]
struct LogInner {
    entries: BTreeMap<u64, Entry<BenchTypes>>,
    vote: Option<Vote<NodeId>>,
    committed: Option<LogId<NodeId>>,
    last_purged: Option<LogId<NodeId>>,
}

/// Cheap to clone: the log reader handed to replication tasks is a clone.
#[derive(Clone, Default)]
pub struct LogStore {
    inner: Arc<Mutex<LogInner>>,
}

impl RaftLogReader<BenchTypes> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<BenchTypes>>, StorageError<NodeId>> {
        let inner = locked(&self.inner);
        Ok(inner
            .entries
            .range(range)
            .map(|(_, entry)| entry.clone())
            .collect())
    }
}

impl RaftLogStorage<BenchTypes> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<BenchTypes>, StorageError<NodeId>> {
        let inner = locked(&self.inner);
        let last = inner
            .entries
            .last_key_value()
            .map(|(_, entry)| entry.log_id)
            .or(inner.last_purged);
        Ok(LogState {
            last_purged_log_id: inner.last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        locked(&self.inner).vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        Ok(locked(&self.inner).vote)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), StorageError<NodeId>> {
        locked(&self.inner).committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        Ok(locked(&self.inner).committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<BenchTypes>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<BenchTypes>> + Send,
        I::IntoIter: Send,
    {
        {
            let mut inner = locked(&self.inner);
            for entry in entries {
                inner.entries.insert(entry.log_id.index, entry);
            }
        }
        // In memory, an append is "flushed" the moment it is stored.
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        locked(&self.inner).entries.split_off(&log_id.index);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let mut inner = locked(&self.inner);
        let kept = inner.entries.split_off(&(log_id.index + 1));
        inner.entries = kept;
        inner.last_purged = Some(log_id);
        Ok(())
    }
}

/// What the state machine holds: how far it applied, the membership, a command count.
#[derive(Default)]
struct MachineInner {
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, BasicNode>,
    applied: u64,
    snapshot_count: u64,
    current: Option<(SnapshotMeta<NodeId, BasicNode>, Vec<u8>)>,
}

/// The state machine: counts commands, nothing else (as openraft's own benchmark does).
#[derive(Clone, Default)]
pub struct StateMachine {
    inner: Arc<Mutex<MachineInner>>,
}

impl RaftSnapshotBuilder<BenchTypes> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<BenchTypes>, StorageError<NodeId>> {
        let mut inner = locked(&self.inner);
        inner.snapshot_count += 1;
        let data = inner.applied.to_le_bytes().to_vec();
        let meta = SnapshotMeta {
            last_log_id: inner.last_applied,
            last_membership: inner.membership.clone(),
            snapshot_id: format!("snapshot-{}", inner.snapshot_count),
        };
        inner.current = Some((meta.clone(), data.clone()));
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<BenchTypes> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>), StorageError<NodeId>>
    {
        let inner = locked(&self.inner);
        Ok((inner.last_applied, inner.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<()>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<BenchTypes>> + Send,
        I::IntoIter: Send,
    {
        let mut inner = locked(&self.inner);
        let mut responses = Vec::new();
        for entry in entries {
            inner.last_applied = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(_) => inner.applied += 1,
                EntryPayload::Membership(membership) => {
                    inner.membership = StoredMembership::new(Some(entry.log_id), membership)
                }
            }
            responses.push(());
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let data = snapshot.into_inner();
        let mut inner = locked(&self.inner);
        // A malformed snapshot (it never happens here: every node is ours) restores zero.
        inner.applied = <[u8; 8]>::try_from(data.as_slice())
            .map(u64::from_le_bytes)
            .unwrap_or(0);
        inner.last_applied = meta.last_log_id;
        inner.membership = meta.last_membership.clone();
        inner.current = Some((meta.clone(), data));
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<BenchTypes>>, StorageError<NodeId>> {
        let inner = locked(&self.inner);
        Ok(inner.current.as_ref().map(|(meta, data)| Snapshot {
            meta: meta.clone(),
            snapshot: Box::new(Cursor::new(data.clone())),
        }))
    }
}

/// Every node's `Raft` handle: a "network" call is a call on the target's handle.
#[derive(Clone, Default)]
pub struct Router {
    nodes: Arc<Mutex<BTreeMap<NodeId, BenchRaft>>>,
}

/// A connection to one node: its `Raft` handle, once it exists.
pub struct Connection {
    target: NodeId,
    raft: Option<BenchRaft>,
}

fn unreachable_target<E: std::error::Error>(
    target: NodeId,
) -> RPCError<NodeId, BasicNode, RaftError<NodeId, E>> {
    RPCError::Unreachable(openraft::error::Unreachable::new(&std::io::Error::new(
        std::io::ErrorKind::NotFound,
        format!("node {target} is not in the router"),
    )))
}

impl RaftNetworkFactory<BenchTypes> for Router {
    type Network = Connection;

    async fn new_client(&mut self, target: NodeId, _node: &BasicNode) -> Connection {
        Connection {
            target,
            raft: locked(&self.nodes).get(&target).cloned(),
        }
    }
}

impl RaftNetwork<BenchTypes> for Connection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<BenchTypes>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        let raft = self
            .raft
            .as_ref()
            .ok_or_else(|| unreachable_target(self.target))?;
        raft.append_entries(rpc)
            .await
            .map_err(|err| RPCError::RemoteError(RemoteError::new(self.target, err)))
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<BenchTypes>,
        _option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        let raft = self
            .raft
            .as_ref()
            .ok_or_else(|| unreachable_target(self.target))?;
        raft.install_snapshot(rpc)
            .await
            .map_err(|err| RPCError::RemoteError(RemoteError::new(self.target, err)))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        let raft = self
            .raft
            .as_ref()
            .ok_or_else(|| unreachable_target(self.target))?;
        raft.vote(rpc)
            .await
            .map_err(|err| RPCError::RemoteError(RemoteError::new(self.target, err)))
    }
}

/// A running compared cluster.
pub struct Cluster {
    nodes: Vec<BenchRaft>,
}

impl Cluster {
    /// Starts [`NODES`] nodes, initialises node 0 with all of them as voters, and waits until
    /// every node has applied the initial membership.
    pub async fn start() -> Result<Cluster, BenchError> {
        let config = Config {
            election_timeout_min: 200,
            election_timeout_max: 2000,
            purge_batch_size: 1024,
            max_payload_entries: 1024,
            ..Config::default()
        }
        .validate()
        .map_err(|err| BenchError::Openraft(err.to_string()))?;
        let config = Arc::new(config);
        let router = Router::default();
        let mut nodes = Vec::new();
        for id in 0..NODES {
            let raft = BenchRaft::new(
                id,
                config.clone(),
                router.clone(),
                LogStore::default(),
                StateMachine::default(),
            )
            .await
            .map_err(|err| BenchError::Openraft(err.to_string()))?;
            locked(&router.nodes).insert(id, raft.clone());
            nodes.push(raft);
        }
        let members: BTreeSet<NodeId> = (0..NODES).collect();
        nodes[0]
            .initialize(members)
            .await
            .map_err(|err| BenchError::Openraft(err.to_string()))?;
        for raft in &nodes {
            // Log index 0 is the initial membership entry.
            raft.wait(Some(INIT_TIMEOUT))
                .applied_index_at_least(Some(0), "the initial membership")
                .await
                .map_err(|err| BenchError::Openraft(err.to_string()))?;
        }
        Ok(Cluster { nodes })
    }

    /// The leader's handle (node 0 initialised the cluster and leads it).
    pub fn leader(&self) -> BenchRaft {
        self.nodes[0].clone()
    }

    /// Stops every node.
    pub async fn shutdown(self) {
        for raft in self.nodes {
            let _ = raft.shutdown().await;
        }
    }
}
