//! Chapter 4: learners and single-server membership changes.

use crate::harness::{membership, Network};
use baton_core::{Entry, EntryPayload, MembershipChange, Message, MessageBody, ProposeError, Role};

#[test]
fn s4_2_1_learner_receives_the_log_but_never_votes_or_campaigns() {
    let mut net = Network::with_config(&[1, 2, 3], &[4], |_| {});
    net.elect(1);
    net.propose(1, b"x");
    net.run(3);
    assert_eq!(net.node(4).applied_commands(), vec![b"x".to_vec()]);
    assert_eq!(net.raft(4).role(), Role::Learner);
    assert_eq!(net.raft(4).campaign(), Err(ProposeError::NotAVoter(4)));
    let term = net.raft(4).term();
    net.isolate(4);
    net.run(200);
    assert_eq!(net.raft(4).term(), term, "a learner never campaigns");
    assert_eq!(net.raft(4).role(), Role::Learner);
    // Never asked for a vote either.
    net.heal();
    net.crash(1);
    net.run_until(200, |n| n.leader().is_some_and(|l| l != 1))
        .expect("a new leader");
    assert_eq!(net.raft(4).role(), Role::Learner);
}

#[test]
fn s4_2_1_learner_is_never_asked_for_a_vote_and_its_answer_never_counts() {
    let mut net = Network::with_config(&[1, 2, 3], &[4], |c| c.pre_vote = false);
    net.raft(1).campaign().unwrap();
    let ready = net.raft(1).ready();
    let asked: Vec<u64> = ready.persisted_messages.iter().map(|m| m.to).collect();
    assert_eq!(asked, vec![2, 3], "only voters are asked");
    let term = net.raft(1).term();
    net.raft(1)
        .step(Message {
            from: 4,
            to: 1,
            term,
            body: MessageBody::RequestVoteResponse {
                pre_vote: false,
                granted: true,
            },
        })
        .unwrap();
    assert_eq!(
        net.raft(1).role(),
        Role::Candidate,
        "a learner's vote is not counted"
    );
}

/// A voter that has not yet heard of its own promotion must still answer the candidate
/// that knows about it, or a cluster whose other voter is down stalls (§4.1).
#[test]
fn s4_1_node_unaware_of_its_promotion_still_answers_vote_requests() {
    let mut net = Network::with_config(&[1, 2], &[3], |_| {});
    net.elect(1);
    net.run(3);
    net.cut_link(1, 3);
    net.raft(1)
        .propose_membership(MembershipChange::PromoteLearner(3))
        .unwrap();
    net.run(3);
    assert_eq!(
        net.raft(3).role(),
        Role::Learner,
        "3 has not heard of its promotion"
    );
    net.crash(1);
    net.heal();
    let elected = net.run_until(300, |n| n.leader() == Some(2));
    assert!(elected.is_some(), "2 is elected with the vote of 3");
    net.run(5);
    assert_eq!(net.raft(3).role(), Role::Follower);
}

/// A configuration takes effect on append (§4.1), so the leader's status names the new
/// voters at once; only its commit makes them safe to count on. A leader that crashes
/// before the promotion left it takes the promotion with it: the others hold the old
/// configuration, whose voters cannot elect without the crashed one.
#[test]
fn s4_1_a_promotion_only_the_crashed_leader_held_dies_with_it() {
    let promoted = |isolated: bool| {
        let mut net = Network::with_config(&[1, 2], &[3], |_| {});
        net.elect(1);
        net.run(3);
        if isolated {
            net.isolate(1);
        }
        net.raft(1)
            .propose_membership(MembershipChange::PromoteLearner(3))
            .unwrap();
        net.run(3);
        let status = net.raft(1).status();
        assert_eq!(status.membership, membership(&[1, 2, 3], &[]));
        net.crash(1);
        net.heal();
        (status, net)
    };
    let (status, mut net) = promoted(true);
    assert_eq!(
        status.committed_membership,
        membership(&[1, 2], &[3]),
        "not committed while nobody else has it"
    );
    assert_eq!(net.run_until(500, |n| n.leader().is_some()), None);
    assert_eq!(net.raft(2).status().membership, membership(&[1, 2], &[3]));

    let (status, mut net) = promoted(false);
    assert_eq!(status.committed_membership, status.membership);
    net.run_until(500, |n| n.leader().is_some())
        .expect("a committed promotion survives the leader");
}

/// A leader that demoted itself loses its quorum before the change commits: it must be
/// able to finish the change, else the only up-to-date log sits on a node that can
/// neither campaign nor be outvoted.
#[test]
fn s4_2_2_demoted_leader_that_lost_its_quorum_finishes_the_change() {
    let mut net = Network::new(&[1, 2]);
    net.elect(1);
    net.cut_link(1, 2);
    net.raft(1)
        .propose_membership(MembershipChange::DemoteVoter(1))
        .unwrap();
    for i in 0..5 {
        net.propose(1, format!("p{i}").as_bytes());
    }
    net.run(30);
    assert_ne!(net.raft(1).role(), Role::Leader, "check-quorum: no quorum");
    net.heal();
    let done = net.run_until(500, |n| {
        n.leader() == Some(2) && n.node(2).raft.membership() == &membership(&[2], &[1])
    });
    assert!(done.is_some(), "the demotion completes and 2 leads");
    assert_eq!(
        net.node(2).applied_commands().len(),
        5,
        "nothing proposed was lost"
    );
}

#[test]
fn s4_2_1_learner_acks_never_count_toward_a_quorum() {
    let mut net = Network::with_config(&[1, 2, 3], &[4], |_| {});
    net.elect(1);
    net.isolate(2);
    net.isolate(3);
    net.cut.remove(&(1, 4));
    net.cut.remove(&(4, 1));
    let id = net.propose(1, b"x");
    net.run(3);
    assert_eq!(
        net.raft(4).last_index(),
        id.index,
        "the learner holds the entry"
    );
    assert!(
        net.raft(1).commit_index() < id.index,
        "but the leader alone plus a learner is no quorum"
    );
}

#[test]
fn s4_1_add_learner_then_promote_it_and_it_can_lead() {
    // openraft#584: promoting a learner must make it a full voter that can be elected.
    let mut net = Network::new(&[1, 2, 3]);
    net.elect(1);
    net.add_joining_node(4);
    net.raft(1)
        .propose_membership(MembershipChange::AddLearner(4))
        .unwrap();
    net.run(5);
    assert_eq!(net.raft(4).role(), Role::Learner);
    assert_eq!(net.raft(4).membership(), &membership(&[1, 2, 3], &[4]));
    net.raft(1)
        .propose_membership(MembershipChange::PromoteLearner(4))
        .unwrap();
    net.run(5);
    assert_eq!(net.raft(4).membership(), &membership(&[1, 2, 3, 4], &[]));
    assert_eq!(net.raft(4).role(), Role::Follower);
    assert!(net
        .raft(1)
        .progress()
        .iter()
        .any(|p| p.id == 4 && p.is_voter));
    net.raft(1).transfer_leadership(4).unwrap();
    net.run(5);
    assert_eq!(net.leader(), Some(4), "the promoted node leads");
}

#[test]
fn s4_1_promotion_of_a_lagging_learner_is_refused() {
    let mut net = Network::new(&[1, 2, 3]);
    net.elect(1);
    net.add_joining_node(4);
    net.isolate(4);
    net.raft(1)
        .propose_membership(MembershipChange::AddLearner(4))
        .unwrap();
    net.run(3);
    let lag = baton_core::Config::new(1, 0).promotion_lag_entries_max;
    for _ in 0..=lag {
        net.raft(1).propose(b"x".to_vec(), None).unwrap();
    }
    net.run(3);
    assert_eq!(
        net.raft(1)
            .propose_membership(MembershipChange::PromoteLearner(4)),
        Err(ProposeError::TargetNotCaughtUp(4))
    );
}

#[test]
fn s4_2_1_a_learner_nearly_caught_up_is_promoted_though_entries_are_in_flight() {
    let mut net = Network::new(&[1, 2, 3]);
    net.elect(1);
    net.add_joining_node(4);
    net.raft(1)
        .propose_membership(MembershipChange::AddLearner(4))
        .unwrap();
    net.run(5);
    // The learner is cut off for a few entries: behind, but within the allowed lag.
    net.isolate(4);
    for _ in 0..3 {
        net.raft(1).propose(b"x".to_vec(), None).unwrap();
    }
    net.run(3);
    assert!(net
        .raft(1)
        .propose_membership(MembershipChange::PromoteLearner(4))
        .is_ok());
}

#[test]
fn openraft_1351_concurrent_membership_changes_are_refused() {
    let mut net = Network::new(&[1, 2, 3]);
    net.elect(1);
    net.add_joining_node(4);
    net.add_joining_node(5);
    net.raft(1)
        .propose_membership(MembershipChange::AddLearner(4))
        .unwrap();
    assert_eq!(
        net.raft(1)
            .propose_membership(MembershipChange::AddLearner(5)),
        Err(ProposeError::MembershipChangeInProgress)
    );
    net.run(3);
    net.raft(1)
        .propose_membership(MembershipChange::AddLearner(5))
        .unwrap();
    net.run(3);
    assert_eq!(net.raft(1).membership(), &membership(&[1, 2, 3], &[4, 5]));
}

#[test]
fn s4_1_leader_must_commit_an_entry_of_its_term_before_a_change() {
    let mut net = Network::new(&[1, 2, 3]);
    net.raft(1).campaign().unwrap();
    net.process(1);
    // Deliver the votes but not the no-op's acknowledgements.
    for _ in 0..100 {
        if net.raft(1).role() == Role::Leader {
            break;
        }
        net.deliver_one();
    }
    assert_eq!(net.raft(1).role(), Role::Leader);
    assert_eq!(
        net.raft(1)
            .propose_membership(MembershipChange::AddLearner(9)),
        Err(ProposeError::LeaderNotReady)
    );
    net.deliver_all();
    assert!(net
        .raft(1)
        .propose_membership(MembershipChange::AddLearner(9))
        .is_ok());
}

#[test]
fn s4_1_configuration_applies_on_append_and_reverts_when_truncated() {
    let mut net = Network::new(&[1, 2, 3]);
    net.elect(1);
    let term = net.raft(1).term();
    let last = net.raft(2).last_index();
    let commit = net.raft(2).commit_index();
    let uncommitted = Entry {
        term,
        index: last + 1,
        payload: EntryPayload::Membership(membership(&[1, 2, 3], &[7])),
    };
    net.raft(2)
        .step(Message {
            from: 1,
            to: 2,
            term,
            body: MessageBody::AppendEntries {
                prev_log_index: last,
                prev_log_term: term,
                entries: vec![uncommitted],
                leader_commit: commit,
            },
        })
        .unwrap();
    assert_eq!(
        net.raft(2).membership(),
        &membership(&[1, 2, 3], &[7]),
        "in effect once appended"
    );
    // A new leader of a later term overwrites that entry.
    let overwrite = Entry {
        term: term + 1,
        index: last + 1,
        payload: EntryPayload::Noop,
    };
    net.raft(2)
        .step(Message {
            from: 3,
            to: 2,
            term: term + 1,
            body: MessageBody::AppendEntries {
                prev_log_index: last,
                prev_log_term: term,
                entries: vec![overwrite],
                leader_commit: commit,
            },
        })
        .unwrap();
    assert_eq!(
        net.raft(2).membership(),
        &membership(&[1, 2, 3], &[]),
        "reverted with the truncation"
    );
}

#[test]
fn s4_2_2_leader_removing_itself_steps_down_once_committed() {
    let mut net = Network::new(&[1, 2, 3]);
    net.elect(1);
    net.raft(1)
        .propose_membership(MembershipChange::RemoveNode(1))
        .unwrap();
    assert_eq!(
        net.raft(1).role(),
        Role::Leader,
        "keeps leading until the change commits"
    );
    let id = net.propose(1, b"still-served");
    net.run(10);
    assert_ne!(net.raft(1).role(), Role::Leader);
    let leader = net
        .run_until(100, |n| n.leaders().iter().any(|&l| l != 1))
        .map(|_| net.leader().unwrap());
    let leader = leader.expect("the remaining voters elect a leader");
    assert!([2, 3].contains(&leader));
    assert!(net.raft(leader).commit_index() >= id.index);
    assert_eq!(net.raft(leader).membership(), &membership(&[2, 3], &[]));
}

#[test]
fn s4_2_2_leader_demoting_itself_becomes_a_learner() {
    let mut net = Network::new(&[1, 2, 3]);
    net.elect(1);
    net.raft(1)
        .propose_membership(MembershipChange::DemoteVoter(1))
        .unwrap();
    net.run(30);
    assert_eq!(net.raft(1).role(), Role::Learner);
    let leader = net.leader().unwrap();
    assert_ne!(leader, 1);
    net.propose(leader, b"y");
    net.run(3);
    assert_eq!(
        net.node(1).applied_commands(),
        vec![b"y".to_vec()],
        "a learner keeps receiving the log"
    );
}

#[test]
fn s4_2_3_removed_node_does_not_disrupt_the_cluster() {
    let mut net = Network::new(&[1, 2, 3]);
    net.elect(1);
    // Node 3 never learns of its removal: it is cut off before the change reaches it.
    net.isolate(3);
    net.raft(1)
        .propose_membership(MembershipChange::RemoveNode(3))
        .unwrap();
    net.run(5);
    assert_eq!(net.raft(1).membership(), &membership(&[1, 2], &[]));
    let term = net.raft(1).term();
    net.heal();
    for i in 0..300 {
        net.run(1);
        if i % 20 == 0 {
            net.propose(1, b"tick");
        }
    }
    assert_eq!(
        net.leader(),
        Some(1),
        "the removed node never deposes the leader"
    );
    assert_eq!(net.raft(1).term(), term, "nor bumps the cluster's term");
}

#[test]
fn s4_1_membership_change_errors() {
    let mut net = Network::new(&[1, 2]);
    net.elect(1);
    let raft = net.raft(1);
    assert_eq!(
        raft.propose_membership(MembershipChange::AddLearner(2)),
        Err(ProposeError::AlreadyMember(2))
    );
    assert_eq!(
        raft.propose_membership(MembershipChange::PromoteLearner(2)),
        Err(ProposeError::NotALearner(2))
    );
    assert_eq!(
        raft.propose_membership(MembershipChange::DemoteVoter(9)),
        Err(ProposeError::UnknownNode(9))
    );
    assert_eq!(
        raft.propose_membership(MembershipChange::RemoveNode(9)),
        Err(ProposeError::UnknownNode(9))
    );
    assert_eq!(
        net.raft(2)
            .propose_membership(MembershipChange::AddLearner(5)),
        Err(ProposeError::NotLeader { leader: Some(1) })
    );
    let mut solo = Network::new(&[1]);
    solo.elect(1);
    assert_eq!(
        solo.raft(1)
            .propose_membership(MembershipChange::RemoveNode(1)),
        Err(ProposeError::WouldLeaveNoVoters)
    );
}

#[test]
fn s4_1_removing_an_unreachable_voter_lets_pending_entries_commit() {
    let mut net = Network::new(&[1, 2]);
    net.elect(1);
    net.crash(2);
    let pending = net.propose(1, b"waits");
    net.run(2);
    assert!(
        net.raft(1).commit_index() < pending.index,
        "no quorum without 2"
    );
    net.raft(1)
        .propose_membership(MembershipChange::RemoveNode(2))
        .unwrap();
    net.run(2);
    assert!(
        net.raft(1).commit_index() >= pending.index,
        "the smaller configuration commits it"
    );
    assert_eq!(net.node(1).applied_commands(), vec![b"waits".to_vec()]);
}
