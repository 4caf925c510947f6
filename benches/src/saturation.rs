//! Saturation: proposals per second with 1, 64 and 1024 concurrent clients, each
//! proposing, waiting for its commit, and proposing again. Baton through its runtime
//! ([`baton::runtime::Node::propose`] on a three-voter cluster on loopback QUIC, in-memory
//! store, which batches what is queued), and openraft ([`crate::openraft_cluster`]) driven
//! by the same clients with the same payloads.
//!
//! Both run in this process on the same tokio runtime, one after the other.

use crate::cluster::{find_leader, start_cluster, Counter, StoreProfile};
use crate::stats::Summary;
use crate::{openraft_cluster, BenchError};
use baton::runtime::Node;
use serde::Serialize;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most clients one case may have.
pub const CLIENTS_MAX: usize = 4096;
/// Proposals one client makes at most in a case, whatever the duration (a bound on memory
/// and on a runaway loop).
const PROPOSALS_PER_CLIENT_MAX: usize = 1_000_000;
/// Time each case runs before its window opens (connections warm, batches at their steady
/// size).
const WARMUP: Duration = Duration::from_millis(300);
/// Longest one proposal may take before the case is abandoned.
const PROPOSAL_TIMEOUT: Duration = Duration::from_secs(15);

/// What one system did in one case.
#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    /// Proposals committed per second in the window.
    pub per_s: f64,
    /// Commit latency as each client saw it (propose to committed answer).
    pub latency: Summary,
}

/// One system's proposal call, boxed so the same clients can drive any system.
pub type ProposeFn = Arc<
    dyn Fn(Vec<u8>) -> Pin<Box<dyn Future<Output = Result<(), BenchError>> + Send>> + Send + Sync,
>;

/// Runs `clients` clients for a 300 ms warm-up plus `window`, each proposing `payload_bytes`
/// through `propose` one at a time; counts what started and finished inside the window.
pub async fn drive(
    propose: ProposeFn,
    clients: usize,
    payload_bytes: usize,
    window: Duration,
) -> Result<Throughput, BenchError> {
    if !(1..=CLIENTS_MAX).contains(&clients) {
        return Err(BenchError::Config(
            "clients must be between 1 and CLIENTS_MAX",
        ));
    }
    let opens = Instant::now() + WARMUP;
    let closes = opens + window;
    let mut tasks = Vec::with_capacity(clients);
    for client in 0..clients {
        let propose = propose.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut payload = vec![0u8; payload_bytes];
            for round in 0..PROPOSALS_PER_CLIENT_MAX {
                let started = Instant::now();
                if started >= closes {
                    break;
                }
                // Distinct bytes per proposal, so nothing downstream can fold repeats.
                let stamp = ((client as u64) << 32 | round as u64).to_le_bytes();
                let len = stamp.len().min(payload.len());
                payload[..len].copy_from_slice(&stamp[..len]);
                tokio::time::timeout(PROPOSAL_TIMEOUT, propose(payload.clone()))
                    .await
                    .map_err(|_| BenchError::Timeout("a proposal at saturation"))??;
                let finished = Instant::now();
                if started >= opens && finished <= closes {
                    latencies.push(finished - started);
                }
            }
            Ok::<_, BenchError>(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        let client = task
            .await
            .map_err(|_| BenchError::Protocol("a saturation client panicked"))??;
        latencies.extend(client);
    }
    let latency = Summary::of(&latencies)
        .ok_or_else(|| BenchError::NoSamples(format!("saturation, {clients} clients")))?;
    Ok(Throughput {
        per_s: latencies.len() as f64 / window.as_secs_f64(),
        latency,
    })
}

/// A running three-voter Baton cluster for saturation cases.
pub struct BatonCluster {
    nodes: Vec<Node<Counter>>,
    leader: Node<Counter>,
    _dir: tempfile::TempDir,
}

impl BatonCluster {
    /// Starts the cluster (in-memory store) and finds its leader.
    pub async fn start() -> Result<BatonCluster, BenchError> {
        let dir = tempfile::Builder::new()
            .prefix("baton-bench-sat-")
            .tempdir()?;
        let mut nodes = Vec::new();
        match start_cluster(&mut nodes, StoreProfile::Memory, dir.path()).await {
            Ok(()) => {}
            Err(err) => {
                for node in nodes.iter().rev() {
                    let _ = node.shutdown().await;
                }
                return Err(err);
            }
        }
        let leader = find_leader(&nodes).await?;
        Ok(BatonCluster {
            nodes,
            leader,
            _dir: dir,
        })
    }

    /// The leader's proposal call.
    pub fn propose_fn(&self) -> ProposeFn {
        let leader = self.leader.clone();
        Arc::new(move |payload| {
            let leader = leader.clone();
            Box::pin(async move {
                leader.propose(payload).await?;
                Ok(())
            })
        })
    }

    /// Stops every node.
    pub async fn shutdown(self) {
        for node in self.nodes.iter().rev() {
            let _ = node.shutdown().await;
        }
    }
}

/// The compared openraft cluster's proposal call (`client_write` on the leader).
pub fn openraft_propose_fn(cluster: &openraft_cluster::Cluster) -> ProposeFn {
    let leader = cluster.leader();
    Arc::new(move |payload| {
        let leader = leader.clone();
        Box::pin(async move {
            leader
                .client_write(payload)
                .await
                .map_err(|err| BenchError::Openraft(err.to_string()))?;
            Ok(())
        })
    })
}
