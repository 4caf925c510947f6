//! §6.4 linearizable reads: ReadIndex, follower reads, lease reads.

use crate::harness::{membership, Network};
use baton_core::{MembershipChange, MessageBody, ReadState, Role};

#[test]
fn s6_4_read_index_is_answered_after_a_heartbeat_round() {
    let mut net = Network::new(&[1, 2, 3]);
    net.elect(1);
    let id = net.propose(1, b"x");
    net.deliver_all();
    net.raft(1).read_index(7).unwrap();
    net.process(1);
    assert!(
        net.node(1).read_states.is_empty(),
        "not before a quorum confirmed leadership"
    );
    assert!(net.queue.iter().any(
        |m| matches!(m.body, MessageBody::Heartbeat { read_context, .. } if read_context > 0)
    ));
    net.deliver_all();
    assert_eq!(
        net.node(1).read_states,
        vec![ReadState {
            request_id: 7,
            index: id.index
        }]
    );
}

#[test]
fn s6_4_read_waits_until_the_leader_committed_an_entry_of_its_term() {
    let mut net = Network::new(&[1, 2, 3]);
    net.raft(1).campaign().unwrap();
    net.process(1);
    for _ in 0..100 {
        if net.raft(1).role() == Role::Leader {
            break;
        }
        net.deliver_one();
    }
    net.raft(1).read_index(1).unwrap();
    net.process(1);
    assert!(net.node(1).read_states.is_empty());
    net.deliver_all();
    net.deliver_all();
    let states = &net.node(1).read_states;
    assert_eq!(states.len(), 1);
    assert!(
        states[0].index >= 2,
        "the read index covers the new term's no-op"
    );
}

/// A read waits for a heartbeat round, and the voter whose ack it needs is removed: the
/// leader, now alone in the configuration, is a quorum by itself. Waiting for an ack that
/// would no longer count left the read pending until the runtime's deadline (15 s),
/// and a new host's first read (its barrier) with it.
#[test]
fn s6_4_a_read_pending_when_its_voter_is_removed_is_confirmed_by_the_rest() {
    let mut net = Network::new(&[1, 2]);
    net.elect(1);
    let id = net.propose(1, b"x");
    net.deliver_all();
    net.isolate(2);
    net.raft(1).read_index(9).unwrap();
    net.process(1);
    net.raft(1)
        .propose_membership(MembershipChange::RemoveNode(2))
        .unwrap();
    net.run(5);
    assert_eq!(net.raft(1).membership(), &membership(&[1], &[]));
    assert_eq!(
        net.node(1).read_states,
        vec![ReadState {
            request_id: 9,
            index: id.index
        }],
        "the read index taken when the read arrived"
    );
}

#[test]
fn s6_4_follower_read_is_forwarded_to_the_leader() {
    let mut net = Network::new(&[1, 2, 3]);
    net.elect(1);
    let id = net.propose(1, b"x");
    net.deliver_all();
    net.raft(2).read_index(42).unwrap();
    net.deliver_all();
    assert_eq!(
        net.node(2).read_states,
        vec![ReadState {
            request_id: 42,
            index: id.index
        }]
    );
}

#[test]
fn s6_4_reads_fail_when_leadership_is_lost() {
    let mut net = Network::new(&[1, 2, 3]);
    net.elect(1);
    net.isolate(1);
    net.raft(1).read_index(5).unwrap();
    net.run(30);
    assert_eq!(net.node(1).read_states, vec![]);
    assert_eq!(
        net.node(1).failed_reads,
        vec![5],
        "the caller is told to retry"
    );
}

#[test]
fn s6_4_forwarded_read_fails_when_the_leader_is_unreachable() {
    let mut net = Network::new(&[1, 2, 3]);
    net.elect(1);
    net.cut_link(1, 2);
    net.raft(2).read_index(9).unwrap();
    net.run(25);
    assert!(net.node(2).read_states.iter().all(|r| r.request_id != 9));
    assert_eq!(net.node(2).failed_reads, vec![9]);
}

#[test]
fn s6_4_read_without_known_leader_is_refused() {
    let mut net = Network::new(&[1, 2, 3]);
    assert_eq!(
        net.raft(2).read_index(1),
        Err(baton_core::ProposeError::NotLeader { leader: None })
    );
}

#[test]
fn s6_4_1_lease_read_is_served_without_a_round_trip() {
    let mut net = Network::with_config(&[1, 2, 3], &[], |c| c.lease_reads = true);
    net.elect(1);
    net.run(3);
    net.raft(1).read_index(3).unwrap();
    net.process(1);
    assert_eq!(net.node(1).read_states.len(), 1, "answered from the lease");
}

#[test]
fn s6_4_1_lease_expires_without_acknowledgements() {
    let mut net = Network::with_config(&[1, 2, 3], &[], |c| {
        c.lease_reads = true;
        c.check_quorum = true;
    });
    net.elect(1);
    net.run(3);
    net.isolate(1);
    net.run(9);
    assert_eq!(net.raft(1).role(), Role::Leader);
    net.raft(1).read_index(3).unwrap();
    net.process(1);
    assert!(
        net.node(1).read_states.is_empty(),
        "an expired lease needs a heartbeat round"
    );
}

/// tikv/raft-rs#234, etcd-io/raft#99: once a TimeoutNow is out, the target can win an
/// election that ignores leases; the old leader must not answer from its lease.
#[test]
fn raft_rs_234_no_lease_read_across_timeout_now() {
    let mut net = Network::with_config(&[1, 2, 3], &[], |c| c.lease_reads = true);
    net.elect(1);
    net.run(3);
    net.raft(1).transfer_leadership(2).unwrap();
    net.process(1);
    // The TimeoutNow is in flight; the target campaigns and wins before the old leader
    // hears about it.
    let timeout_now = net
        .queue
        .iter()
        .position(|m| m.body == MessageBody::TimeoutNow)
        .unwrap();
    let msg = net.queue.remove(timeout_now).unwrap();
    net.raft(2).step(msg).unwrap();
    net.process(2);
    net.cut_link(1, 2);
    net.cut_link(1, 3);
    net.deliver_all();
    assert_eq!(net.raft(2).role(), Role::Leader);
    assert_eq!(
        net.raft(1).role(),
        Role::Leader,
        "the old leader has not heard yet"
    );
    // Even after the transfer was abandoned locally, no lease read in this term.
    net.tick(1);
    for _ in 0..12 {
        net.tick(1);
    }
    net.drop_all();
    assert_eq!(net.raft(1).transfer_target(), None);
    net.raft(1).read_index(11).unwrap();
    net.process(1);
    assert!(
        net.node(1).read_states.is_empty(),
        "no stale read from the old leader's lease"
    );
}
