//! Propose→apply latency through [`Node::propose`] on a three-voter runtime cluster on
//! loopback QUIC, one proposal at a time from the leader, for each storage profile.

use crate::session::wait_until;
use crate::{BenchError, SETUP_LIMIT};
use baton::raft::{Index, MembershipChange, Role};
use baton::runtime::{
    Bootstrap, Node, NodeConfig, Origin, StateMachine, StateMachineError, StorageSettings,
};
use baton::storage::Durability;
use baton::transport::{Identity, SessionCredentials};
use std::path::Path;
use std::time::{Duration, Instant};

/// Voters in the measured cluster.
pub const VOTERS: usize = 3;
/// Proposals made before measuring (connections warm, the WAL's first segment created).
const WARMUP_PROPOSALS: usize = 20;
/// How often the harness looks for the leader while an election may be running.
const LEADER_POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Which store every node of the cluster uses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StoreProfile {
    /// [`baton::storage::MemoryStorage`]: nothing on disk.
    Memory,
    /// The file store, fsynced by a background thread every `fsync_interval`.
    Relaxed {
        /// How often the background thread fsyncs.
        fsync_interval: Duration,
    },
    /// The file store, one fsync per persisted batch before anything is acknowledged.
    Durable,
}

impl StoreProfile {
    fn durability(self) -> Durability {
        match self {
            StoreProfile::Memory => Durability::Memory,
            StoreProfile::Relaxed { fsync_interval } => Durability::Relaxed { fsync_interval },
            StoreProfile::Durable => Durability::Durable,
        }
    }
}

/// The replicated state: how many commands were applied.
#[derive(Default)]
pub(crate) struct Counter {
    applied: u64,
}

impl StateMachine for Counter {
    fn apply(&mut self, _index: Index, _origin: Origin, _command: &[u8]) -> Vec<u8> {
        self.applied += 1;
        Vec::new()
    }

    fn snapshot(&self) -> Result<Vec<u8>, StateMachineError> {
        Ok(self.applied.to_le_bytes().to_vec())
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), StateMachineError> {
        let bytes = <[u8; 8]>::try_from(snapshot).map_err(|_| {
            StateMachineError(format!("snapshot of {} bytes, not 8", snapshot.len()))
        })?;
        self.applied = u64::from_le_bytes(bytes);
        Ok(())
    }
}

fn node_config(profile: StoreProfile, data_dir: Option<&Path>) -> NodeConfig {
    NodeConfig {
        storage: StorageSettings {
            data_dir: match profile {
                StoreProfile::Memory => None,
                _ => data_dir.map(Path::to_path_buf),
            },
            durability: profile.durability(),
        },
        ..NodeConfig::default()
    }
}

/// Starts [`VOTERS`] nodes (the first founds the cluster, the others join and are promoted),
/// then times `proposals` sequential proposals of `payload_bytes` from the leader.
/// File stores live in fresh directories under `data_root`, removed afterwards.
pub async fn measure_proposals(
    profile: StoreProfile,
    proposals: usize,
    payload_bytes: usize,
    data_root: &Path,
) -> Result<Vec<Duration>, BenchError> {
    let dirs = tempfile::Builder::new()
        .prefix("baton-bench-")
        .tempdir_in(data_root)?;
    let mut nodes: Vec<Node<Counter>> = Vec::with_capacity(VOTERS);
    let outcome = async {
        start_cluster(&mut nodes, profile, dirs.path()).await?;
        time_proposals(&nodes, proposals, payload_bytes).await
    }
    .await;
    for node in nodes.iter().rev() {
        let _ = node.shutdown().await;
    }
    outcome
}

/// Starts [`VOTERS`] nodes into `nodes` (the first founds the cluster, the others join and
/// are promoted); file stores under `dir`. On an error, `nodes` holds what started, for the
/// caller to shut down.
pub(crate) async fn start_cluster(
    nodes: &mut Vec<Node<Counter>>,
    profile: StoreProfile,
    dir: &Path,
) -> Result<(), BenchError> {
    let credentials = SessionCredentials::generate();
    {
        for n in 0..VOTERS {
            let dir = dir.join(format!("node-{n}"));
            let bootstrap = match nodes.first() {
                None => Bootstrap::NewCluster,
                Some(founder) => Bootstrap::Join {
                    addrs: vec![founder.local_addr()],
                },
            };
            let node = Node::start(
                node_config(profile, Some(&dir)),
                Identity::generate()?,
                credentials.clone(),
                Counter::default(),
                bootstrap,
            )
            .await?;
            let id = node.id();
            nodes.push(node);
            if n > 0 {
                promote(&nodes[0], id).await?;
            }
        }
    }
    Ok(())
}

async fn promote(founder: &Node<Counter>, id: baton::raft::NodeId) -> Result<(), BenchError> {
    wait_until("a joiner to become a learner", SETUP_LIMIT, || async {
        founder
            .status()
            .await
            .is_ok_and(|status| status.membership.learners.contains(&id))
    })
    .await?;
    wait_until("a learner to be promoted", SETUP_LIMIT, || async {
        founder
            .change_membership(MembershipChange::PromoteLearner(id), None)
            .await
            .is_ok()
    })
    .await
}

pub(crate) async fn find_leader(nodes: &[Node<Counter>]) -> Result<Node<Counter>, BenchError> {
    let deadline = Instant::now() + SETUP_LIMIT;
    while Instant::now() < deadline {
        for node in nodes {
            if node
                .status()
                .await
                .is_ok_and(|status| status.role == Role::Leader)
            {
                return Ok(node.clone());
            }
        }
        tokio::time::sleep(LEADER_POLL_INTERVAL).await;
    }
    Err(BenchError::Timeout("a leader"))
}

async fn time_proposals(
    nodes: &[Node<Counter>],
    proposals: usize,
    payload_bytes: usize,
) -> Result<Vec<Duration>, BenchError> {
    let leader = find_leader(nodes).await?;
    let payload = vec![7u8; payload_bytes];
    let mut measured = Vec::with_capacity(proposals);
    for round in 0..WARMUP_PROPOSALS + proposals {
        let started = Instant::now();
        leader.propose(payload.clone()).await?;
        if round >= WARMUP_PROPOSALS {
            measured.push(started.elapsed());
        }
    }
    Ok(measured)
}
