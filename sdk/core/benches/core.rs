//! Throughput of the core alone: a 3-node cluster in memory, driven synchronously (no
//! I/O, no threads), so the figures are the protocol's CPU cost. Also prints the commit
//! latency in delivery rounds (a round = every node handles what it was sent).

use baton_core::{Config, Membership, Message, NodeId, PersistedState, RaftNode, Role};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::collections::BTreeMap;

const ROUNDS_MAX: usize = 10_000;

struct Cluster {
    nodes: BTreeMap<NodeId, RaftNode>,
    in_flight: Vec<Message>,
    applied: BTreeMap<NodeId, u64>,
}

impl Cluster {
    fn new(size: u64) -> Cluster {
        let membership = Membership {
            voters: (1..=size).collect(),
            learners: Default::default(),
        };
        let boot = PersistedState::bootstrap(membership);
        let nodes = (1..=size)
            .map(|id| {
                let mut config = Config::new(id, id);
                config.max_entries_per_append = 256;
                (id, RaftNode::new(config, boot.clone()).unwrap())
            })
            .collect();
        let mut cluster = Cluster {
            nodes,
            in_flight: Vec::new(),
            applied: BTreeMap::new(),
        };
        cluster.nodes.get_mut(&1).unwrap().campaign().unwrap();
        cluster.settle();
        assert_eq!(cluster.nodes[&1].role(), Role::Leader);
        cluster
    }

    /// Handles every Ready of every node as a runtime would, with instant persistence.
    fn drain_readies(&mut self) {
        for (id, node) in self.nodes.iter_mut() {
            while node.has_ready() {
                let ready = node.ready();
                self.in_flight.extend(ready.messages);
                self.in_flight.extend(ready.persisted_messages);
                node.advance(ready.number);
                if let Some(last) = ready.committed_entries.last() {
                    self.applied.insert(*id, last.index);
                }
            }
        }
    }

    /// One delivery round; false when nothing was in flight.
    fn round(&mut self) -> bool {
        self.drain_readies();
        if self.in_flight.is_empty() {
            return false;
        }
        for msg in std::mem::take(&mut self.in_flight) {
            let to = msg.to;
            self.nodes.get_mut(&to).unwrap().step(msg).unwrap();
        }
        self.drain_readies();
        true
    }

    fn settle(&mut self) -> usize {
        for rounds in 0..ROUNDS_MAX {
            if !self.round() {
                return rounds;
            }
        }
        panic!("did not settle");
    }
}

fn propose_batch(cluster: &mut Cluster, count: usize, payload: &[u8]) {
    let leader = cluster.nodes.get_mut(&1).unwrap();
    for _ in 0..count {
        leader.propose(payload.to_vec(), None).unwrap();
    }
    cluster.settle();
    let last = cluster.nodes[&1].last_index();
    assert!(
        cluster.applied.values().all(|&a| a == last),
        "everyone applied everything"
    );
}

fn print_commit_latency_in_rounds() {
    let mut cluster = Cluster::new(3);
    let id = cluster
        .nodes
        .get_mut(&1)
        .unwrap()
        .propose(b"x".to_vec(), None)
        .unwrap();
    let mut leader_commit_round = None;
    let mut all_applied_round = None;
    for round in 1..=ROUNDS_MAX {
        cluster.round();
        if leader_commit_round.is_none() && cluster.nodes[&1].commit_index() >= id.index {
            leader_commit_round = Some(round);
        }
        if cluster.applied.values().all(|&a| a >= id.index) && cluster.applied.len() == 3 {
            all_applied_round = Some(round);
            break;
        }
    }
    println!(
        "commit latency: leader commits after {:?} delivery rounds, all 3 nodes applied after {:?} rounds",
        leader_commit_round, all_applied_round
    );
}

fn bench(c: &mut Criterion) {
    print_commit_latency_in_rounds();
    let mut group = c.benchmark_group("three_node_cluster");
    for &batch in &[1usize, 64, 1024] {
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_with_input(
            BenchmarkId::new("propose_commit_apply_64B", batch),
            &batch,
            |b, &batch| {
                let mut cluster = Cluster::new(3);
                let payload = vec![7u8; 64];
                let mut proposed = 0u64;
                b.iter(|| {
                    propose_batch(&mut cluster, batch, &payload);
                    proposed += batch as u64;
                    // Keep memory bounded in long runs: compact everything applied.
                    if proposed % 8192 < batch as u64 {
                        for node in cluster.nodes.values_mut() {
                            let applied = node.applied_index();
                            let _ = node.compact(applied, Vec::new());
                        }
                        cluster.drain_readies();
                    }
                });
            },
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
