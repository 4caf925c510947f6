//! Five node processes on loopback QUIC with durable storage: proposals from several
//! clients, the leader killed with SIGKILL mid-stream and restarted from its data
//! directory; every node must end with the same applied sequence, holding every
//! acknowledged proposal exactly once.

mod support;

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;
use support::process::{members, wait_for, NodeProcess, Start};

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

    wait_for("four learners to join", PROGRESS_LIMIT, || {
        members(&nodes[0].status()["learners"]).len() == 4
    });
    for n in 1..5 {
        let id = nodes[n].id.clone();
        wait_for("a promotion to be accepted", PROGRESS_LIMIT, || {
            nodes[0].ask(&format!("promote {id}")) == "ok"
        });
    }
    wait_for("five voters", PROGRESS_LIMIT, || {
        members(&nodes[0].status()["voters"]).len() == 5
    });

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
    let mut sequences: HashMap<String, Vec<String>> = HashMap::new();
    wait_for(
        "every node to apply the same sequence",
        PROGRESS_LIMIT,
        || {
            sequences.clear();
            for node in nodes.iter_mut() {
                let path = node.data_dir.with_extension("dump");
                let answer = node.ask(&format!("dump {}", path.display()));
                if !answer.starts_with("dumped") {
                    return false;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                sequences.insert(
                    node.name.clone(),
                    text.lines().map(str::to_string).collect(),
                );
            }
            let first = &sequences["n0"];
            sequences.values().all(|sequence| sequence == first)
        },
    );

    let sequence = &sequences["n0"];
    let distinct: BTreeSet<&String> = sequence.iter().collect();
    assert_eq!(
        distinct.len(),
        sequence.len(),
        "a proposal was applied twice"
    );
    for value in &acknowledged {
        assert!(
            distinct.contains(value),
            "acknowledged proposal {value} was lost"
        );
    }
    let live_client_total = clients.len() as u64 * CLIENT_PROPOSALS;
    assert!(
        sequence.len() as u64 >= live_client_total,
        "live clients' proposals missing"
    );
    for node in nodes {
        node.quit();
    }
}
