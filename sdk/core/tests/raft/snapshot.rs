//! Chapter 5: log compaction and InstallSnapshot streaming.

use crate::harness::Network;
use baton_core::{CompactError, MembershipChange, MessageBody, Role};

fn compact_all_applied(net: &mut Network, id: u64) -> u64 {
    let applied = net.node(id).applied_index();
    net.raft(id)
        .compact(applied, format!("state@{applied}").into_bytes().repeat(20))
        .unwrap();
    net.process(id);
    applied
}

#[test]
fn s5_1_compaction_drops_the_log_and_hands_out_the_snapshot_to_persist() {
    let mut net = Network::new(&[1, 2, 3]);
    net.elect(1);
    for i in 0..10 {
        net.propose(1, format!("p{i}").as_bytes());
    }
    net.run(3);
    let applied = net.node(1).applied_index();
    net.raft(1).compact(applied, b"state".to_vec()).unwrap();
    let ready = net.raft(1).ready();
    let compaction = ready.compaction.expect("persist the compaction");
    assert_eq!(compaction.meta.last_index, applied);
    assert_eq!(
        compaction.meta.membership,
        crate::harness::membership(&[1, 2, 3], &[])
    );
    assert_eq!(
        net.raft(1).compact(applied, vec![]),
        Err(CompactError::AlreadyCompacted {
            index: applied,
            snapshot_index: applied
        })
    );
    assert_eq!(
        net.raft(1).compact(applied + 5, vec![]),
        Err(CompactError::NotApplied {
            index: applied + 5,
            applied
        })
    );
    net.propose(1, b"after");
    net.run(3);
    assert_eq!(net.node(2).applied_commands().len(), 11);
}

#[test]
fn s5_3_lagging_follower_receives_the_snapshot_in_chunks() {
    let mut net = Network::with_config(&[1, 2, 3], &[], |c| c.snapshot_chunk_bytes = 16);
    net.elect(1);
    net.isolate(3);
    for i in 0..10 {
        net.propose(1, format!("p{i}").as_bytes());
    }
    net.run(3);
    let snapshot_index = compact_all_applied(&mut net, 1);
    net.heal();
    net.run(50);
    let chunks = net
        .delivered_kinds
        .get("InstallSnapshot")
        .copied()
        .unwrap_or(0);
    assert!(chunks > 5, "streamed in several chunks ({chunks})");
    assert_eq!(net.node(3).restored_from, Some(snapshot_index));
    assert_eq!(
        net.node(3).storage.snapshot.as_ref().unwrap().data,
        format!("state@{snapshot_index}").into_bytes().repeat(20)
    );
    net.propose(1, b"after");
    net.run(3);
    assert_eq!(net.node(3).applied_commands(), vec![b"after".to_vec()]);
    assert_eq!(net.raft(3).commit_index(), net.raft(1).commit_index());
}

#[test]
fn s5_3_snapshot_stream_resumes_after_lost_chunks() {
    let mut net = Network::with_config(&[1, 2, 3], &[], |c| c.snapshot_chunk_bytes = 8);
    net.elect(1);
    net.isolate(3);
    for i in 0..10 {
        net.propose(1, format!("p{i}").as_bytes());
    }
    net.run(3);
    let snapshot_index = compact_all_applied(&mut net, 1);
    net.heal();
    // Drop every third snapshot chunk for a while.
    let mut seen = 0;
    for _ in 0..100 {
        net.tick_all();
        net.process_all();
        for _ in 0..10_000 {
            let Some(msg) = net.queue.pop_front() else {
                break;
            };
            if matches!(msg.body, MessageBody::InstallSnapshot { .. }) {
                seen += 1;
                if seen % 3 == 0 && seen < 60 {
                    continue;
                }
            }
            if net.link_ok(&msg) {
                let to = msg.to;
                net.raft(to).step(msg).unwrap();
                net.process(to);
            }
        }
        if net.node(3).restored_from == Some(snapshot_index) {
            break;
        }
    }
    assert_eq!(
        net.node(3).restored_from,
        Some(snapshot_index),
        "installed despite losses"
    );
    assert_eq!(
        net.node(3).storage.snapshot.as_ref().unwrap().data.len(),
        format!("state@{snapshot_index}").len() * 20
    );
}

#[test]
fn s5_3_snapshot_stream_restarts_with_a_newer_snapshot() {
    let mut net = Network::with_config(&[1, 2, 3], &[], |c| c.snapshot_chunk_bytes = 8);
    net.elect(1);
    net.isolate(3);
    for i in 0..10 {
        net.propose(1, format!("p{i}").as_bytes());
    }
    net.run(3);
    compact_all_applied(&mut net, 1);
    net.heal();
    net.tick_all();
    net.process_all();
    // Part of the first snapshot arrives, then the leader compacts again.
    for _ in 0..3 {
        net.deliver_one();
    }
    net.propose(1, b"more");
    net.cut_link(1, 3);
    net.run(2);
    net.heal();
    let newer = compact_all_applied(&mut net, 1);
    net.run(30);
    assert_eq!(net.node(3).restored_from, Some(newer));
    assert_eq!(net.raft(3).commit_index(), net.raft(1).commit_index());
}

#[test]
fn s5_3_new_learner_joins_from_a_snapshot() {
    let mut net = Network::new(&[1, 2, 3]);
    net.elect(1);
    for i in 0..10 {
        net.propose(1, format!("p{i}").as_bytes());
    }
    net.run(3);
    compact_all_applied(&mut net, 1);
    net.add_joining_node(4);
    net.raft(1)
        .propose_membership(MembershipChange::AddLearner(4))
        .unwrap();
    net.run(20);
    assert!(net.node(4).restored_from.is_some());
    assert_eq!(net.raft(4).role(), Role::Learner);
    assert_eq!(net.raft(4).commit_index(), net.raft(1).commit_index());
    net.crash(4);
    net.restart(4);
    let expected = net.raft(1).membership().clone();
    assert_eq!(
        net.raft(4).membership(),
        &expected,
        "recovers from its snapshot"
    );
}
