//! Five node processes on loopback QUIC with durable storage: proposals from several
//! clients, the leader killed with SIGKILL mid-stream and restarted from its data
//! directory; every node must end with the same applied sequence, holding every
//! acknowledged proposal exactly once.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;
use support::process::{converged_sequence, promote_all, wait_for, NodeProcess, Start};
use support::runtime::assert_exactly_once;

const CLIENT_PROPOSALS: u64 = 2500;
const CLIENT_CONCURRENCY: u64 = 32;
const PROGRESS_LIMIT: Duration = Duration::from_secs(120);

fn leader_of(nodes: &mut [NodeProcess]) -> Option<String> {
    nodes.iter_mut().find_map(|node| {
        let status = node.status();
        (status["role"] == "Leader").then(|| status["leader"].clone())
    })
}

#[test]
fn five_processes_keep_every_acknowledged_proposal_across_a_leader_kill() {
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = vec![NodeProcess::spawn(
        "n0",
        &dir.path().join("n0"),
        "127.0.0.1:0",
        Start::New,
    )];
    let invite = nodes[0].invite.clone();
    for n in 1..5 {
        let name = format!("n{n}");
        nodes.push(NodeProcess::spawn(
            &name,
            &dir.path().join(&name),
            "127.0.0.1:0",
            Start::Join(&invite),
        ));
    }

    promote_all(&mut nodes, PROGRESS_LIMIT);

    // Clients are the four nodes that do not lead now, so the kill hits the host while
    // every client has proposals in flight.
    for (n, node) in nodes.iter_mut().enumerate().skip(1) {
        node.send(&format!(
            "propose c{n} {CLIENT_PROPOSALS} {CLIENT_CONCURRENCY}"
        ));
    }
    let total_acked =
        |nodes: &[NodeProcess]| nodes.iter().map(|node| node.acked().len()).sum::<usize>();
    wait_for("2000 acknowledgements", PROGRESS_LIMIT, || {
        total_acked(&nodes) >= 2000
    });

    let leader = leader_of(&mut nodes).expect("a leader");
    let victim = nodes
        .iter()
        .position(|node| node.id == leader)
        .expect("leader is one of ours");
    nodes[victim].kill();
    let acked_at_kill = total_acked(&nodes);
    wait_for("progress without the old leader", PROGRESS_LIMIT, || {
        total_acked(&nodes) >= acked_at_kill + 2000
    });

    let (name, data_dir, addr) = (
        nodes[victim].name.clone(),
        nodes[victim].data_dir.clone(),
        nodes[victim].addr.clone(),
    );
    nodes[victim] = NodeProcess::spawn(&name, &data_dir, &addr, Start::Join(&invite));

    let clients: Vec<usize> = (1..5).filter(|n| *n != victim).collect();
    wait_for("every live client to finish", PROGRESS_LIMIT, || {
        clients
            .iter()
            .all(|n| !nodes[*n].reports.lock().unwrap().done.is_empty())
    });

    let acknowledged: BTreeSet<String> = nodes.iter().flat_map(|node| node.acked()).collect();
    let sequence = converged_sequence(&mut nodes, PROGRESS_LIMIT);
    let acknowledged: Vec<String> = acknowledged.into_iter().collect();
    assert_exactly_once(&sequence, &acknowledged);
    let live_client_total = clients.len() as u64 * CLIENT_PROPOSALS;
    assert!(
        sequence.len() as u64 >= live_client_total,
        "live clients' proposals missing"
    );
    for node in nodes {
        node.quit();
    }
}
