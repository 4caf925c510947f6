//! In-process runtime nodes for tests: a replicated list of values, and helpers to build a
//! cluster of them on loopback QUIC.

#![allow(dead_code)]

use baton::raft::{Index, MembershipChange, NodeId, Role};
use baton::runtime::{
    Bootstrap, Node, NodeConfig, Origin, StateMachine, StateMachineError, StorageSettings,
};
use baton::storage::Durability;
use baton::transport::{FaultController, Identity, SessionCredentials};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// The replicated state: every value proposed, in commit order.
#[derive(Default)]
pub struct ValueList {
    pub values: Vec<String>,
    /// Who proposed each value applied since the last restore (not in snapshots).
    pub origins: Vec<(String, Origin)>,
}

impl StateMachine for ValueList {
    fn apply(&mut self, _index: Index, origin: Origin, command: &[u8]) -> Vec<u8> {
        let value = String::from_utf8_lossy(command).into_owned();
        self.origins.push((value.clone(), origin));
        self.values.push(value);
        (self.values.len() as u64).to_le_bytes().to_vec()
    }

    fn snapshot(&self) -> Result<Vec<u8>, StateMachineError> {
        Ok(self.values.join("\n").into_bytes())
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), StateMachineError> {
        let text =
            std::str::from_utf8(snapshot).map_err(|err| StateMachineError(err.to_string()))?;
        self.values = if text.is_empty() {
            Vec::new()
        } else {
            text.split('\n').map(str::to_owned).collect()
        };
        Ok(())
    }
}

pub type TestNode = Node<ValueList>;

/// Node settings for tests: loopback, optional fault injection, optional durable storage.
pub fn node_config(
    bind: SocketAddr,
    faults: Option<&FaultController>,
    data_dir: Option<&Path>,
) -> NodeConfig {
    let mut config = NodeConfig::default();
    config.transport.bind = bind;
    config.transport.faults = faults.cloned();
    config.snapshot_interval_entries = 64;
    config.storage = match data_dir {
        Some(dir) => StorageSettings {
            data_dir: Some(dir.join("raft")),
            durability: Durability::Durable,
        },
        None => StorageSettings {
            data_dir: None,
            durability: Durability::Memory,
        },
    };
    config
}

pub fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// Starts `size` nodes: the first founds the cluster, the others join and are promoted
/// until every node is a voter.
pub async fn start_cluster(
    size: usize,
    faults: Option<&FaultController>,
    data_dirs: &[&Path],
) -> (Vec<TestNode>, SessionCredentials) {
    let identity = |n: usize| match data_dirs.get(n) {
        Some(dir) => Identity::load_or_generate(&dir.join("identity")).unwrap(),
        None => Identity::generate().unwrap(),
    };
    let config = |n: usize| node_config(any_port(), faults, data_dirs.get(n).copied());
    start_cluster_with(size, config, identity).await
}

/// Like [`start_cluster`], with node `n`'s settings and identity from `config(n)` and
/// `identity(n)`. Joiners ask the founder at the address it announces, on loopback if
/// that is unspecified.
pub async fn start_cluster_with(
    size: usize,
    config: impl Fn(usize) -> NodeConfig,
    identity: impl Fn(usize) -> Identity,
) -> (Vec<TestNode>, SessionCredentials) {
    let credentials = SessionCredentials::generate();
    let founder = Node::start(
        config(0),
        identity(0),
        credentials.clone(),
        ValueList::default(),
        Bootstrap::NewCluster,
    )
    .await
    .unwrap();
    let bootstrap = loopback(founder.advertise_addr());
    let mut nodes = vec![founder];
    for n in 1..size {
        let joiner = Node::start(
            config(n),
            identity(n),
            credentials.clone(),
            ValueList::default(),
            Bootstrap::Join {
                addrs: vec![bootstrap],
            },
        )
        .await
        .unwrap();
        let id = joiner.id();
        nodes.push(joiner);
        super::sessions::eventually("the joiner to become a learner", || async {
            nodes[0]
                .status()
                .await
                .unwrap()
                .membership
                .learners
                .contains(&id)
        })
        .await;
        super::sessions::eventually("the learner to be promoted", || async {
            nodes[0]
                .change_membership(MembershipChange::PromoteLearner(id), None)
                .await
                .is_ok()
        })
        .await;
    }
    (nodes, credentials)
}

/// `addr` with an unspecified IP replaced by 127.0.0.1, which reaches a `[::]` socket too
/// (it is dual-stack) and can be dialed from IPv4-only sockets.
pub fn loopback(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], addr.port()))
    } else {
        addr
    }
}

/// The node every live node agrees leads, if they agree.
pub async fn leader(nodes: &[&TestNode]) -> Option<NodeId> {
    for node in nodes {
        if let Ok(status) = node.status().await {
            if status.role == Role::Leader {
                return Some(status.id);
            }
        }
    }
    None
}

/// Proposes `count` values named `label-i` through `node`; returns the acknowledged ones.
pub async fn propose_values(node: &TestNode, label: &str, count: usize) -> Vec<String> {
    let mut tasks = Vec::new();
    for i in 0..count {
        let node = node.clone();
        let value = format!("{label}-{i}");
        tasks.push(tokio::spawn(async move {
            node.propose(value.clone().into_bytes())
                .await
                .ok()
                .map(|_| value)
        }));
    }
    let mut acked = Vec::new();
    for task in tasks {
        if let Ok(Some(value)) = task.await {
            acked.push(value);
        }
    }
    acked
}

/// Waits until every node applied the same sequence; returns it.
pub async fn converged_values(nodes: &[&TestNode]) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + super::sessions::LIMIT;
    loop {
        let mut sequences = Vec::new();
        for node in nodes {
            if let Ok(values) = node.read(|list: &ValueList| list.values.clone()).await {
                sequences.push(values);
            }
        }
        if sequences.len() == nodes.len() && sequences.windows(2).all(|pair| pair[0] == pair[1]) {
            return sequences.pop().unwrap_or_default();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "nodes never converged on one sequence"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every acknowledged value is in `sequence`, and nothing appears twice.
pub fn assert_exactly_once(sequence: &[String], acked: &[String]) {
    let mut seen = std::collections::BTreeSet::new();
    for value in sequence {
        assert!(seen.insert(value), "{value} applied twice");
    }
    for value in acked {
        assert!(seen.contains(value), "acknowledged {value} was lost");
    }
}

pub const SETTLE: Duration = Duration::from_millis(300);
