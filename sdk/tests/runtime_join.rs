//! A joiner with credentials the cluster refuses (a wrong secret, another session's invite)
//! hears so as a typed error, fast, instead of retrying silently for ever; a good invite
//! joins, and `Node::joined` resolves whether it is called before or after the join.

mod support;

use baton::raft::MembershipChange;
use baton::runtime::{Bootstrap, Node, NodeError};
use baton::transport::{FaultController, Identity, SessionCredentials, SessionSecret};
use std::time::{Duration, Instant};
use support::runtime::{any_port, loopback, node_config, propose_values, TestNode, ValueList};

/// Far above what a refusal takes (one QUIC handshake on loopback).
const JOIN_WAIT: Duration = Duration::from_secs(20);

async fn start(credentials: &SessionCredentials, bootstrap: Bootstrap) -> TestNode {
    Node::start(
        node_config(any_port(), None, None),
        Identity::generate().expect("an identity"),
        credentials.clone(),
        ValueList::default(),
        bootstrap,
    )
    .await
    .expect("the node starts")
}

async fn founder() -> (TestNode, SessionCredentials) {
    let credentials = SessionCredentials::generate();
    let node = start(&credentials, Bootstrap::NewCluster).await;
    (node, credentials)
}

async fn assert_refused(credentials: SessionCredentials, host: &TestNode) {
    let joiner = start(
        &credentials,
        Bootstrap::Join {
            addrs: vec![host.local_addr()],
        },
    )
    .await;
    let started = Instant::now();
    let outcome = joiner.joined(JOIN_WAIT).await;
    let took = started.elapsed();
    assert!(
        matches!(outcome, Err(NodeError::JoinRefused(_))),
        "expected a refusal, got {outcome:?}"
    );
    assert!(took < JOIN_WAIT / 4, "the refusal took {took:?}");
    // The `JoinRefused` event may be broadcast before anyone could subscribe (the refusal
    // takes one handshake); `joined` reads a watch channel, so it cannot miss it.
    // Asked again later, the answer stands.
    assert!(matches!(
        joiner.joined(Duration::from_millis(10)).await,
        Err(NodeError::JoinRefused(_))
    ));
    let status = host.status().await.unwrap();
    assert!(!status.membership.learners.contains(&joiner.id()));
    joiner.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_is_refused_fast_with_a_typed_error() {
    support::init_logging();
    let (host, credentials) = founder().await;
    let wrong = SessionCredentials {
        session_id: credentials.session_id,
        secret: SessionSecret([0x5a; 32]),
    };
    assert_refused(wrong, &host).await;
    host.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invite_of_another_session_is_refused_with_a_typed_error() {
    support::init_logging();
    let (host, _) = founder().await;
    assert_refused(SessionCredentials::generate(), &host).await;
    host.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correct_invite_joins_and_joined_resolves_before_and_after() {
    support::init_logging();
    let (host, credentials) = founder().await;
    host.joined(Duration::from_millis(10))
        .await
        .expect("a founder is in its own configuration");
    let joiner = start(
        &credentials,
        Bootstrap::Join {
            addrs: vec![host.local_addr()],
        },
    )
    .await;
    joiner
        .joined(JOIN_WAIT)
        .await
        .expect("the joiner is admitted");
    joiner
        .joined(Duration::from_millis(10))
        .await
        .expect("still joined when asked after the fact");
    joiner.shutdown().await.unwrap();
    assert!(matches!(
        joiner.joined(Duration::from_millis(10)).await,
        Ok(()) | Err(NodeError::Stopped)
    ));
    host.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joined_fails_with_stopped_when_the_node_stops_first() {
    support::init_logging();
    let credentials = SessionCredentials::generate();
    // Nobody listens there: the join never completes.
    let joiner = start(
        &credentials,
        Bootstrap::Join {
            addrs: vec!["127.0.0.1:9".parse().unwrap()],
        },
    )
    .await;
    let waiting = {
        let joiner = joiner.clone();
        tokio::spawn(async move { joiner.joined(JOIN_WAIT).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    joiner.shutdown().await.unwrap();
    let outcome = waiting.await.unwrap();
    assert!(matches!(outcome, Err(NodeError::Stopped)), "{outcome:?}");
}

/// A joiner added while it could not hear the leader catches up from a snapshot taken
/// after its own addition: the configuration that names it arrives inside the snapshot,
/// never as an applied entry, and `joined` must resolve all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joiner_whose_addition_arrives_inside_a_snapshot_joins() {
    support::init_logging();
    let faults = FaultController::new(0x5a);
    let credentials = SessionCredentials::generate();
    let founder = Node::start(
        node_config(any_port(), Some(&faults), None),
        Identity::generate().unwrap(),
        credentials.clone(),
        ValueList::default(),
        Bootstrap::NewCluster,
    )
    .await
    .unwrap();
    // Cut off before its first knock, so that only the addition below admits it.
    let joiner_addr = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|socket| socket.local_addr())
        .unwrap();
    faults.partition(founder.local_addr(), joiner_addr);
    let joiner = Node::start(
        node_config(joiner_addr, Some(&faults), None),
        Identity::generate().unwrap(),
        credentials,
        ValueList::default(),
        Bootstrap::Join {
            addrs: vec![loopback(founder.advertise_addr())],
        },
    )
    .await
    .unwrap();
    support::sessions::eventually("the founder to add the joiner", || async {
        founder
            .change_membership(MembershipChange::AddLearner(joiner.id()), Some(joiner_addr))
            .await
            .is_ok()
    })
    .await;
    // Past `snapshot_interval_entries` (64): the log that held the addition is compacted.
    propose_values(&founder, "while-cut", 100).await;
    faults.heal();
    joiner
        .joined(JOIN_WAIT)
        .await
        .expect("the joiner hears it joined from the snapshot");
    joiner.shutdown().await.unwrap();
    founder.shutdown().await.unwrap();
}
