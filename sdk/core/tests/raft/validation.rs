//! Every input from a peer is validated: a malformed message is an error and changes
//! nothing; no message makes the node panic.

use crate::harness::{membership, Network};
use baton_core::{
    AppendOutcome, ConflictHint, Entry, EntryPayload, Fitness, Message, MessageBody, SnapshotMeta,
    StepError,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn leader_net() -> Network {
    let mut net = Network::new(&[1, 2, 3]);
    net.elect(1);
    net.run(2);
    net
}

fn assert_refused_without_change(net: &mut Network, to: u64, msg: Message) -> StepError {
    let before = net.raft(to).status();
    let progress_before = net.raft(to).progress();
    let had_ready = net.raft(to).has_ready();
    let err = net
        .raft(to)
        .step(msg)
        .expect_err("malformed message must be refused");
    assert_eq!(net.raft(to).status(), before);
    assert_eq!(net.raft(to).progress(), progress_before);
    assert_eq!(net.raft(to).has_ready(), had_ready);
    err
}

#[test]
fn malformed_messages_are_refused_and_change_nothing() {
    let mut net = leader_net();
    let term = net.raft(2).term();
    let last = net.raft(2).last_index();
    let entry = |index, term| Entry {
        term,
        index,
        payload: EntryPayload::Noop,
    };
    let to_follower = |body| Message {
        from: 1,
        to: 2,
        term,
        body,
    };
    let cases = vec![
        Message {
            from: 1,
            to: 3,
            term,
            body: MessageBody::TimeoutNow,
        },
        Message {
            from: 2,
            to: 2,
            term,
            body: MessageBody::TimeoutNow,
        },
        to_follower(MessageBody::AppendEntries {
            prev_log_index: last,
            prev_log_term: term,
            entries: vec![entry(last + 2, term)],
            leader_commit: 0,
        }),
        to_follower(MessageBody::AppendEntries {
            prev_log_index: last,
            prev_log_term: term,
            entries: vec![entry(last + 1, term + 1)],
            leader_commit: 0,
        }),
        to_follower(MessageBody::AppendEntries {
            prev_log_index: u64::MAX,
            prev_log_term: term,
            entries: vec![entry(0, term)],
            leader_commit: 0,
        }),
        to_follower(MessageBody::AppendEntries {
            prev_log_index: last,
            prev_log_term: term,
            entries: vec![Entry {
                term,
                index: last + 1,
                payload: EntryPayload::Membership(membership(&[], &[4])),
            }],
            leader_commit: 0,
        }),
        to_follower(MessageBody::InstallSnapshot {
            meta: SnapshotMeta {
                last_index: 5,
                last_term: term,
                membership: membership(&[1], &[]),
            },
            offset: 10,
            total_bytes: 12,
            data: vec![0; 5],
        }),
        to_follower(MessageBody::InstallSnapshot {
            meta: SnapshotMeta {
                last_index: 5,
                last_term: term + 3,
                membership: membership(&[1], &[]),
            },
            offset: 0,
            total_bytes: 1,
            data: vec![0],
        }),
        Message {
            from: 3,
            to: 2,
            term,
            body: MessageBody::Heartbeat {
                leader_commit: 0,
                read_context: 0,
                successor_rank: None,
            },
        },
        Message {
            from: 3,
            to: 2,
            term: 0,
            body: MessageBody::TimeoutNow,
        },
        Message {
            from: 3,
            to: 2,
            term: term + 1,
            body: MessageBody::RequestVote {
                pre_vote: false,
                last_log_index: 1,
                last_log_term: term + 2,
                leader_transfer: true,
            },
        },
    ];
    for msg in cases {
        assert_refused_without_change(&mut net, 2, msg);
    }
    let leader_last = net.raft(1).last_index();
    let to_leader = |from, body| Message {
        from,
        to: 1,
        term,
        body,
    };
    let cases = vec![
        to_leader(
            2,
            MessageBody::AppendEntriesResponse {
                outcome: AppendOutcome::Accepted {
                    match_index: leader_last + 1,
                },
                fitness: Fitness(1),
            },
        ),
        to_leader(
            2,
            MessageBody::AppendEntriesResponse {
                outcome: AppendOutcome::Rejected {
                    prev_log_index: leader_last + 3,
                    hint: ConflictHint {
                        index: 1,
                        term: None,
                    },
                },
                fitness: Fitness(1),
            },
        ),
        to_leader(
            2,
            MessageBody::AppendEntriesResponse {
                outcome: AppendOutcome::Rejected {
                    prev_log_index: 1,
                    hint: ConflictHint {
                        index: 9,
                        term: None,
                    },
                },
                fitness: Fitness(1),
            },
        ),
        to_leader(
            2,
            MessageBody::HeartbeatResponse {
                read_context: 0,
                fitness: Fitness(5000),
            },
        ),
        to_leader(
            9,
            MessageBody::HeartbeatResponse {
                read_context: 0,
                fitness: Fitness(1),
            },
        ),
        to_leader(
            3,
            MessageBody::AppendEntries {
                prev_log_index: 0,
                prev_log_term: 0,
                entries: vec![],
                leader_commit: 0,
            },
        ),
    ];
    for msg in cases {
        assert_refused_without_change(&mut net, 1, msg);
    }
}

#[test]
fn random_messages_never_panic_and_safety_holds() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut net = leader_net();
    for i in 0..3000u32 {
        let to = rng.random_range(1..=3u64);
        let from = rng.random_range(1..=4u64);
        let term = net.raft(to).term() + rng.random_range(0..3u64) - 1.min(net.raft(to).term());
        let index = rng.random_range(0..12u64);
        let body = match rng.random_range(0..9u32) {
            0 => MessageBody::RequestVote {
                pre_vote: rng.random(),
                last_log_index: index,
                last_log_term: rng.random_range(0..=term),
                leader_transfer: rng.random(),
            },
            1 => MessageBody::RequestVoteResponse {
                pre_vote: rng.random(),
                granted: rng.random(),
            },
            2 => MessageBody::AppendEntries {
                prev_log_index: index,
                prev_log_term: rng.random_range(0..=term),
                entries: (0..rng.random_range(0..3u64))
                    .map(|k| Entry {
                        term,
                        index: index + 1 + k,
                        payload: EntryPayload::Noop,
                    })
                    .collect(),
                leader_commit: rng.random_range(0..12),
            },
            3 => MessageBody::AppendEntriesResponse {
                outcome: if rng.random() {
                    AppendOutcome::Accepted { match_index: index }
                } else {
                    AppendOutcome::Rejected {
                        prev_log_index: index,
                        hint: ConflictHint {
                            index: rng.random_range(0..=index + 1),
                            term: None,
                        },
                    }
                },
                fitness: Fitness(rng.random_range(0..1500)),
            },
            4 => MessageBody::Heartbeat {
                leader_commit: index,
                read_context: rng.random_range(0..5),
                successor_rank: Some(rng.random_range(0..4)),
            },
            5 => MessageBody::HeartbeatResponse {
                read_context: rng.random_range(0..50),
                fitness: Fitness(rng.random_range(0..1500)),
            },
            6 => MessageBody::InstallSnapshot {
                meta: SnapshotMeta {
                    last_index: index,
                    last_term: rng.random_range(0..=term),
                    membership: membership(&[1, 2, 3], &[]),
                },
                offset: rng.random_range(0..4),
                total_bytes: rng.random_range(0..8),
                data: vec![1; rng.random_range(0..4)],
            },
            7 => MessageBody::InstallSnapshotResponse {
                snapshot_index: index,
                next_offset: rng.random_range(0..10),
                complete: rng.random(),
                fitness: Fitness(rng.random_range(0..1500)),
            },
            _ => MessageBody::ReadIndexResponse {
                request_id: index,
                index: Some(index),
            },
        };
        // The protocol's safety rests on honest peers; random input must never crash the
        // node or break its own invariants (checked by debug assertions).
        let _ = net.raft(to).step(Message {
            from,
            to,
            term,
            body,
        });
        net.process(to);
        net.drop_all();
        if i % 50 == 0 {
            net.tick_all();
        }
    }
}
