//! §3.10 leadership transfer.

use crate::harness::{config, Network};
use baton_core::{MembershipChange, MessageBody, ProposeError, Role};

#[test]
fn s3_10_transfer_to_an_up_to_date_voter() {
    let mut net = Network::new(&[1, 2, 3]);
    net.elect(1);
    let term = net.raft(1).term();
    net.raft(1).transfer_leadership(2).unwrap();
    net.process(1);
    assert_eq!(net.raft(1).transfer_target(), Some(2));
    assert!(net
        .queue
        .iter()
        .any(|m| m.to == 2 && m.body == MessageBody::TimeoutNow));
    net.deliver_all();
    assert_eq!(net.leader(), Some(2));
    assert_eq!(net.raft(2).term(), term + 1, "no pre-vote round: one term");
    assert_eq!(net.raft(1).transfer_target(), None);
    assert_eq!(net.raft(1).role(), Role::Follower);
}

#[test]
fn s3_10_target_is_brought_up_to_date_first() {
    let mut net = Network::new(&[1, 2, 3]);
    net.elect(1);
    net.isolate(3);
    for i in 0..5 {
        net.propose(1, format!("p{i}").as_bytes());
    }
    net.run(2);
    net.heal();
    net.raft(1).transfer_leadership(3).unwrap();
    net.process(1);
    assert!(
        net.queue.iter().all(|m| m.body != MessageBody::TimeoutNow),
        "no TimeoutNow while lagging"
    );
    net.run(5);
    assert_eq!(net.leader(), Some(3));
    assert_eq!(net.node(3).applied_commands().len(), 5);
}

#[test]
fn raft_rs_164_transfer_to_a_learner_is_refused() {
    let mut net = Network::with_config(&[1, 2, 3], &[4], |_| {});
    net.elect(1);
    assert_eq!(
        net.raft(1).transfer_leadership(4),
        Err(ProposeError::TargetIsLearner(4))
    );
    assert_eq!(
        net.raft(1).transfer_leadership(9),
        Err(ProposeError::UnknownNode(9))
    );
    assert_eq!(net.raft(1).transfer_target(), None);
    assert_eq!(
        net.raft(2).transfer_leadership(3),
        Err(ProposeError::NotLeader { leader: Some(1) })
    );
}

#[test]
fn hashicorp_493_transfer_flag_is_cleared_after_a_failed_transfer() {
    let mut net = Network::new(&[1, 2, 3]);
    net.elect(1);
    net.crash(2);
    net.raft(1).transfer_leadership(2).unwrap();
    assert_eq!(
        net.raft(1).propose(b"x".to_vec(), None),
        Err(ProposeError::TransferInProgress { target: 2 })
    );
    assert_eq!(
        net.raft(1)
            .propose_membership(MembershipChange::AddLearner(5)),
        Err(ProposeError::TransferInProgress { target: 2 })
    );
    net.run(10);
    assert_eq!(
        net.raft(1).transfer_target(),
        None,
        "abandoned after an election timeout"
    );
    assert_eq!(net.leader(), Some(1));
    assert!(
        net.raft(1).propose(b"x".to_vec(), None).is_ok(),
        "proposals accepted again"
    );
    net.run(3);
    assert_eq!(net.node(3).applied_commands(), vec![b"x".to_vec()]);
}

/// hashicorp/raft#581: transfer while clients keep proposing. No committed proposal may
/// be lost, every refused proposal is refused with a typed error, and the new leader
/// takes over.
#[test]
fn hashicorp_581_transfer_under_a_stream_of_proposals() {
    let mut net = Network::new(&[1, 2, 3]);
    net.elect(1);
    let mut accepted = Vec::new();
    let mut refused = 0;
    let mut transferred = false;
    for i in 0..200u32 {
        let data = format!("p{i}").into_bytes();
        if let Some(leader) = net.leader() {
            match net.raft(leader).propose(data.clone(), None) {
                Ok(id) => accepted.push((id, data)),
                Err(ProposeError::TransferInProgress { .. })
                | Err(ProposeError::NotLeader { .. }) => refused += 1,
                Err(other) => panic!("unexpected {other}"),
            }
            net.process(leader);
        }
        if i == 50 {
            net.raft(1).transfer_leadership(3).unwrap();
            transferred = true;
        }
        // Deliver a few messages per proposal: transfer and proposals interleave.
        for _ in 0..4 {
            net.deliver_one();
        }
        if i % 5 == 0 {
            net.tick_all();
        }
    }
    net.run(10);
    assert!(transferred);
    assert_eq!(net.leader(), Some(3), "the transfer completed");
    assert!(refused > 0, "proposals during the transfer were refused");
    let committed = net.node(3).applied.clone();
    let mut committed_ok = 0;
    for (id, data) in &accepted {
        let at = committed.iter().find(|e| e.index == id.index);
        if let Some(entry) = at {
            if entry.term == id.term {
                assert_eq!(
                    entry.payload,
                    baton_core::EntryPayload::Command {
                        tag: None,
                        data: data.clone()
                    }
                );
                committed_ok += 1;
            }
        }
    }
    assert!(
        committed_ok >= 50,
        "accepted proposals committed: {committed_ok}"
    );
    for id in [1, 2] {
        assert_eq!(
            net.node(id).applied_commands(),
            net.node(3).applied_commands()
        );
    }
}

#[test]
fn s3_10_transfer_election_ignores_the_leader_lease() {
    // Followers heard from the leader a tick ago; a normal vote request would be ignored
    // (§4.2.3), but the transfer's vote request is granted.
    let mut net = Network::new(&[1, 2, 3, 4, 5]);
    net.elect(1);
    net.run(1);
    net.raft(1).transfer_leadership(5).unwrap();
    net.deliver_all();
    assert_eq!(net.leader(), Some(5));
}

#[test]
fn s3_10_second_transfer_to_another_target_is_refused_while_one_runs() {
    let mut net = Network::new(&[1, 2, 3]);
    net.elect(1);
    net.crash(2);
    net.raft(1).transfer_leadership(2).unwrap();
    assert_eq!(
        net.raft(1).transfer_leadership(3),
        Err(ProposeError::TransferInProgress { target: 2 })
    );
    assert_eq!(net.raft(1).transfer_leadership(2), Ok(()));
}

#[test]
fn s3_10_transfer_to_self_cancels_the_transfer() {
    let mut net = Network::new(&[1, 2, 3]);
    net.elect(1);
    net.crash(2);
    net.raft(1).transfer_leadership(2).unwrap();
    net.raft(1).transfer_leadership(1).unwrap();
    assert_eq!(net.raft(1).transfer_target(), None);
    assert!(net.raft(1).propose(b"x".to_vec(), None).is_ok());
}

/// §3.10: "if the transfer does not complete within an election timeout, the prior leader
/// aborts the transfer and resumes accepting client requests". Counted in logical ticks: a
/// transfer to a dead target refuses proposals for exactly `election_timeout_ticks_min`
/// leader ticks (the documented abandon timeout), and the first proposal after it commits
/// within a round trip. A runtime that resubmits when `transfer_target()` clears therefore
/// pauses no longer than that.
#[test]
fn s3_10_a_transfer_to_a_dead_target_pauses_proposals_for_the_abandon_timeout_only() {
    let mut net = Network::new(&[1, 2, 3]);
    net.elect(1);
    net.crash(2);
    net.raft(1).transfer_leadership(2).unwrap();
    let abandon_ticks = config(1).election_timeout_ticks_min as usize;
    let mut refused_ticks = 0;
    while net.raft(1).propose(b"after".to_vec(), None).is_err() {
        assert!(
            refused_ticks <= abandon_ticks,
            "proposals still refused after {refused_ticks} ticks"
        );
        net.tick_all();
        net.deliver_all();
        refused_ticks += 1;
    }
    assert_eq!(
        refused_ticks, abandon_ticks,
        "refused for the abandon timeout"
    );
    assert_eq!(net.raft(1).transfer_target(), None);
    net.process(1);
    net.deliver_all();
    assert_eq!(
        net.node(3).applied_commands(),
        vec![b"after".to_vec()],
        "committed without waiting for another tick"
    );
}
