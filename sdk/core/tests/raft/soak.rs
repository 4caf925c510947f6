//! Randomized fault schedule (reorder, duplicate, drop, partitions, crashes, fsync
//! stalls, compactions, transfers, membership changes, reads) with safety checked after
//! every step, then a liveness phase. `BATON_CORE_SOAK_SEEDS=n` runs more seeds.

use crate::harness::Network;
use baton_core::{MembershipChange, NodeId, Role, StepError};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;

const STEPS_PER_SEED: usize = 3000;
const DEFAULT_SEEDS: u64 = 12;

fn seeds() -> u64 {
    std::env::var("BATON_CORE_SOAK_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SEEDS)
}

struct Checker {
    leader_of_term: BTreeMap<u64, NodeId>,
}

impl Checker {
    /// §5.3 log matching and §5.4 leader completeness over every pair of live nodes.
    fn check_logs(&self, net: &Network, seed: u64) {
        let nodes: Vec<_> = net.nodes.values().filter(|n| n.up).collect();
        for (i, a) in nodes.iter().enumerate() {
            for b in &nodes[i + 1..] {
                let (a, b) = (&a.raft, &b.raft);
                let from = a.snapshot_index().max(b.snapshot_index());
                let to = a.last_index().min(b.last_index());
                let highest_match = (from..=to)
                    .rev()
                    .find(|&k| a.entry_term(k).is_some() && a.entry_term(k) == b.entry_term(k));
                if let Some(k) = highest_match {
                    for j in from..k {
                        assert_eq!(
                            a.entry_term(j),
                            b.entry_term(j),
                            "seed {seed}: log matching broken at {j} below {k} between {} and {}",
                            a.id(),
                            b.id()
                        );
                    }
                }
            }
        }
        // Only the leader of the newest term must hold everything committed so far: a
        // deposed leader that has not heard yet legitimately lacks later commits.
        let newest_term = self.leader_of_term.keys().next_back().copied();
        for leader in nodes
            .iter()
            .filter(|n| n.raft.role() == Role::Leader && Some(n.raft.term()) == newest_term)
        {
            for (&index, (term, _)) in &net.applied_anywhere {
                let raft = &leader.raft;
                assert!(
                    index <= raft.last_index(),
                    "seed {seed}: leader {} lacks committed {index}",
                    raft.id()
                );
                if let Some(held) = raft.entry_term(index) {
                    assert_eq!(
                        held,
                        *term,
                        "seed {seed}: leader {} holds another entry at committed {index}",
                        raft.id()
                    );
                }
            }
        }
    }

    fn check(&mut self, net: &Network, seed: u64) {
        for (&id, node) in &net.nodes {
            if node.up && node.raft.role() == Role::Leader {
                let term = node.raft.term();
                let previous = *self.leader_of_term.entry(term).or_insert(id);
                assert_eq!(previous, id, "seed {seed}: two leaders in term {term}");
            }
            assert!(node.raft.commit_index() <= node.raft.last_index());
        }
    }
}

fn run_seed(seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let voters = [1, 2, 3, 4, 5];
    let mut net = Network::with_config(&voters, &[6], |c| {
        c.rng_seed = seed * 100 + c.id;
        c.snapshot_chunk_bytes = 7;
        c.max_entries_per_append = 3;
        c.max_inflight_appends = 3;
        c.lease_reads = seed % 2 == 0;
    });
    net.add_joining_node(7);
    let mut checker = Checker {
        leader_of_term: BTreeMap::new(),
    };
    let ids: Vec<NodeId> = net.nodes.keys().copied().collect();
    let mut proposals = 0u32;
    let mut proposed_at = BTreeMap::new();
    let watched: Option<NodeId> = std::env::var("BATON_CORE_SOAK_WATCH")
        .ok()
        .and_then(|s| s.parse().ok());
    let mut last_seen = None;
    let mut refusals: BTreeMap<&'static str, u32> = BTreeMap::new();
    for step in 0..STEPS_PER_SEED {
        let pick = |rng: &mut ChaCha8Rng| ids[rng.random_range(0..ids.len())];
        let action = rng.random_range(0..100u32);
        match action {
            0..=59 => {
                // Deliver a few random messages: reordering, some duplicated or lost.
                for _ in 0..rng.random_range(1..8) {
                    if net.queue.is_empty() {
                        break;
                    }
                    let at = rng.random_range(0..net.queue.len());
                    let msg = net.queue.remove(at).unwrap();
                    if rng.random_range(0..20) == 0 {
                        net.queue.push_back(msg.clone());
                    }
                    if rng.random_range(0..15) != 0 && net.link_ok(&msg) {
                        let to = msg.to;
                        *net.delivered_kinds
                            .entry(crate::harness::kind(&msg.body))
                            .or_default() += 1;
                        match net.raft(to).step(msg) {
                            // Late answers from a node removed from the configuration.
                            Ok(()) | Err(StepError::UnknownPeer(_)) => {}
                            Err(other) => panic!("seed {seed}: honest message refused: {other}"),
                        }
                        net.process(to);
                    }
                }
            }
            60..=69 => net.tick_all(),
            70..=79 => {
                if let Some(leader) = net.leader() {
                    match net
                        .raft(leader)
                        .propose(format!("s{seed}-{proposals}").into_bytes(), None)
                    {
                        Ok(id) => {
                            if let Some(previous) =
                                proposed_at.insert((id.term, id.index), (leader, proposals))
                            {
                                panic!("seed {seed}: {id:?} proposed twice: {previous:?} then {:?} at step {step}", (leader, proposals));
                            }
                            proposals += 1
                        }
                        Err(_) => *refusals.entry("transfer").or_insert(0) += 1,
                    }
                    net.process(leader);
                } else {
                    *refusals.entry("no leader").or_insert(0) += 1;
                }
            }
            80 => {
                let id = pick(&mut rng);
                if net.node(id).up && rng.random() {
                    net.crash(id);
                }
            }
            81..=82 => {
                if let Some(id) = ids.iter().copied().find(|&id| !net.node(id).up) {
                    net.restart(id);
                }
            }
            83 => {
                let (a, b) = (pick(&mut rng), pick(&mut rng));
                if a != b {
                    net.cut_link(a, b);
                }
            }
            84..=86 => net.heal(),
            87 => {
                let id = pick(&mut rng);
                net.nodes.get_mut(&id).unwrap().stalled = true;
            }
            88..=90 => {
                if let Some(id) = ids.iter().copied().find(|&id| net.node(id).stalled) {
                    net.unstall(id);
                }
            }
            91..=92 => {
                let id = pick(&mut rng);
                let applied = net.node(id).applied_index();
                if net.node(id).up && applied > 0 {
                    let _ = net.raft(id).compact(applied, vec![seed as u8; 20]);
                    net.process(id);
                }
            }
            93..=94 => {
                if let Some(leader) = net.leader() {
                    let _ = net.raft(leader).transfer_leadership(pick(&mut rng));
                    net.process(leader);
                }
            }
            95..=96 => {
                if let Some(leader) = net.leader() {
                    let target = pick(&mut rng);
                    let change = match rng.random_range(0..4) {
                        0 => MembershipChange::AddLearner(target),
                        1 => MembershipChange::PromoteLearner(target),
                        2 => MembershipChange::DemoteVoter(target),
                        _ => MembershipChange::RemoveNode(target),
                    };
                    let _ = net.raft(leader).propose_membership(change);
                    net.process(leader);
                }
            }
            _ => {
                let id = pick(&mut rng);
                if net.node(id).up {
                    let _ = net.raft(id).read_index(rng.random());
                    net.process(id);
                }
            }
        }
        checker.check(&net, seed);
        if step % 10 == 0 {
            checker.check_logs(&net, seed);
        }
        if let Some(watch) = watched {
            let node = net.node(watch);
            let now = (
                node.up,
                node.stalled,
                node.raft.role(),
                node.raft.term(),
                node.raft.last_index(),
                node.raft.persisted_index(),
            );
            if Some(now) != last_seen {
                eprintln!("step {step} action {action}: node {watch} up,stalled,role,term,last,persisted = {now:?}");
                last_seen = Some(now);
            }
        }
    }
    // Liveness: everything healed and up, stalls over.
    net.heal();
    for id in ids.clone() {
        if !net.node(id).up {
            net.restart(id);
        }
        if net.node(id).stalled {
            net.unstall(id);
        }
    }
    let elected = net.run_until(2000, |n| {
        n.leader()
            .is_some_and(|l| n.node(l).raft.commit_index() == n.node(l).raft.last_index())
    });
    if elected.is_none() {
        for node in net.nodes.values() {
            eprintln!(
                "{:?} persisted {} applied {}",
                node.raft.status(),
                node.raft.persisted_index(),
                node.applied_index()
            );
        }
        for pr in net
            .leader()
            .map(|l| net.node(l).raft.progress())
            .unwrap_or_default()
        {
            eprintln!("{pr:?}");
        }
    }
    assert!(elected.is_some(), "seed {seed}: no leader after healing");
    let mut accepted = None;
    for _ in 0..100 {
        if let Some(leader) = net.leader() {
            if let Ok(id) = net.raft(leader).propose(b"final".to_vec(), None) {
                net.process(leader);
                accepted = Some((leader, id));
                break;
            }
        }
        net.run(1);
    }
    let (leader, id) =
        accepted.unwrap_or_else(|| panic!("seed {seed}: no proposal accepted after healing"));
    net.run(50);
    checker.check(&net, seed);
    if std::env::var("BATON_CORE_SOAK_VERBOSE").is_ok() {
        eprintln!(
            "seed {seed}: proposals {proposals}, refused {refusals:?}, committed {}, terms with a leader {}, delivered {:?}, membership {:?}",
            net.node(leader).raft.commit_index(),
            checker.leader_of_term.len(),
            net.delivered_kinds,
            net.node(leader).raft.membership()
        );
    }
    for voter in net.raft(leader).membership().voters.clone() {
        assert!(
            net.raft(voter).commit_index() >= id.index,
            "seed {seed}: voter {voter} did not catch up"
        );
    }
}

#[test]
fn soak_random_faults_keep_safety_and_recover_liveness() {
    if let Some(seed) = std::env::var("BATON_CORE_SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        run_seed(seed);
        return;
    }
    for seed in 0..seeds() {
        run_seed(seed);
    }
}
