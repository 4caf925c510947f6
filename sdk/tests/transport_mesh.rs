//! Message flow between real transports on loopback: a 3-node mesh, bootstrap by address,
//! reconnect after a restart.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use baton::raft::NodeId;
use baton::transport::testing::{drain_for, test_config, wait_for};
use baton::transport::{Identity, SessionCredentials, Transport, TransportConfig, TransportEvent};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::Receiver;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum Msg {
    Probe { round: u32 },
    Seq { n: u32 },
    Text(String),
}

type Node = (Transport<Msg>, Receiver<TransportEvent<Msg>>);

const LONG: Duration = Duration::from_secs(30);

fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

async fn node(credentials: &SessionCredentials) -> Node {
    Transport::bind(
        Identity::generate().unwrap(),
        credentials.clone(),
        test_config(),
    )
    .await
    .unwrap()
}

/// Sends probes around the mesh until one full round reaches everybody, so the duplicate
/// connections of the initial simultaneous dials have settled.
async fn warm_up(nodes: &mut [Node]) {
    let rounds_max = 200;
    for round in 0..rounds_max {
        for i in 0..nodes.len() {
            for j in 0..nodes.len() {
                if i != j {
                    let to = nodes[j].0.node_id();
                    nodes[i].0.send(to, Msg::Probe { round });
                }
            }
        }
        let mut complete = true;
        let expected = nodes.len() - 1;
        for node in nodes.iter_mut() {
            let mut seen = 0;
            let events = drain_for(&mut node.1, Duration::from_millis(100)).await;
            for e in events {
                if matches!(e, TransportEvent::Message { msg: Msg::Probe { round: r }, .. } if r == round)
                {
                    seen += 1;
                }
            }
            complete &= seen == expected;
        }
        if complete {
            return;
        }
    }
    panic!("mesh never carried a full probe round");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_transports_exchange_messages_both_ways_in_order() {
    init_logs();
    let creds = SessionCredentials::generate();
    let mut nodes = vec![node(&creds).await, node(&creds).await, node(&creds).await];
    let ids: Vec<NodeId> = nodes.iter().map(|n| n.0.node_id()).collect();
    let addrs: Vec<_> = nodes.iter().map(|n| n.0.local_addr()).collect();
    for (i, node) in nodes.iter().enumerate() {
        for (j, (&id, &addr)) in ids.iter().zip(&addrs).enumerate() {
            if i != j {
                node.0.add_peer(id, addr);
            }
        }
    }
    warm_up(&mut nodes).await;

    let per_peer = 200u32;
    for n in 0..per_peer {
        for (i, node) in nodes.iter().enumerate() {
            for (j, &id) in ids.iter().enumerate() {
                if i != j {
                    node.0.send(id, Msg::Seq { n });
                }
            }
        }
    }
    for (j, node) in nodes.iter_mut().enumerate() {
        let mut next: HashMap<NodeId, u32> = HashMap::new();
        let done =
            |next: &HashMap<NodeId, u32>| next.len() == 2 && next.values().all(|&v| v == per_peer);
        let deadline = Instant::now() + LONG;
        while !done(&next) && Instant::now() < deadline {
            let Some(event) = wait_for(&mut node.1, LONG, |e| {
                matches!(
                    e,
                    TransportEvent::Message {
                        msg: Msg::Seq { .. },
                        ..
                    }
                )
            })
            .await
            else {
                break;
            };
            if let TransportEvent::Message {
                from,
                msg: Msg::Seq { n },
            } = event
            {
                let expected = next.entry(from).or_insert(0);
                assert_eq!(
                    n, *expected,
                    "node {j}: message from {from:016x} out of order"
                );
                *expected += 1;
            }
        }
        assert!(done(&next), "node {j} received {next:?}");
        assert_eq!(node.0.peers().len(), 2);
        for &id in ids.iter().filter(|&&id| id != node.0.node_id()) {
            assert!(node.0.rtt(id).is_some());
        }
    }
    for node in &nodes {
        node.0.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_by_address_learns_the_peer_id() {
    init_logs();
    let creds = SessionCredentials::generate();
    let (a, mut a_rx) = node(&creds).await;
    let (b, mut b_rx) = node(&creds).await;
    let learned = b.connect(a.local_addr()).await.unwrap();
    assert_eq!(learned, a.node_id());
    b.send(a.node_id(), Msg::Text("hello from b".into()));
    let got = wait_for(&mut a_rx, LONG, |e| {
        matches!(e, TransportEvent::Message { .. })
    })
    .await;
    assert_eq!(
        got,
        Some(TransportEvent::Message {
            from: b.node_id(),
            msg: Msg::Text("hello from b".into())
        })
    );
    // The inbound side can answer without having been told anything.
    a.send(b.node_id(), Msg::Text("hello from a".into()));
    let got = wait_for(&mut b_rx, LONG, |e| {
        matches!(e, TransportEvent::Message { .. })
    })
    .await;
    assert_eq!(
        got,
        Some(TransportEvent::Message {
            from: a.node_id(),
            msg: Msg::Text("hello from a".into())
        })
    );
    a.shutdown().await;
    b.shutdown().await;
}

/// What the runtime's address book relies on: a node bound to the unspecified address sends
/// from its listening socket, so the peer it dials sees it at a dialable IP and at its
/// listening port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inbound_peer_is_seen_at_its_listening_port() {
    init_logs();
    let creds = SessionCredentials::generate();
    let (a, mut a_rx) = node(&creds).await;
    let (b, _b_rx) = Transport::<Msg>::bind(
        Identity::generate().unwrap(),
        creds.clone(),
        TransportConfig {
            bind: "0.0.0.0:0".parse().unwrap(),
            ..test_config()
        },
    )
    .await
    .unwrap();
    assert!(b.local_addr().ip().is_unspecified());
    let a_id = b.connect(a.local_addr()).await.unwrap();
    assert_eq!(
        b.remote_addr(a_id),
        Some(a.local_addr()),
        "the address dialed"
    );
    let connected = wait_for(&mut a_rx, LONG, |e| {
        matches!(e, TransportEvent::PeerConnected { .. })
    })
    .await;
    let seen = std::net::SocketAddr::from(([127, 0, 0, 1], b.local_addr().port()));
    assert_eq!(
        connected,
        Some(TransportEvent::PeerConnected {
            id: b.node_id(),
            addr: seen
        })
    );
    assert_eq!(a.remote_addr(b.node_id()), Some(seen));
    assert_eq!(
        a.remote_addr(a.node_id()),
        None,
        "no connection to ourselves"
    );
    a.shutdown().await;
    b.shutdown().await;
}

/// Rebinds a transport on a fixed address; the previous endpoint may need a moment to release
/// the port.
async fn rebind(identity: Identity, creds: &SessionCredentials, config: TransportConfig) -> Node {
    let attempts_max = 50;
    for _ in 0..attempts_max {
        match Transport::bind(identity.clone(), creds.clone(), config.clone()).await {
            Ok(node) => return node,
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    panic!("could not rebind {}", config.bind);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_after_a_peer_restarts() {
    init_logs();
    let creds = SessionCredentials::generate();
    let (a, mut a_rx) = node(&creds).await;
    let b_identity = Identity::generate().unwrap();
    let (b, mut b_rx) = Transport::<Msg>::bind(b_identity.clone(), creds.clone(), test_config())
        .await
        .unwrap();
    let b_id = b.node_id();
    let b_addr = b.local_addr();
    a.add_peer(b_id, b_addr);
    a.send(b_id, Msg::Text("before".into()));
    assert!(wait_for(&mut b_rx, LONG, |e| matches!(
        e,
        TransportEvent::Message { .. }
    ))
    .await
    .is_some());

    b.shutdown().await;
    drop(b);
    drop(b_rx);
    let gone = wait_for(
        &mut a_rx,
        LONG,
        |e| matches!(e, TransportEvent::PeerDisconnected { id, .. } if *id == b_id),
    )
    .await;
    assert!(gone.is_some(), "A must notice B's shutdown");

    // B comes back on the same address with the same identity and does not know A: A's dialer
    // must find it again on its own.
    let config = TransportConfig {
        bind: b_addr,
        ..test_config()
    };
    let (b2, mut b2_rx) = rebind(b_identity, &creds, config).await;
    assert_eq!(b2.node_id(), b_id);
    let back = wait_for(
        &mut a_rx,
        LONG,
        |e| matches!(e, TransportEvent::PeerConnected { id, .. } if *id == b_id),
    )
    .await;
    assert!(back.is_some(), "A must reconnect to the restarted B");
    a.send(b_id, Msg::Text("after".into()));
    let got = wait_for(&mut b2_rx, LONG, |e| {
        matches!(e, TransportEvent::Message { .. })
    })
    .await;
    assert_eq!(
        got,
        Some(TransportEvent::Message {
            from: a.node_id(),
            msg: Msg::Text("after".into())
        })
    );
    b2.send(a.node_id(), Msg::Text("reply".into()));
    let got = wait_for(&mut a_rx, LONG, |e| {
        matches!(e, TransportEvent::Message { .. })
    })
    .await;
    assert_eq!(
        got,
        Some(TransportEvent::Message {
            from: b_id,
            msg: Msg::Text("reply".into())
        })
    );
    a.shutdown().await;
    b2.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_connection_to_a_crashed_peer_is_reset_when_it_comes_back() {
    init_logs();
    let creds = SessionCredentials::generate();
    let faults = baton::transport::FaultController::new(21);
    let config = TransportConfig {
        faults: Some(faults.clone()),
        keep_alive: Duration::from_millis(500),
        ..test_config()
    };
    let (a, mut a_rx) =
        Transport::<Msg>::bind(Identity::generate().unwrap(), creds.clone(), config.clone())
            .await
            .unwrap();
    let b_identity = Identity::generate().unwrap();
    let (b, mut b_rx) = Transport::<Msg>::bind(b_identity.clone(), creds.clone(), config)
        .await
        .unwrap();
    let (b_id, b_addr) = (b.node_id(), b.local_addr());
    a.add_peer(b_id, b_addr);
    a.send(b_id, Msg::Text("before".into()));
    assert!(wait_for(&mut b_rx, LONG, |e| matches!(
        e,
        TransportEvent::Message { .. }
    ))
    .await
    .is_some());

    // Crash: B vanishes without its close reaching A, so A's connection looks alive.
    faults.isolate(b_addr);
    b.shutdown().await;
    drop(b);
    drop(b_rx);
    faults.heal();

    // B restarts with the same identity on the same address and does not dial A. A learns
    // that its connection is stale from B's stateless reset (same identity, same reset key)
    // and redials.
    let (b2, mut b2_rx) = rebind(
        b_identity,
        &creds,
        TransportConfig {
            bind: b_addr,
            ..test_config()
        },
    )
    .await;
    let gone = wait_for(
        &mut a_rx,
        LONG,
        |e| matches!(e, TransportEvent::PeerDisconnected { id, .. } if *id == b_id),
    )
    .await;
    assert!(gone.is_some(), "A must drop the stale connection");
    let back = wait_for(
        &mut a_rx,
        LONG,
        |e| matches!(e, TransportEvent::PeerConnected { id, .. } if *id == b_id),
    )
    .await;
    assert!(back.is_some(), "A must reconnect");
    a.send(b_id, Msg::Text("after".into()));
    let got = wait_for(&mut b2_rx, LONG, |e| {
        matches!(e, TransportEvent::Message { .. })
    })
    .await;
    assert_eq!(
        got,
        Some(TransportEvent::Message {
            from: a.node_id(),
            msg: Msg::Text("after".into())
        })
    );
    a.shutdown().await;
    b2.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_peer_that_dials_back_replaces_the_old_connection() {
    init_logs();
    let creds = SessionCredentials::generate();
    let faults = baton::transport::FaultController::new(22);
    let (a, mut a_rx) = node(&creds).await;
    let b_identity = Identity::generate().unwrap();
    let config = TransportConfig {
        faults: Some(faults.clone()),
        ..test_config()
    };
    let (b, b_rx) = Transport::<Msg>::bind(b_identity.clone(), creds.clone(), config)
        .await
        .unwrap();
    let (b_id, b_addr) = (b.node_id(), b.local_addr());
    b.add_peer(a.node_id(), a.local_addr());
    assert!(wait_for(&mut a_rx, LONG, |e| matches!(
        e,
        TransportEvent::PeerConnected { .. }
    ))
    .await
    .is_some());

    // Crash without a close reaching A; B comes back at once and dials A itself.
    faults.isolate(b_addr);
    b.shutdown().await;
    drop(b);
    drop(b_rx);
    let (b2, mut b2_rx) = rebind(
        b_identity,
        &creds,
        TransportConfig {
            bind: b_addr,
            ..test_config()
        },
    )
    .await;
    b2.add_peer(a.node_id(), a.local_addr());
    // A sees the new incarnation replace the stale connection.
    let replaced = wait_for(
        &mut a_rx,
        LONG,
        |e| matches!(e, TransportEvent::PeerConnected { id, .. } if *id == b_id),
    )
    .await;
    assert!(replaced.is_some());
    a.send(b_id, Msg::Text("to the new b".into()));
    let got = wait_for(&mut b2_rx, LONG, |e| {
        matches!(e, TransportEvent::Message { .. })
    })
    .await;
    assert_eq!(
        got,
        Some(TransportEvent::Message {
            from: a.node_id(),
            msg: Msg::Text("to the new b".into())
        })
    );
    a.shutdown().await;
    b2.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_dials_settle_on_the_connection_dialed_by_the_lower_id() {
    init_logs();
    let creds = SessionCredentials::generate();
    let mut nodes = vec![node(&creds).await, node(&creds).await];
    let (a_id, b_id) = (nodes[0].0.node_id(), nodes[1].0.node_id());
    // Both learn of each other at once, so both dial.
    nodes[0].0.add_peer(b_id, nodes[1].0.local_addr());
    nodes[1].0.add_peer(a_id, nodes[0].0.local_addr());
    warm_up(&mut nodes).await;
    let lower = a_id.min(b_id);
    let polls_max = 100;
    let mut agreed = false;
    for _ in 0..polls_max {
        let a_view = nodes[0].0.connection_dialer(b_id);
        let b_view = nodes[1].0.connection_dialer(a_id);
        if a_view == Some(lower) && b_view == Some(lower) {
            agreed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        agreed,
        "both sides must keep the connection dialed by {lower:016x}"
    );
    assert_eq!(nodes[0].0.peers().len(), 1);
    assert_eq!(nodes[1].0.peers().len(), 1);
    for node in &nodes {
        node.0.shutdown().await;
    }
}
