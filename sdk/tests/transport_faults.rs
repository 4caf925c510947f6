//! Faults injected under QUIC through `FaultController` (no root, no netem): partitions and
//! drops stop delivery, healing restores it, and delay/reorder/duplication are absorbed by QUIC
//! without breaking per-peer order.

use std::time::{Duration, Instant};

use baton::raft::NodeId;
use baton::transport::testing::{drain_for, test_config, wait_for};
use baton::transport::{
    FaultController, Identity, SessionCredentials, Transport, TransportConfig, TransportEvent,
};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::Receiver;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum Msg {
    Seq(u32),
    Tag(String),
    Padded(u32, String),
}

type Node = (Transport<Msg>, Receiver<TransportEvent<Msg>>);

const LONG: Duration = Duration::from_secs(30);
/// How long a cut link is watched for deliveries that must not happen.
const QUIET_WINDOW: Duration = Duration::from_millis(600);

fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

async fn pair(faults: &FaultController) -> (Node, Node) {
    init_logs();
    let creds = SessionCredentials::generate();
    let config = TransportConfig {
        faults: Some(faults.clone()),
        ..test_config()
    };
    let a: Node = Transport::bind(Identity::generate().unwrap(), creds.clone(), config.clone())
        .await
        .unwrap();
    let mut b: Node = Transport::bind(Identity::generate().unwrap(), creds, config)
        .await
        .unwrap();
    a.0.add_peer(b.0.node_id(), b.0.local_addr());
    let a_id = a.0.node_id();
    let up = wait_for(
        &mut b.1,
        LONG,
        |e| matches!(e, TransportEvent::PeerConnected { id, .. } if *id == a_id),
    )
    .await;
    assert!(up.is_some(), "pair must connect");
    (a, b)
}

/// Sends tagged messages from `from` to `to` until one arrives (bounded), returning the tag.
async fn until_delivered(from: &Transport<Msg>, to: &mut Node, label: &str) -> bool {
    let from_id = from.node_id();
    let deadline = Instant::now() + LONG;
    let mut attempt = 0u32;
    while Instant::now() < deadline {
        attempt += 1;
        let tag = format!("{label}-{attempt}");
        from.send(to.0.node_id(), Msg::Tag(tag.clone()));
        let got = wait_for(
            &mut to.1,
            Duration::from_millis(200),
            |e| matches!(e, TransportEvent::Message { from, msg: Msg::Tag(_) } if *from == from_id),
        )
        .await;
        if got.is_some() {
            return true;
        }
    }
    false
}

fn messages_from(events: &[TransportEvent<Msg>], from_id: NodeId) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, TransportEvent::Message { from, .. } if *from == from_id))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_stops_delivery_and_heal_restores_it() {
    let faults = FaultController::new(11);
    let (a, mut b) = pair(&faults).await;
    assert!(until_delivered(&a.0, &mut b, "before").await);

    faults.partition(a.0.local_addr(), b.0.local_addr());
    for n in 0..10 {
        a.0.send(b.0.node_id(), Msg::Seq(n));
    }
    let during = drain_for(&mut b.1, QUIET_WINDOW).await;
    assert_eq!(
        messages_from(&during, a.0.node_id()),
        0,
        "delivered through a partition: {during:?}"
    );
    assert!(faults.stats().blocked > 0);

    faults.heal();
    // The messages sent during the partition were queued in QUIC and now arrive, in order.
    for n in 0..10 {
        let a_id = a.0.node_id();
        let got = wait_for(
            &mut b.1,
            LONG,
            |e| matches!(e, TransportEvent::Message { from, .. } if *from == a_id),
        )
        .await;
        assert_eq!(
            got,
            Some(TransportEvent::Message {
                from: a_id,
                msg: Msg::Seq(n)
            })
        );
    }
    a.0.shutdown().await;
    b.0.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asymmetric_block_cuts_one_direction_only() {
    let faults = FaultController::new(12);
    let (mut a, mut b) = pair(&faults).await;
    assert!(until_delivered(&a.0, &mut b, "warm").await);
    assert!(until_delivered(&b.0, &mut a, "warm").await);

    // Cut a → b only. QUIC needs acknowledgements both ways for a stream to make progress, so
    // b → a data still flows (b's packets arrive; a's acks are lost but b retransmits), while
    // nothing a sends reaches b.
    faults.block(a.0.local_addr(), b.0.local_addr());
    a.0.send(b.0.node_id(), Msg::Tag("cut".into()));
    b.0.send(a.0.node_id(), Msg::Tag("open".into()));
    let at_a = wait_for(&mut a.1, LONG, |e| {
        matches!(e, TransportEvent::Message { .. })
    })
    .await;
    assert_eq!(
        at_a,
        Some(TransportEvent::Message {
            from: b.0.node_id(),
            msg: Msg::Tag("open".into())
        })
    );
    let at_b = drain_for(&mut b.1, QUIET_WINDOW).await;
    assert_eq!(
        messages_from(&at_b, a.0.node_id()),
        0,
        "a → b must be cut: {at_b:?}"
    );

    faults.heal();
    let a_id = a.0.node_id();
    let got = wait_for(
        &mut b.1,
        LONG,
        |e| matches!(e, TransportEvent::Message { from, .. } if *from == a_id),
    )
    .await;
    assert_eq!(
        got,
        Some(TransportEvent::Message {
            from: a_id,
            msg: Msg::Tag("cut".into())
        })
    );
    a.0.shutdown().await;
    b.0.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn total_drop_stops_delivery_and_zero_drop_restores_it() {
    let faults = FaultController::new(13);
    let (a, mut b) = pair(&faults).await;
    assert!(until_delivered(&a.0, &mut b, "before").await);

    faults.set_drop_rate(1.0);
    a.0.send(b.0.node_id(), Msg::Tag("lost for now".into()));
    let during = drain_for(&mut b.1, QUIET_WINDOW).await;
    assert_eq!(messages_from(&during, a.0.node_id()), 0);
    assert!(faults.stats().dropped > 0);

    faults.set_drop_rate(0.0);
    let a_id = a.0.node_id();
    let got = wait_for(
        &mut b.1,
        LONG,
        |e| matches!(e, TransportEvent::Message { from, .. } if *from == a_id),
    )
    .await;
    assert_eq!(
        got,
        Some(TransportEvent::Message {
            from: a_id,
            msg: Msg::Tag("lost for now".into())
        })
    );
    a.0.shutdown().await;
    b.0.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolated_node_is_unreachable_until_healed() {
    let faults = FaultController::new(14);
    let (a, mut b) = pair(&faults).await;
    assert!(until_delivered(&a.0, &mut b, "before").await);
    faults.isolate(b.0.local_addr());
    a.0.send(b.0.node_id(), Msg::Tag("isolated".into()));
    let during = drain_for(&mut b.1, QUIET_WINDOW).await;
    assert_eq!(messages_from(&during, a.0.node_id()), 0);
    faults.heal();
    assert!(until_delivered(&a.0, &mut b, "after").await);
    a.0.shutdown().await;
    b.0.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delay_reorder_duplication_and_loss_keep_order_and_exactly_once() {
    let faults = FaultController::new(15);
    let (a, mut b) = pair(&faults).await;
    assert!(until_delivered(&a.0, &mut b, "warm").await);
    faults.set_delay(Duration::from_millis(1), Duration::from_millis(8));
    faults.set_reorder_rate(0.2);
    faults.set_duplicate_rate(0.2);
    faults.set_drop_rate(0.05);
    // About one datagram per message, so every fault fires many times.
    let count = 300u32;
    let padding = "x".repeat(1000);
    for n in 0..count {
        a.0.send(b.0.node_id(), Msg::Padded(n, padding.clone()));
    }
    let a_id = a.0.node_id();
    for n in 0..count {
        let got = wait_for(&mut b.1, LONG, |e| {
            matches!(e, TransportEvent::Message { from, msg: Msg::Padded(..) } if *from == a_id)
        })
        .await;
        assert_eq!(
            got,
            Some(TransportEvent::Message {
                from: a_id,
                msg: Msg::Padded(n, padding.clone())
            })
        );
    }
    let extra = drain_for(&mut b.1, Duration::from_millis(200)).await;
    assert_eq!(
        messages_from(&extra, a_id),
        0,
        "duplicates leaked through QUIC: {extra:?}"
    );
    let stats = faults.stats();
    assert!(
        stats.delayed > 0 && stats.duplicated > 0 && stats.dropped > 0,
        "{stats:?}"
    );
    a.0.shutdown().await;
    b.0.shutdown().await;
}
