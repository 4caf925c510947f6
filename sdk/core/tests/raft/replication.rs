//! §5.3 log replication, §5.4 safety of commitment, §10.2.1 persistence ordering.

use crate::harness::{config, membership, Network};
use baton_core::{
    AppendOutcome, EntryPayload, Message, MessageBody, PersistedState, RaftNode, Role,
};

#[test]
fn s5_3_leader_replicates_and_every_node_applies_in_order() {
    let mut net = Network::new(&[1, 2, 3]);
    net.elect(1);
    for i in 0..20 {
        net.propose(1, format!("cmd{i}").as_bytes());
    }
    net.deliver_all();
    net.run(3);
    let expected: Vec<Vec<u8>> = (0..20).map(|i| format!("cmd{i}").into_bytes()).collect();
    for id in [1, 2, 3] {
        assert_eq!(net.node(id).applied_commands(), expected, "node {id}");
    }
}

#[test]
fn s5_3_proposal_on_follower_is_refused_with_leader_hint() {
    let mut net = Network::new(&[1, 2, 3]);
    net.elect(1);
    let err = net.raft(2).propose(b"x".to_vec(), None).unwrap_err();
    assert_eq!(err, baton_core::ProposeError::NotLeader { leader: Some(1) });
}

#[test]
fn s5_3_conflicting_uncommitted_entries_are_overwritten() {
    let mut net = Network::new(&[1, 2, 3]);
    net.elect(1);
    // The leader appends entries nobody else receives.
    net.isolate(1);
    for i in 0..5 {
        net.propose(1, format!("lost{i}").as_bytes());
    }
    net.drop_all();
    // The others elect a leader and commit different entries.
    let elected = net.run_until(100, |n| n.leaders().iter().any(|&l| l != 1));
    assert!(elected.is_some());
    let leader = net.leaders().into_iter().find(|&l| l != 1).unwrap();
    for i in 0..3 {
        net.propose(leader, format!("kept{i}").as_bytes());
    }
    net.deliver_all();
    net.heal();
    net.run(10);
    let expected: Vec<Vec<u8>> = (0..3).map(|i| format!("kept{i}").into_bytes()).collect();
    assert_eq!(
        net.node(1).applied_commands(),
        expected,
        "the old leader's suffix was replaced"
    );
    assert_eq!(net.raft(1).last_index(), net.raft(leader).last_index());
}

#[test]
fn s5_3_fast_backoff_skips_a_whole_conflicting_term_in_one_round_trip() {
    let mut net = Network::with_config(&[1, 2, 3], &[], |c| c.max_entries_per_append = 1000);
    net.elect(1);
    net.isolate(1);
    for i in 0..50 {
        net.propose(1, format!("lost{i}").as_bytes());
    }
    net.drop_all();
    assert!(net
        .run_until(100, |n| n.leaders().iter().any(|&l| l != 1))
        .is_some());
    let leader = net.leaders().into_iter().find(|&l| l != 1).unwrap();
    net.propose(leader, b"x");
    net.deliver_all();
    net.heal();
    // Count the rejections node 1 sends while catching up.
    let mut rejections = 0;
    for _ in 0..20 {
        net.tick_all();
        net.process_all();
        for _ in 0..10_000 {
            let Some(msg) = net.queue.front().cloned() else {
                break;
            };
            if msg.from == 1 {
                if let MessageBody::AppendEntriesResponse {
                    outcome: AppendOutcome::Rejected { .. },
                    ..
                } = msg.body
                {
                    rejections += 1;
                }
            }
            net.deliver_one();
        }
    }
    assert_eq!(net.raft(1).last_index(), net.raft(leader).last_index());
    assert!(
        rejections <= 2,
        "one hint skips the conflicting term: {rejections} rejections"
    );
}

/// Figure 3.7 (Figure 8 of the paper): an entry of an older term is never committed by
/// counting replicas; only an entry of the leader's own term commits it.
#[test]
fn s5_4_2_old_term_entry_is_not_committed_by_counting_replicas() {
    let mut net = Network::with_config(&[1, 2, 3], &[], |c| {
        c.max_entries_per_append = 1;
        c.check_quorum = false;
    });
    net.elect(1);
    net.isolate(1);
    let old = net.propose(1, b"old-term");
    net.drop_all();
    net.crash(1);
    net.restart(1);
    net.heal();
    // Node 1's log is the longest in the highest term: it wins again, in a new term.
    net.raft(1).campaign().unwrap();
    net.process(1);
    for _ in 0..100 {
        if net.raft(1).role() == Role::Leader {
            break;
        }
        net.deliver_one();
    }
    assert_eq!(net.raft(1).role(), Role::Leader);
    let term = net.raft(1).term();
    assert!(term > old.term);
    // Deliver only the first append (the old entry) to node 2 and its answer.
    net.cut_link(1, 3);
    let mut old_entry_acked = false;
    let mut probes_on_top_of_old = 0;
    for _ in 0..1000 {
        let Some(msg) = net.queue.pop_front() else {
            break;
        };
        // The first append on top of the old entry is a probe node 2 rejects (it lacks
        // the old entry); later ones would carry the new term's entry: withheld.
        let carries_only_old = match &msg.body {
            MessageBody::AppendEntries { prev_log_index, .. } if *prev_log_index >= old.index => {
                probes_on_top_of_old += 1;
                probes_on_top_of_old == 1
            }
            _ => true,
        };
        if carries_only_old && net.link_ok(&msg) {
            let to = msg.to;
            if msg.from == 2
                && matches!(msg.body, MessageBody::AppendEntriesResponse { outcome: AppendOutcome::Accepted { match_index }, .. } if match_index >= old.index)
            {
                old_entry_acked = true;
            }
            net.raft(to).step(msg).unwrap();
            net.process(to);
        }
    }
    assert!(old_entry_acked, "a quorum (1 and 2) holds the old entry");
    assert!(
        net.raft(1).commit_index() < old.index,
        "but it is not committed by counting"
    );
    net.heal();
    net.run(5);
    assert!(
        net.raft(1).commit_index() > old.index,
        "the new term's entry commits both"
    );
}

#[test]
fn s5_3_pipelining_bounds_appends_in_flight_per_follower() {
    let max_inflight = 4;
    let mut net = Network::with_config(&[1, 2, 3], &[], |c| {
        c.max_inflight_appends = max_inflight;
        c.max_entries_per_append = 1;
    });
    net.elect(1);
    net.run(3);
    for i in 0..20 {
        net.propose(1, format!("p{i}").as_bytes());
    }
    let appends_to_2 = net
        .queue
        .iter()
        .filter(|m| m.to == 2 && matches!(&m.body, MessageBody::AppendEntries { entries, .. } if !entries.is_empty()))
        .count();
    assert_eq!(
        appends_to_2, max_inflight,
        "window full, no more appends until acks"
    );
    net.deliver_all();
    assert_eq!(
        net.raft(1).commit_index(),
        net.raft(1).last_index(),
        "acks reopen the window"
    );
}

#[test]
fn s5_3_batching_respects_entry_and_byte_limits() {
    let mut net = Network::with_config(&[1, 2], &[], |c| {
        c.max_entries_per_append = 3;
        c.max_append_bytes = 1000;
    });
    net.elect(1);
    net.run(3);
    net.isolate(2);
    for _ in 0..6 {
        net.propose(1, &[7u8; 10]);
    }
    net.propose(1, &[9u8; 2000]);
    net.propose(1, &[9u8; 10]);
    net.drop_all();
    net.heal();
    net.run(3);
    let mut sizes = Vec::new();
    for _ in 0..100 {
        net.tick_all();
        net.process_all();
        for msg in net.queue.iter() {
            if let MessageBody::AppendEntries { entries, .. } = &msg.body {
                if !entries.is_empty() {
                    sizes.push(entries.len());
                }
            }
        }
        net.deliver_all();
        if net.raft(2).last_index() == net.raft(1).last_index() {
            break;
        }
    }
    assert_eq!(net.raft(2).last_index(), net.raft(1).last_index());
    assert!(sizes.iter().all(|&n| n <= 3), "batches: {sizes:?}");
}

#[test]
fn s5_3_lost_appends_are_recovered_through_heartbeats() {
    let mut net = Network::new(&[1, 2, 3]);
    net.elect(1);
    net.run(3);
    for i in 0..10 {
        net.propose(1, format!("p{i}").as_bytes());
    }
    net.drop_all();
    net.run(10);
    for id in [2, 3] {
        assert_eq!(
            net.node(id).applied_commands().len(),
            10,
            "node {id} caught up"
        );
    }
}

#[test]
fn s10_2_1_follower_acks_only_after_its_entries_are_durable() {
    let mut net = Network::new(&[1, 2, 3]);
    net.elect(1);
    net.nodes.get_mut(&2).unwrap().stalled = true;
    net.nodes.get_mut(&3).unwrap().stalled = true;
    let id = net.propose(1, b"x");
    net.deliver_all();
    assert!(
        net.raft(1).commit_index() < id.index,
        "no durable ack, no commit"
    );
    net.unstall(2);
    net.deliver_all();
    assert_eq!(net.raft(1).commit_index(), id.index);
}

#[test]
fn s10_2_1_committed_entries_never_exceed_local_durability() {
    let mut net = Network::new(&[1, 2, 3]);
    net.elect(1);
    net.nodes.get_mut(&3).unwrap().stalled = true;
    let id = net.propose(1, b"x");
    net.run(5);
    assert!(
        net.raft(3).commit_index() >= id.index,
        "node 3 learns the commit index"
    );
    assert!(net.node(3).applied_index() < id.index);
    let handed_out: usize = {
        let node = net.nodes.get_mut(&3).unwrap();
        node.unpersisted
            .iter()
            .map(|r| {
                r.committed_entries
                    .iter()
                    .filter(|e| e.index >= id.index)
                    .count()
            })
            .sum()
    };
    assert_eq!(
        handed_out, 0,
        "not handed out for application before it is durable"
    );
    net.unstall(3);
    net.run(3);
    assert_eq!(net.node(3).applied_commands(), vec![b"x".to_vec()]);
}

#[test]
fn s10_2_1_leader_messages_may_leave_before_persistence() {
    let mut net = Network::new(&[1, 2, 3]);
    net.elect(1);
    net.raft(1).propose(b"x".to_vec(), None).unwrap();
    let ready = net.raft(1).ready();
    assert_eq!(ready.entries.len(), 1);
    assert!(ready
        .messages
        .iter()
        .any(|m| matches!(m.body, MessageBody::AppendEntries { .. })));
    assert!(ready.persisted_messages.is_empty());
}

#[test]
fn s5_3_restarted_node_recovers_its_log_and_reapplies_committed_entries() {
    let mut net = Network::new(&[1, 2, 3]);
    net.elect(1);
    for i in 0..5 {
        net.propose(1, format!("p{i}").as_bytes());
    }
    net.run(3);
    net.crash(2);
    net.restart(2);
    net.process(2);
    assert_eq!(
        net.node(2).applied_commands().len(),
        5,
        "re-applied from the persisted commit index"
    );
    net.propose(1, b"after");
    net.run(3);
    assert_eq!(net.node(2).applied_commands().len(), 6);
}

#[test]
fn s5_3_pipelined_readies_advance_in_order() {
    let mut cfg = config(1);
    cfg.pre_vote = false;
    let mut node = RaftNode::new(cfg, PersistedState::bootstrap(membership(&[1], &[]))).unwrap();
    node.campaign().unwrap();
    let r0 = node.ready();
    assert!(r0.hard_state.is_some());
    node.advance(r0.number);
    assert_eq!(node.role(), Role::Leader);
    let r1 = node.ready();
    node.propose(b"a".to_vec(), None).unwrap();
    let r2 = node.ready();
    node.propose(b"b".to_vec(), None).unwrap();
    let r3 = node.ready();
    assert!(r1.committed_entries.iter().all(|e| e.index <= 1));
    assert_eq!(node.commit_index(), 1, "nothing durable yet");
    node.advance(r2.number);
    assert_eq!(node.commit_index(), 3, "noop and a are durable");
    node.advance(r3.number);
    assert_eq!(node.commit_index(), 4);
    let r4 = node.ready();
    let applied: Vec<_> = r4.committed_entries.iter().map(|e| e.index).collect();
    assert_eq!(applied, vec![2, 3, 4]);
    assert!(matches!(
        r4.committed_entries[1].payload,
        EntryPayload::Command { .. }
    ));
    assert_eq!(node.role(), Role::Leader);
}

#[test]
fn s5_3_heartbeat_commit_is_bounded_by_follower_match() {
    let mut net = Network::new(&[1, 2, 3]);
    net.elect(1);
    net.isolate(3);
    net.propose(1, b"x");
    net.run(3);
    net.heal();
    net.tick(1);
    net.tick(1);
    let heartbeat_to_3 = net
        .queue
        .iter()
        .find(|m| m.to == 3 && matches!(m.body, MessageBody::Heartbeat { .. }))
        .cloned();
    let Some(Message {
        body: MessageBody::Heartbeat { leader_commit, .. },
        ..
    }) = heartbeat_to_3
    else {
        panic!("heartbeat expected")
    };
    assert!(
        leader_commit < net.raft(1).commit_index(),
        "a follower never learns a commit beyond what it holds"
    );
}

/// A follower comes back under its id with an empty log (a reinstall that kept the
/// identity). The leader's progress still says it holds every entry, so each probe above
/// its log's end is refused at once: the leader must start it over from where its log
/// ends instead of probing the same index for ever.
#[test]
fn a_follower_that_lost_its_log_is_replicated_again_from_the_start() {
    let mut net = Network::new(&[1, 2, 3]);
    net.elect(1);
    for n in 0..5u8 {
        net.propose(1, &[n]);
    }
    net.deliver_all();
    assert_eq!(net.node(3).applied_commands().len(), 5);
    net.crash(3);
    net.add_node_with(config(3), PersistedState::default());
    net.propose(1, b"after");
    let mut delivered = 0;
    while net.deliver_one() {
        delivered += 1;
        assert!(
            delivered < 10_000,
            "the leader and the amnesiac follower ping-pong"
        );
    }
    assert_eq!(
        net.node(3).applied_commands(),
        net.node(1).applied_commands(),
        "the follower holds the whole log again"
    );
}
