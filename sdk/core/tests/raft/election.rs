//! §5.1, §5.2, §5.4.1 elections; §9.6 pre-vote; §6.2 / §4.2.3 check-quorum and leases.

use crate::harness::{config, membership, Network};
use baton_core::{AppendOutcome, Message, MessageBody, PersistedState, RaftNode, Role};

fn node_of(id: u64, voters: &[u64], pre_vote: bool) -> RaftNode {
    let mut cfg = config(id);
    cfg.pre_vote = pre_vote;
    RaftNode::new(cfg, PersistedState::bootstrap(membership(voters, &[]))).unwrap()
}

fn tick_until_role(node: &mut RaftNode, role: Role, ticks_max: usize) -> bool {
    for _ in 0..ticks_max {
        if node.role() == role {
            return true;
        }
        node.tick();
    }
    node.role() == role
}

#[test]
fn s5_1_higher_term_makes_any_node_a_follower_of_that_term() {
    let mut net = Network::new(&[1, 2, 3]);
    net.elect(1);
    let term = net.raft(1).term();
    let msg = Message {
        from: 2,
        to: 1,
        term: term + 5,
        body: MessageBody::AppendEntriesResponse {
            outcome: AppendOutcome::Accepted { match_index: 0 },
            fitness: Default::default(),
        },
    };
    net.raft(1).step(msg).unwrap();
    assert_eq!(net.raft(1).role(), Role::Follower);
    assert_eq!(net.raft(1).term(), term + 5);
}

#[test]
fn s5_1_stale_term_append_is_refused_and_answered_with_the_newer_term() {
    let mut node = node_of(1, &[1, 2, 3], true);
    node.step(Message {
        from: 2,
        to: 1,
        term: 3,
        body: MessageBody::Heartbeat {
            leader_commit: 0,
            read_context: 0,
            successor_rank: None,
        },
    })
    .unwrap();
    let _ = node.ready();
    node.step(Message {
        from: 3,
        to: 1,
        term: 2,
        body: MessageBody::AppendEntries {
            prev_log_index: 1,
            prev_log_term: 0,
            entries: vec![],
            leader_commit: 1,
        },
    })
    .unwrap();
    assert_eq!(node.leader_id(), Some(2), "a stale leader is not followed");
    let ready = node.ready();
    let answer = ready.messages.iter().find(|m| m.to == 3).expect("answered");
    assert_eq!(
        answer.term, 3,
        "the stale leader learns the newer term (etcd#9586)"
    );
}

#[test]
fn s5_2_follower_times_out_and_starts_election() {
    let mut node = node_of(1, &[1, 2, 3], false);
    assert!(tick_until_role(&mut node, Role::Candidate, 100));
    assert_eq!(node.term(), 1);
    let ready = node.ready();
    let hard = ready.hard_state.expect("new term and vote are persisted");
    assert_eq!((hard.term, hard.vote), (1, Some(1)));
    let requests: Vec<_> = ready
        .persisted_messages
        .iter()
        .filter(|m| {
            matches!(
                m.body,
                MessageBody::RequestVote {
                    pre_vote: false,
                    ..
                }
            )
        })
        .map(|m| m.to)
        .collect();
    assert_eq!(
        requests,
        vec![2, 3],
        "vote requests wait for the self-vote to be durable"
    );
    assert!(ready.messages.is_empty());
}

#[test]
fn s5_2_election_timeout_is_randomized_per_seed() {
    let mut timeouts = std::collections::BTreeSet::new();
    for seed in 0..20 {
        let mut cfg = config(1);
        cfg.pre_vote = false;
        cfg.rng_seed = seed;
        let mut node =
            RaftNode::new(cfg, PersistedState::bootstrap(membership(&[1, 2, 3], &[]))).unwrap();
        let mut ticks = 0;
        while node.role() != Role::Candidate {
            node.tick();
            ticks += 1;
            assert!(ticks < 100, "times out within a bounded time");
        }
        assert!(ticks >= 10, "never before the minimum election timeout");
        timeouts.insert(ticks);
    }
    assert!(
        timeouts.len() > 2,
        "different seeds draw different timeouts: {timeouts:?}"
    );
}

#[test]
fn s5_2_candidate_with_majority_becomes_leader_and_appends_noop() {
    let mut net = Network::new(&[1, 2, 3]);
    net.elect(1);
    assert_eq!(net.leaders(), vec![1]);
    for id in [2, 3] {
        assert_eq!(net.raft(id).leader_id(), Some(1));
        assert_eq!(net.raft(id).role(), Role::Follower);
    }
    let noop_index = net.raft(1).commit_index();
    assert_eq!(noop_index, 2, "the no-op of the new term is committed");
    assert!(net
        .node(2)
        .applied
        .iter()
        .any(|e| e.index == 2 && e.payload == baton_core::EntryPayload::Noop));
}

#[test]
fn s5_2_each_node_votes_for_at_most_one_candidate_per_term() {
    let mut node = node_of(1, &[1, 2, 3], false);
    let request = |from| Message {
        from,
        to: 1,
        term: 1,
        body: MessageBody::RequestVote {
            pre_vote: false,
            last_log_index: 1,
            last_log_term: 0,
            leader_transfer: false,
        },
    };
    node.step(request(2)).unwrap();
    node.step(request(3)).unwrap();
    node.step(request(2)).unwrap();
    let ready = node.ready();
    let answers: Vec<(u64, bool)> = ready
        .persisted_messages
        .iter()
        .map(|m| match m.body {
            MessageBody::RequestVoteResponse { granted, .. } => (m.to, granted),
            _ => panic!("unexpected {m:?}"),
        })
        .collect();
    assert_eq!(answers, vec![(2, true), (3, false), (2, true)]);
    assert_eq!(ready.hard_state.unwrap().vote, Some(2));
}

#[test]
fn s5_2_candidate_rejected_by_majority_returns_to_follower() {
    let mut node = node_of(1, &[1, 2, 3], false);
    assert!(tick_until_role(&mut node, Role::Candidate, 100));
    for from in [2, 3] {
        node.step(Message {
            from,
            to: 1,
            term: 1,
            body: MessageBody::RequestVoteResponse {
                pre_vote: false,
                granted: false,
            },
        })
        .unwrap();
    }
    assert_eq!(node.role(), Role::Follower);
}

#[test]
fn s5_2_candidate_receiving_append_from_leader_of_its_term_becomes_follower() {
    let mut node = node_of(1, &[1, 2, 3], false);
    assert!(tick_until_role(&mut node, Role::Candidate, 100));
    node.step(Message {
        from: 2,
        to: 1,
        term: 1,
        body: MessageBody::AppendEntries {
            prev_log_index: 1,
            prev_log_term: 0,
            entries: vec![],
            leader_commit: 1,
        },
    })
    .unwrap();
    assert_eq!(node.role(), Role::Follower);
    assert_eq!(node.leader_id(), Some(2));
}

#[test]
fn s5_4_1_vote_refused_to_candidate_with_less_up_to_date_log() {
    let mut net = Network::new(&[1, 2, 3]);
    net.elect(1);
    net.isolate(3);
    net.propose(1, b"x");
    net.deliver_all();
    // 3 misses "x"; 1 and 2 hold it.
    net.heal();
    net.isolate(1);
    let last_of_3 = net.raft(3).last_index();
    let term = net.raft(2).term();
    let mut node2_votes = |candidate_last_index| {
        net.raft(2)
            .step(Message {
                from: 3,
                to: 2,
                term: term + 1,
                body: MessageBody::RequestVote {
                    pre_vote: false,
                    last_log_index: candidate_last_index,
                    last_log_term: term,
                    leader_transfer: true,
                },
            })
            .unwrap();
        let ready = net.raft(2).ready();
        ready.persisted_messages.iter().any(|m| {
            matches!(
                m.body,
                MessageBody::RequestVoteResponse { granted: true, .. }
            )
        })
    };
    assert!(!node2_votes(last_of_3), "stale log: no vote");
}

#[test]
fn s9_6_isolated_node_does_not_inflate_its_term() {
    let mut net = Network::new(&[1, 2, 3]);
    net.elect(1);
    let term = net.raft(3).term();
    net.isolate(3);
    net.run(200);
    assert_eq!(
        net.raft(3).term(),
        term,
        "pre-vote never succeeds alone, so the term stays"
    );
    assert_eq!(net.raft(3).role(), Role::PreCandidate);
    net.heal();
    net.run(30);
    assert_eq!(
        net.leader(),
        Some(1),
        "rejoining does not depose the leader"
    );
    assert_eq!(net.raft(1).term(), term);
    assert_eq!(net.raft(3).leader_id(), Some(1));
}

#[test]
fn s9_6_without_pre_vote_an_isolated_node_disrupts_on_return() {
    let mut net = Network::with_config(&[1, 2, 3], &[], |c| {
        c.pre_vote = false;
        c.check_quorum = false;
    });
    net.elect(1);
    let term = net.raft(1).term();
    net.isolate(3);
    net.run(100);
    assert!(
        net.raft(3).term() > term + 2,
        "plain Raft: the term grows while isolated"
    );
}

#[test]
fn s6_2_check_quorum_leader_steps_down_without_a_quorum() {
    let mut net = Network::new(&[1, 2, 3]);
    net.elect(1);
    net.isolate(1);
    net.run(25);
    assert_ne!(
        net.raft(1).role(),
        Role::Leader,
        "a partitioned leader stops leading"
    );
    let new_leader = net.run_until(100, |n| n.leaders().iter().any(|&l| l != 1));
    assert!(new_leader.is_some(), "the majority elects a new leader");
}

#[test]
fn s4_2_3_vote_request_ignored_while_a_leader_is_heard() {
    let mut net = Network::new(&[1, 2, 3]);
    net.elect(1);
    let term = net.raft(2).term();
    net.raft(2)
        .step(Message {
            from: 3,
            to: 2,
            term: term + 1,
            body: MessageBody::RequestVote {
                pre_vote: false,
                last_log_index: 99,
                last_log_term: term,
                leader_transfer: false,
            },
        })
        .unwrap();
    assert_eq!(
        net.raft(2).term(),
        term,
        "term not updated while in the leader's lease"
    );
    assert_eq!(net.raft(2).leader_id(), Some(1));
    let ready = net.raft(2).ready();
    assert!(
        ready.persisted_messages.is_empty() && ready.messages.is_empty(),
        "no answer at all"
    );
}

/// etcd#8243 / #9586: a node with a higher term but a stale log comes back. It must never
/// be elected, and the cluster must converge on a leader that it follows.
#[test]
fn etcd_8243_pre_vote_with_stale_terms_never_elects_the_stale_node() {
    let mut net = Network::new(&[1, 2, 3]);
    net.elect(1);
    // Node 3 is cut off; it gets a higher term by campaigning without pre-vote (as an old
    // version would), while the others commit more entries.
    net.isolate(3);
    let cfg3 = {
        let mut c = net.node(3).config.clone();
        c.pre_vote = false;
        c
    };
    net.restart_with(3, cfg3.clone());
    for _ in 0..3 {
        net.raft(3).campaign().unwrap();
        net.process(3);
    }
    net.drop_all();
    let stale_term = net.raft(3).term();
    assert!(stale_term > net.raft(1).term());
    for i in 0..3 {
        net.propose(1, format!("e{i}").as_bytes());
    }
    net.deliver_all();
    // Back to pre-vote, and reconnect.
    let mut cfg3 = cfg3;
    cfg3.pre_vote = true;
    net.restart_with(3, cfg3);
    net.heal();
    let mut leaders_seen = std::collections::BTreeSet::new();
    for _ in 0..300 {
        net.run(1);
        leaders_seen.extend(net.leaders());
    }
    assert!(!leaders_seen.contains(&3), "the stale node never leads");
    let leader = net.leader().expect("the cluster has a leader");
    assert!(
        net.raft(leader).term() > stale_term,
        "the cluster's term caught up"
    );
    assert_eq!(
        net.raft(3).leader_id(),
        Some(leader),
        "the stale node follows"
    );
    let id = net.propose(leader, b"after");
    net.deliver_all();
    assert!(net.raft(3).commit_index() >= id.index);
}

/// openraft#2080: five voters; the old leader (1) can reach only a "bridge" (2); 2, 3
/// and 4 are mutually connected (a quorum); 5 is isolated. The old leader's heartbeats
/// keep renewing the bridge's lease, so the connected quorum could never elect, while the
/// old leader cannot commit. Check-quorum makes the old leader step down and stop
/// heartbeating; the bridge's lease then expires and 2, 3, 4 elect a leader.
#[test]
fn openraft_2080_leader_lease_does_not_deadlock_under_partial_partition() {
    let mut net = Network::new(&[1, 2, 3, 4, 5]);
    net.elect(1);
    net.isolate(5);
    for other in [3, 4] {
        net.cut_link(1, other);
    }
    let elected = net.run_until(300, |n| n.leaders().iter().any(|l| [2, 3, 4].contains(l)));
    assert!(elected.is_some(), "the connected quorum elects a leader");
    assert_ne!(
        net.raft(1).role(),
        Role::Leader,
        "the old leader stepped down"
    );
    let leader = net
        .leaders()
        .into_iter()
        .find(|l| [2, 3, 4].contains(l))
        .unwrap();
    let id = net.propose(leader, b"progress");
    net.run(3);
    assert!(
        net.raft(leader).commit_index() >= id.index,
        "the cluster makes progress"
    );
    net.run(100);
    assert_eq!(
        net.leader(),
        Some(leader),
        "and stays stable under the partial partition"
    );
}

/// A one-way partition: the leader can send but never hears back. Followers keep seeing
/// heartbeats; check-quorum makes the leader step down and the others elect.
#[test]
fn s6_2_one_way_partition_leader_steps_down_and_others_elect() {
    let mut net = Network::new(&[1, 2, 3]);
    net.elect(1);
    net.cut.insert((2, 1));
    net.cut.insert((3, 1));
    let elected = net.run_until(200, |n| {
        n.leaders().iter().any(|&l| l != 1) && n.node(1).raft.role() != Role::Leader
    });
    assert!(elected.is_some(), "a new leader among 2 and 3");
}

#[test]
fn s10_2_1_fsync_stall_on_leader_causes_no_election() {
    let mut net = Network::new(&[1, 2, 3]);
    net.elect(1);
    let term = net.raft(1).term();
    net.nodes.get_mut(&1).unwrap().stalled = true;
    for i in 0..10 {
        net.propose(1, format!("p{i}").as_bytes());
    }
    net.run(200);
    assert_eq!(
        net.leaders(),
        vec![1],
        "heartbeats do not wait for the leader's fsync"
    );
    assert_eq!(net.raft(1).term(), term);
    assert!(
        net.raft(1).commit_index() >= 12,
        "followers' durable acks commit without the leader's fsync"
    );
    assert!(
        net.node(1).applied_index() <= 2,
        "the leader applies nothing it has not made durable"
    );
    net.unstall(1);
    net.deliver_all();
    assert_eq!(net.node(1).applied_commands().len(), 10);
}

#[test]
fn s5_2_single_voter_elects_itself_and_commits_after_persist() {
    let mut net = Network::new(&[1]);
    net.raft(1).campaign().unwrap();
    assert_eq!(
        net.raft(1).role(),
        Role::Candidate,
        "wins once its term and vote are durable"
    );
    net.deliver_all();
    assert_eq!(net.raft(1).role(), Role::Leader);
    let id = net.propose(1, b"solo");
    net.deliver_all();
    assert_eq!(net.raft(1).commit_index(), id.index);
    assert_eq!(net.node(1).applied_commands(), vec![b"solo".to_vec()]);
}

#[test]
fn s5_2_restarted_node_keeps_its_vote() {
    let mut net = Network::with_config(&[1, 2, 3], &[], |c| c.pre_vote = false);
    net.raft(2)
        .step(Message {
            from: 1,
            to: 2,
            term: 1,
            body: MessageBody::RequestVote {
                pre_vote: false,
                last_log_index: 1,
                last_log_term: 0,
                leader_transfer: false,
            },
        })
        .unwrap();
    net.process(2);
    net.drop_all();
    net.crash(2);
    net.restart(2);
    net.raft(2)
        .step(Message {
            from: 3,
            to: 2,
            term: 1,
            body: MessageBody::RequestVote {
                pre_vote: false,
                last_log_index: 1,
                last_log_term: 0,
                leader_transfer: false,
            },
        })
        .unwrap();
    let ready = net.raft(2).ready();
    assert!(ready.persisted_messages.iter().all(|m| !matches!(
        m.body,
        MessageBody::RequestVoteResponse { granted: true, .. }
    )));
}

/// §6.2 check-quorum clears every follower's activity flag once per election timeout, and
/// a follower answers only to the next heartbeat. Reported as is, the flag read false for
/// every voter in that gap, so a policy sampling the leader's progress (who is caught up and
/// may take over) sometimes saw nobody. The reported flag covers the current round and the
/// previous one, so it stays true for a follower that answers; check-quorum itself still
/// counts only the current round.
#[test]
fn s6_2_reported_activity_does_not_flicker_at_check_quorum_rounds() {
    let mut net = Network::new(&[1, 2, 3]);
    net.elect(1);
    let min = config(1).election_timeout_ticks_min as usize;
    for tick in 0..5 * min {
        // Sample right after the leader's tick: that is when a round starts over.
        net.tick(1);
        let progress = net.raft(1).progress();
        assert!(
            progress.iter().all(|peer| peer.recently_active),
            "tick {tick}: a follower that answers every heartbeat reads as inactive: {progress:?}"
        );
        net.tick(2);
        net.tick(3);
        net.deliver_all();
    }

    // A follower that stops answering is reported inactive within two rounds, and the
    // leader still steps down when it has no quorum of current-round answers.
    net.isolate(3);
    net.run(2 * min + 1);
    let progress = net.raft(1).progress();
    let silent = progress.iter().find(|peer| peer.id == 3).expect("peer 3");
    assert!(
        !silent.recently_active,
        "a silent follower reads as inactive after two rounds"
    );
    assert!(progress
        .iter()
        .any(|peer| peer.id == 2 && peer.recently_active));
    // Within two rounds: the one under way may have counted an answer from before the cut.
    net.isolate(1);
    net.run(2 * min + 1);
    assert_ne!(
        net.raft(1).role(),
        Role::Leader,
        "check-quorum still steps down"
    );
}

/// A node that starts from an empty store to join, with
/// `refuse_votes_without_configuration`, grants nothing until it knows a configuration:
/// it may be a member that lost its storage, whose vote would then mean nothing. Without
/// the setting it votes as Raft says an empty log may.
#[test]
fn an_empty_joiner_that_refuses_votes_without_configuration_grants_none() {
    let vote_of = |refuse: bool| {
        let mut cfg = config(4);
        cfg.refuse_votes_without_configuration = refuse;
        let mut node = RaftNode::new(cfg, PersistedState::default()).unwrap();
        node.step(Message {
            from: 1,
            to: 4,
            term: 5,
            body: MessageBody::RequestVote {
                pre_vote: false,
                last_log_index: 3,
                last_log_term: 2,
                leader_transfer: false,
            },
        })
        .unwrap();
        let ready = node.ready();
        let granted: Vec<bool> = ready
            .persisted_messages
            .iter()
            .chain(ready.messages.iter())
            .filter_map(|m| match m.body {
                MessageBody::RequestVoteResponse { granted, .. } => Some(granted),
                _ => None,
            })
            .collect();
        granted
    };
    assert_eq!(vote_of(false), vec![true]);
    assert_eq!(vote_of(true), vec![false]);
}

#[test]
fn a_joiner_that_refuses_votes_votes_once_the_log_gave_it_a_configuration() {
    let mut net = Network::new(&[1, 2, 3]);
    net.elect(1);
    let mut cfg = config(4);
    cfg.refuse_votes_without_configuration = true;
    net.add_node_with(cfg, PersistedState::default());
    net.raft(1)
        .propose_membership(baton_core::MembershipChange::AddLearner(4))
        .unwrap();
    net.run(5);
    assert!(
        net.raft(4).membership().learners.contains(&4),
        "the log reached it"
    );
    let term = net.raft(4).term() + 1;
    net.raft(4)
        .step(Message {
            from: 2,
            to: 4,
            term,
            body: MessageBody::RequestVote {
                pre_vote: false,
                last_log_index: 1000,
                last_log_term: term,
                // A transfer's candidate: the lease of the leader it follows does not apply.
                leader_transfer: true,
            },
        })
        .unwrap();
    let ready = net.raft(4).ready();
    assert!(ready.persisted_messages.iter().any(|m| matches!(
        m.body,
        MessageBody::RequestVoteResponse { granted: true, .. }
    )));
}
