//! A configuration that would panic or stall inside the node's task once started is refused
//! by `Node::start` with a typed error naming the field, and nothing is left running.

mod support;

use baton::runtime::{Bootstrap, Node, NodeConfig, NodeError, CONFIG_DURATION_MAX};
use baton::transport::{Identity, SessionCredentials};
use std::time::Duration;
use support::runtime::{any_port, node_config, ValueList};

async fn start_with(config: NodeConfig) -> Result<Node<ValueList>, NodeError> {
    Node::start(
        config,
        Identity::generate().expect("an identity"),
        SessionCredentials::generate(),
        ValueList::default(),
        Bootstrap::NewCluster,
    )
    .await
}

/// Starts a founder whose settings `change` spoiled; asserts it is refused for `field`.
async fn assert_refused(field: &str, change: impl FnOnce(&mut NodeConfig)) {
    let mut config = node_config(any_port(), None, None);
    change(&mut config);
    match start_with(config).await {
        Err(NodeError::InvalidConfig {
            field: named,
            reason,
        }) => {
            assert_eq!(named, field, "the error names the field ({reason})");
            assert!(!reason.is_empty());
        }
        Err(other) => panic!("{field}: refused with another error: {other}"),
        Ok(node) => {
            node.shutdown().await.ok();
            panic!("{field}: a bad value was accepted and the node started");
        }
    }
}

#[tokio::test]
async fn a_zero_tick_interval_is_refused() {
    assert_refused("tick_interval", |c| c.tick_interval = Duration::ZERO).await;
}

#[tokio::test]
async fn a_tick_interval_whose_election_timeout_overflows_is_refused() {
    assert_refused("tick_interval", |c| c.tick_interval = CONFIG_DURATION_MAX).await;
}

#[tokio::test]
async fn a_zero_proposal_retry_interval_is_refused() {
    assert_refused("proposal_retry_interval", |c| {
        c.proposal_retry_interval = Duration::ZERO
    })
    .await;
}

#[tokio::test]
async fn a_zero_proposal_timeout_is_refused() {
    assert_refused("proposal_timeout", |c| c.proposal_timeout = Duration::ZERO).await;
}

#[tokio::test]
async fn a_proposal_timeout_past_the_clock_is_refused() {
    assert_refused("proposal_timeout", |c| c.proposal_timeout = Duration::MAX).await;
}

#[tokio::test]
async fn a_zero_join_retry_interval_is_refused() {
    assert_refused("join_retry_interval", |c| {
        c.join_retry_interval = Duration::ZERO
    })
    .await;
}

#[tokio::test]
async fn a_zero_snapshot_interval_is_refused() {
    assert_refused("snapshot_interval_entries", |c| {
        c.snapshot_interval_entries = 0
    })
    .await;
}

#[tokio::test]
async fn zero_transport_timeouts_are_refused() {
    assert_refused("transport.hello_timeout", |c| {
        c.transport.hello_timeout = Duration::ZERO
    })
    .await;
    assert_refused("transport.connect_timeout", |c| {
        c.transport.connect_timeout = Duration::ZERO
    })
    .await;
    assert_refused("transport.keep_alive", |c| {
        c.transport.keep_alive = Duration::ZERO
    })
    .await;
}

#[tokio::test]
async fn raft_messages_larger_than_a_transport_frame_are_refused() {
    assert_refused("raft.snapshot_chunk_bytes", |c| {
        c.transport.max_frame_bytes = 64 * 1024;
        c.raft.max_append_bytes = 16 * 1024;
    })
    .await;
    assert_refused("raft.max_append_bytes", |c| {
        c.transport.max_frame_bytes = 64 * 1024;
        c.raft.snapshot_chunk_bytes = 16 * 1024;
    })
    .await;
}

#[tokio::test]
async fn the_default_configuration_is_valid() {
    let config = node_config(any_port(), None, None);
    config.validate().expect("the defaults are valid");
    NodeConfig::default()
        .validate()
        .expect("the defaults are valid");
    let node = start_with(config).await.expect("a node starts");
    node.shutdown().await.unwrap();
}
