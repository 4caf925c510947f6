//! The runtime's guards on real loopback QUIC: a leadership transfer that stalls pauses
//! proposals only for the core's abandon timeout; forwarded proposals are bound to their
//! authenticated sender; removed members are forgotten; a panic stops the node cleanly.

mod support;

use baton::raft::Role;
use baton::transport::Identity;
use std::time::{Duration, Instant};
use support::runtime::{any_port, leader, node_config, start_cluster_with, TestNode};

/// Long enough that a proposal waiting for the retry timer is unmistakable.
const RETRY_SLOW: Duration = Duration::from_secs(5);

async fn cluster(size: usize, retry: Duration) -> Vec<TestNode> {
    let (nodes, _) = start_cluster_with(
        size,
        |_| {
            let mut config = node_config(any_port(), None, None);
            config.proposal_retry_interval = retry;
            config
        },
        |_| Identity::generate().expect("an identity"),
    )
    .await;
    nodes
}

async fn leader_index(nodes: &[TestNode]) -> usize {
    let all: Vec<&TestNode> = nodes.iter().collect();
    for _ in 0..200 {
        if let Some(id) = leader(&all).await {
            return nodes
                .iter()
                .position(|node| node.id() == id)
                .expect("a node");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no leader within 10 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_to_a_dead_target_pauses_proposals_for_the_abandon_timeout_only() {
    support::init_logging();
    let nodes = cluster(3, RETRY_SLOW).await;
    let lead = leader_index(&nodes).await;
    let dead = (lead + 1) % 3;
    let follower = (lead + 2) % 3;
    nodes[lead]
        .propose(b"warm-up".to_vec())
        .await
        .expect("a healthy cluster commits");
    let dead_id = nodes[dead].id();
    nodes[dead].shutdown().await.unwrap();

    let host = nodes[lead].clone();
    let transfer = tokio::spawn(async move { host.transfer_leadership(dead_id).await });
    // Let the transfer start before the proposals arrive, so the core refuses them.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let started = Instant::now();
    let own = nodes[lead].propose(b"from-the-leader".to_vec());
    let forwarded = nodes[follower].propose(b"from-a-follower".to_vec());
    let (own, forwarded) = tokio::join!(own, forwarded);
    let paused = started.elapsed();
    own.expect("the leader's proposal commits once the transfer is abandoned");
    forwarded.expect("the forwarded proposal commits once the transfer is abandoned");
    assert!(
        transfer.await.unwrap().is_err(),
        "the transfer to a dead node fails"
    );
    // The abandon timeout is election_timeout_ticks_min ticks: 150 ms by default. Waiting
    // for the retry timer instead would take RETRY_SLOW.
    assert!(
        paused < RETRY_SLOW / 2,
        "proposals waited {paused:?} for a stalled transfer"
    );
    assert_eq!(nodes[lead].status().await.unwrap().role, Role::Leader);
    for (n, node) in nodes.iter().enumerate() {
        if n != dead {
            node.shutdown().await.unwrap();
        }
    }
}
