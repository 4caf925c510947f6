//! More §5 cases from the paper's figures (the etcd-io/raft paper-test checklist,
//! written anew against this API).

use crate::harness::{config, membership, Network};
use baton_core::{
    Entry, EntryPayload, HardState, Message, MessageBody, PersistedState, RaftNode, Role, Term,
};

/// A log whose entry 1 is the bootstrap configuration and whose entries 2.. have `terms`.
fn persisted(voters: &[u64], terms: &[Term], term: Term) -> PersistedState {
    let mut state = PersistedState::bootstrap(membership(voters, &[]));
    for (position, &t) in terms.iter().enumerate() {
        state.entries.push(Entry {
            term: t,
            index: position as u64 + 2,
            payload: EntryPayload::Noop,
        });
    }
    state.hard_state = HardState {
        term,
        vote: None,
        commit: 1,
    };
    state
}

#[test]
fn s5_2_leader_sends_a_heartbeat_every_interval() {
    let mut net = Network::new(&[1, 2, 3]);
    net.elect(1);
    for _ in 0..4 {
        net.deliver_all();
        net.tick(1);
        let first = net
            .queue
            .iter()
            .filter(|m| matches!(m.body, MessageBody::Heartbeat { .. }))
            .count();
        assert_eq!(first, 0, "no heartbeat before the interval");
        net.tick(1);
        let heartbeats: Vec<u64> = net
            .queue
            .iter()
            .filter(|m| matches!(m.body, MessageBody::Heartbeat { .. }))
            .map(|m| m.to)
            .collect();
        assert_eq!(heartbeats, vec![2, 3]);
    }
}

#[test]
fn s5_2_node_starts_as_follower_without_leader() {
    let node = RaftNode::new(
        config(1),
        PersistedState::bootstrap(membership(&[1, 2, 3], &[])),
    )
    .unwrap();
    assert_eq!(node.role(), Role::Follower);
    assert_eq!(node.leader_id(), None);
    assert_eq!(node.term(), 0);
    assert_eq!(
        node.commit_index(),
        1,
        "the bootstrap configuration is committed"
    );
}

#[test]
fn s5_4_1_up_to_date_comparison_decides_votes() {
    // Voter's log: terms [1, 2] at 2..3 (last term 2, last index 3).
    let cases = [
        (3u64, 2u64, true), // same
        (4, 2, true),       // longer, same term
        (2, 2, false),      // shorter, same term
        (2, 3, true),       // later term wins even if shorter
        (10, 1, false),     // earlier term loses even if longer
    ];
    for (last_log_index, last_log_term, expected) in cases {
        let mut cfg = config(1);
        cfg.pre_vote = false;
        let mut node = RaftNode::new(cfg, persisted(&[1, 2, 3], &[1, 2], 3)).unwrap();
        node.step(Message {
            from: 2,
            to: 1,
            term: 4,
            body: MessageBody::RequestVote {
                pre_vote: false,
                last_log_index,
                last_log_term,
                leader_transfer: false,
            },
        })
        .unwrap();
        let ready = node.ready();
        let granted = ready.persisted_messages.iter().any(|m| {
            matches!(
                m.body,
                MessageBody::RequestVoteResponse { granted: true, .. }
            )
        });
        assert_eq!(
            granted, expected,
            "candidate log ({last_log_index}, {last_log_term})"
        );
    }
}

#[test]
fn s5_3_leader_commits_once_a_majority_acknowledges() {
    for size in [1u64, 3, 5] {
        let voters: Vec<u64> = (1..=size).collect();
        let mut net = Network::new(&voters);
        net.elect(1);
        let majority = size as usize / 2 + 1;
        // Cut everyone beyond the majority.
        for id in (majority as u64 + 1)..=size {
            net.isolate(id);
        }
        let id = net.propose(1, b"x");
        net.deliver_all();
        assert_eq!(
            net.raft(1).commit_index(),
            id.index,
            "cluster of {size}: a majority suffices"
        );
        if majority > 1 {
            net.isolate(majority as u64);
            let id2 = net.propose(1, b"y");
            net.deliver_all();
            assert!(
                net.raft(1).commit_index() < id2.index,
                "cluster of {size}: less than a majority does not"
            );
        }
    }
}

/// Figure 3.6 (Figure 7 of the paper): followers with missing, extra and conflicting
/// entries all end up with the leader's log.
#[test]
fn s5_3_leader_brings_every_divergent_follower_log_in_line() {
    let leader_log: &[Term] = &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6];
    let followers: [&[Term]; 6] = [
        &[1, 1, 1, 4, 4, 5, 5, 6, 6],
        &[1, 1, 1, 4],
        &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6],
        &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7],
        &[1, 1, 1, 4, 4, 4, 4],
        &[1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3],
    ];
    for (case, follower_log) in followers.iter().enumerate() {
        let voters = [1, 2, 3];
        let mut net = Network::new(&voters);
        let configure = |id| {
            let mut c = config(id);
            c.pre_vote = false;
            c.max_entries_per_append = 2;
            c
        };
        net.add_node_with(configure(1), persisted(&voters, leader_log, 7));
        net.add_node_with(configure(2), persisted(&voters, follower_log, 7));
        net.add_node_with(configure(3), persisted(&voters, leader_log, 7));
        net.elect(1);
        net.run(20);
        let leader_last = net.raft(1).last_index();
        assert_eq!(net.raft(2).last_index(), leader_last, "case {case}");
        for index in 1..=leader_last {
            assert_eq!(
                net.raft(2).entry_term(index),
                net.raft(1).entry_term(index),
                "case {case} index {index}"
            );
        }
        assert_eq!(
            net.raft(2).commit_index(),
            net.raft(1).commit_index(),
            "case {case}"
        );
    }
}

#[test]
fn s5_3_follower_appends_and_commits_from_leader_commit() {
    let mut cfg = config(2);
    cfg.pre_vote = false;
    let mut node = RaftNode::new(cfg, persisted(&[1, 2, 3], &[1, 1], 1)).unwrap();
    let entries = vec![
        Entry {
            term: 1,
            index: 4,
            payload: EntryPayload::Noop,
        },
        Entry {
            term: 1,
            index: 5,
            payload: EntryPayload::Noop,
        },
    ];
    node.step(Message {
        from: 1,
        to: 2,
        term: 1,
        body: MessageBody::AppendEntries {
            prev_log_index: 3,
            prev_log_term: 1,
            entries,
            leader_commit: 4,
        },
    })
    .unwrap();
    assert_eq!(node.last_index(), 5);
    assert_eq!(node.commit_index(), 4);
    let ready = node.ready();
    assert_eq!(ready.entries.len(), 2);
    let applied: Vec<u64> = ready.committed_entries.iter().map(|e| e.index).collect();
    assert_eq!(
        applied,
        vec![1, 2, 3],
        "entry 4 is committed but not durable here yet"
    );
    node.advance(ready.number);
    let ready = node.ready();
    let applied: Vec<u64> = ready.committed_entries.iter().map(|e| e.index).collect();
    assert_eq!(applied, vec![4]);
}

#[test]
fn s5_3_follower_rejects_append_whose_previous_entry_does_not_match() {
    let mut cfg = config(2);
    cfg.pre_vote = false;
    let mut node = RaftNode::new(cfg, persisted(&[1, 2, 3], &[1, 1, 2, 2], 3)).unwrap();
    for (prev_log_index, prev_log_term, expected_hint_index, expected_hint_term) in
        [(5, 3, 4, Some(2)), (9, 3, 6, None), (3, 2, 2, Some(1))]
    {
        node.step(Message {
            from: 1,
            to: 2,
            term: 3,
            body: MessageBody::AppendEntries {
                prev_log_index,
                prev_log_term,
                entries: vec![],
                leader_commit: 1,
            },
        })
        .unwrap();
        let ready = node.ready();
        let outcome = ready
            .messages
            .iter()
            .find_map(|m| match m.body {
                MessageBody::AppendEntriesResponse { outcome, .. } => Some(outcome),
                _ => None,
            })
            .expect("answered");
        assert_eq!(
            outcome,
            baton_core::AppendOutcome::Rejected {
                prev_log_index,
                hint: baton_core::ConflictHint {
                    index: expected_hint_index,
                    term: expected_hint_term
                }
            }
        );
    }
}
