//! Runtime nodes on real QUIC through the fault-injecting socket (drop, delay, reorder,
//! duplication, partitions), and on durable storage through restarts. Nothing acknowledged
//! may be lost; a leader cut off from the majority must step down (check-quorum).

mod support;

use baton::raft::{MembershipChange, Role};
use baton::runtime::{Bootstrap, Node};
use baton::transport::{FaultController, Identity};
use std::time::Duration;
use support::runtime::{
    assert_exactly_once, converged_values, leader, node_config, propose_values, start_cluster,
    ValueList,
};
use support::sessions::eventually;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_from_the_majority_steps_down_and_nothing_committed_is_lost() {
    support::init_logging();
    let faults = FaultController::new(0x5eed);
    let (nodes, _) = start_cluster(5, Some(&faults), &[]).await;
    let all: Vec<&_> = nodes.iter().collect();
    let mut acked = propose_values(&nodes[1], "before", 100).await;
    assert_eq!(
        acked.len(),
        100,
        "a healthy cluster acknowledges everything"
    );

    // A lossy, jittery, duplicating, reordering network for the rest of the test.
    faults.set_drop_rate(0.03);
    faults.set_duplicate_rate(0.02);
    faults.set_reorder_rate(0.05);
    faults.set_delay(Duration::from_micros(100), Duration::from_millis(3));

    let old_leader_id = leader(&all).await.expect("a leader");
    let old = nodes
        .iter()
        .position(|node| node.id() == old_leader_id)
        .unwrap();
    let buddy = (old + 1) % nodes.len();
    let minority = [old, buddy];
    let majority: Vec<usize> = (0..nodes.len()).filter(|n| !minority.contains(n)).collect();
    for &a in &minority {
        for &b in &majority {
            faults.partition(nodes[a].local_addr(), nodes[b].local_addr());
        }
    }

    eventually("the cut-off leader to step down", || async {
        nodes[old]
            .status()
            .await
            .is_ok_and(|status| status.role != Role::Leader)
    })
    .await;
    let majority_nodes: Vec<&_> = majority.iter().map(|&n| &nodes[n]).collect();
    eventually("the majority to elect a leader", || async {
        leader(&majority_nodes)
            .await
            .is_some_and(|id| id != old_leader_id)
    })
    .await;
    acked.extend(propose_values(&nodes[majority[0]], "partitioned", 100).await);

    faults.heal();
    faults.set_drop_rate(0.0);
    faults.set_duplicate_rate(0.0);
    faults.set_reorder_rate(0.0);
    faults.set_delay(Duration::ZERO, Duration::ZERO);
    acked.extend(propose_values(&nodes[old], "healed", 50).await);

    let sequence = converged_values(&all).await;
    assert_exactly_once(&sequence, &acked);
    assert!(
        acked.len() >= 250,
        "the majority kept accepting proposals: {} acknowledged",
        acked.len()
    );
    eprintln!("fault stats: {:?}", faults.stats());
    for node in &nodes {
        node.shutdown().await.unwrap();
    }
}

/// A member removed while it was cut off never hears of it: the leader no longer sends it
/// the log, and its stale configuration still names it. Once the network heals it has
/// known no leader for long, asks to join again, and is re-admitted as a learner that
/// catches up with everything committed meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_removed_while_cut_off_asks_to_join_again_and_is_readmitted() {
    let (nodes, lead, cut, faults) = remove_one_while_cut_off(false).await;
    let cut_id = nodes[cut].id();
    let mut acked = propose_values(&nodes[lead], "while-cut", 20).await;
    faults.heal();
    eventually("the removed node to be a member again", || async {
        nodes[lead].status().await.is_ok_and(|status| {
            status.membership.learners.contains(&cut_id)
                || status.membership.voters.contains(&cut_id)
        })
    })
    .await;
    acked.extend(propose_values(&nodes[lead], "healed", 20).await);
    let all: Vec<&_> = nodes.iter().collect();
    let sequence = converged_values(&all).await;
    assert_exactly_once(&sequence, &acked);
    for node in &nodes {
        node.shutdown().await.unwrap();
    }
}

/// A node whose player is leaving (`stop_rejoining`) hears from no leader once removed,
/// as above, and must not knock its way back in: the leave would end with the player
/// still listed, a learner nobody plays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaving_member_removed_while_cut_off_stays_out() {
    let (nodes, lead, cut, faults) = remove_one_while_cut_off(true).await;
    let cut_id = nodes[cut].id();
    faults.heal();
    // Re-admission above takes 3 s without a leader and a knock (every 300 ms); give it
    // twice that.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let status = nodes[lead].status().await.unwrap();
    assert!(
        !status.membership.learners.contains(&cut_id)
            && !status.membership.voters.contains(&cut_id),
        "a leaving node asked to join again: {:?}",
        status.membership
    );
    for node in &nodes {
        node.shutdown().await.unwrap();
    }
}

/// Four nodes; one is cut off from the others (after `stop_rejoining` when `leaving`) and
/// the leader removes it. Returns the nodes, the leader's and the removed one's positions,
/// and the faults, still cutting it off.
async fn remove_one_while_cut_off(
    leaving: bool,
) -> (Vec<Node<ValueList>>, usize, usize, FaultController) {
    support::init_logging();
    let faults = FaultController::new(0xface);
    let (nodes, _) = start_cluster(4, Some(&faults), &[]).await;
    let all: Vec<&_> = nodes.iter().collect();
    let lead_id = leader(&all).await.expect("a leader");
    let lead = nodes.iter().position(|n| n.id() == lead_id).unwrap();
    let cut = (lead + 1) % nodes.len();
    if leaving {
        nodes[cut].stop_rejoining().await.unwrap();
    }
    for other in (0..nodes.len()).filter(|n| *n != cut) {
        faults.partition(nodes[cut].local_addr(), nodes[other].local_addr());
    }
    nodes[lead]
        .change_membership(MembershipChange::RemoveNode(nodes[cut].id()), None)
        .await
        .expect("three of four voters remove the fourth");
    (nodes, lead, cut, faults)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_node_cluster_on_durable_storage_survives_a_restart_of_every_node() {
    support::init_logging();
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let paths: Vec<&std::path::Path> = dirs.iter().map(|dir| dir.path()).collect();
    let (mut nodes, credentials) = start_cluster(3, None, &paths).await;
    let mut acked = propose_values(&nodes[0], "start", 100).await;

    for n in 0..nodes.len() {
        let addr = nodes[n].local_addr();
        let others: Vec<_> = nodes
            .iter()
            .filter(|node| node.local_addr() != addr)
            .map(|node| node.local_addr())
            .collect();
        nodes[n].shutdown().await.unwrap();
        acked.extend(
            propose_values(
                &nodes[(n + 1) % nodes.len()],
                &format!("while-{n}-down"),
                30,
            )
            .await,
        );
        nodes[n] = restart(addr, paths[n], &credentials, others).await;
        acked.extend(propose_values(&nodes[n], &format!("after-{n}-restart"), 30).await);
    }

    let all: Vec<&_> = nodes.iter().collect();
    let sequence = converged_values(&all).await;
    assert_exactly_once(&sequence, &acked);
    assert_eq!(
        acked.len(),
        100 + 3 * 60,
        "every proposal to a healthy majority is acknowledged"
    );
    for node in &nodes {
        node.shutdown().await.unwrap();
    }
}

/// Restarts a node from its data directory on its old address. The old endpoint's socket
/// closes asynchronously after shutdown, so binding is retried for a moment.
async fn restart(
    addr: std::net::SocketAddr,
    dir: &std::path::Path,
    credentials: &baton::transport::SessionCredentials,
    others: Vec<std::net::SocketAddr>,
) -> Node<ValueList> {
    for _ in 0..50 {
        let identity = Identity::load_or_generate(&dir.join("identity")).unwrap();
        let started = Node::start(
            node_config(addr, None, Some(dir)),
            identity,
            credentials.clone(),
            ValueList::default(),
            Bootstrap::Join {
                addrs: others.clone(),
            },
        )
        .await;
        match started {
            Ok(node) => return node,
            Err(err) => {
                eprintln!("restart: {err}; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    panic!("the node could not restart on {addr}");
}
