//! A rolling upgrade with a real previous release: `baton-node` built from the commit that
//! `releases.txt` names for the newest release, next to today's `baton-node`.
//!
//! Two old nodes and one new one form a session; all three propose; the host moves from an
//! old node to the new one and back; then each old node is stopped and started again from
//! its own data directory with today's binary (the storage upgrade), one at a time, while the
//! others keep proposing. Every node ends with the same values, every acknowledged proposal
//! applied exactly once.
//!
//! The old binary is built once into `target/releases/` from a git worktree of the release
//! commit and reused while that commit stays the newest release. Building it needs the
//! project's git history (not a shallow clone) and the crates in cargo's cache.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::process::{converged_sequence, members, promote_all, wait_for, NodeProcess, Start};
use support::release::{newest_release, release_binary, target_of};
use support::runtime::assert_exactly_once;

const PROGRESS_LIMIT: Duration = Duration::from_secs(60);
/// Proposals per node per phase, and how many each keeps in flight.
const PROPOSALS: u64 = 80;
const CONCURRENCY: u64 = 4;

fn leader(nodes: &mut [NodeProcess]) -> Option<String> {
    nodes.iter_mut().find_map(|node| {
        let status = node.status();
        (status["role"] == "Leader").then(|| status["leader"].clone())
    })
}

fn index_of(nodes: &[NodeProcess], id: &str) -> usize {
    nodes
        .iter()
        .position(|node| node.id == id)
        .expect("one of ours")
}

/// Asks the current leader to hand the host to `target`, until `target` leads.
fn move_host(nodes: &mut [NodeProcess], target: usize) {
    let target_id = nodes[target].id.clone();
    wait_for(
        &format!("{} to host", nodes[target].name),
        PROGRESS_LIMIT,
        || match leader(nodes) {
            Some(id) if id == target_id => true,
            Some(id) => {
                let at = index_of(nodes, &id);
                let _ = nodes[at].ask(&format!("transfer {target_id}"));
                false
            }
            None => false,
        },
    );
}

/// Every node proposes `PROPOSALS` values labelled `<phase>-<node>`.
fn propose_from_all(nodes: &mut [NodeProcess], phase: &str) -> Vec<String> {
    nodes
        .iter_mut()
        .map(|node| {
            let label = format!("{phase}{}", node.name);
            node.send(&format!("propose {label} {PROPOSALS} {CONCURRENCY}"));
            label
        })
        .collect()
}

fn wait_done(nodes: &[NodeProcess], labels: &[String]) {
    wait_for(
        "every proposer of the phase to finish",
        PROGRESS_LIMIT,
        || {
            labels.iter().all(|label| {
                nodes
                    .iter()
                    .any(|node| node.reports.lock().unwrap().done.contains(label))
            })
        },
    );
}

#[test]
fn a_session_of_old_and_new_releases_moves_its_host_and_upgrades_in_place() {
    let new = PathBuf::from(env!("CARGO_BIN_EXE_baton-node"));
    let old = release_binary(&newest_release(), &target_of(&new), "baton", "baton-node");
    let dir = tempfile::tempdir().unwrap();
    let spawn = |binary: &Path, name: &str, start: Start<'_>| {
        NodeProcess::spawn_binary(binary, name, &dir.path().join(name), "127.0.0.1:0", start)
    };

    // Two players on the release, one on today's code.
    let mut nodes = vec![spawn(&old, "old0", Start::New)];
    let invite = nodes[0].invite.clone();
    nodes.push(spawn(&old, "old1", Start::Join(&invite)));
    nodes.push(spawn(&new, "new2", Start::Join(&invite)));
    promote_all(&mut nodes, PROGRESS_LIMIT);

    let mut phases = Vec::new();
    phases.push(propose_from_all(&mut nodes, "mixed"));
    // The host moves from an old player to the new one while the values flow, and back.
    move_host(&mut nodes, 2);
    wait_done(&nodes, phases.last().unwrap());
    phases.push(propose_from_all(&mut nodes, "hosted-new"));
    move_host(&mut nodes, 0);
    wait_done(&nodes, phases.last().unwrap());

    // Each old player upgrades in place, one at a time, while everyone else proposes.
    let mut acked_by_replaced = Vec::new();
    for upgraded in [1, 0] {
        let others: Vec<usize> = (0..3).filter(|n| *n != upgraded).collect();
        let labels: Vec<String> = others
            .iter()
            .map(|&n| {
                let label = format!("during-{upgraded}-{}", nodes[n].name);
                nodes[n].send(&format!("propose {label} {PROPOSALS} {CONCURRENCY}"));
                label
            })
            .collect();
        let (name, id, addr) = (
            nodes[upgraded].name.clone(),
            nodes[upgraded].id.clone(),
            nodes[upgraded].addr.clone(),
        );
        acked_by_replaced.extend(nodes[upgraded].acked());
        nodes.remove(upgraded).quit();
        let restarted = NodeProcess::spawn_binary(
            &new,
            &name,
            &dir.path().join(&name),
            &addr,
            Start::Join(&invite),
        );
        assert_eq!(
            restarted.id, id,
            "{name} kept its identity across the upgrade"
        );
        nodes.insert(upgraded, restarted);
        wait_done(&nodes, &labels);
        phases.push(labels);
        let label = format!("upgraded-{name}");
        nodes[upgraded].send(&format!("propose {label} {PROPOSALS} {CONCURRENCY}"));
        wait_done(&nodes, std::slice::from_ref(&label));
        phases.push(vec![label]);
    }
    wait_for("three voters, all on today's code", PROGRESS_LIMIT, || {
        members(&nodes[0].status()["voters"]).len() == 3
    });

    let acknowledged: BTreeSet<String> = nodes
        .iter()
        .flat_map(|node| node.acked())
        .chain(acked_by_replaced)
        .collect();
    let sequence = converged_sequence(&mut nodes, PROGRESS_LIMIT);
    let acknowledged: Vec<String> = acknowledged.into_iter().collect();
    assert_exactly_once(&sequence, &acknowledged);
    // Nobody proposing was ever stopped, so every proposal of every phase was acknowledged.
    let proposed = phases.iter().map(Vec::len).sum::<usize>() as u64 * PROPOSALS;
    let failed: Vec<String> = nodes
        .iter()
        .flat_map(|node| node.reports.lock().unwrap().failed.clone())
        .collect();
    assert_eq!(
        acknowledged.len() as u64,
        proposed,
        "proposals not acknowledged; failures reported: {failed:?}"
    );
    for node in nodes {
        node.quit();
    }
}
