//! What enters the replicated address book when nodes bind the unspecified address (as a
//! game on a LAN does) or advertise an address of their own: always something a peer can
//! dial, so that a new leader reaches everybody after the old one is gone. Loopback only:
//! the nodes bind `0.0.0.0`/`[::]` and dial each other on 127.0.0.0/8.

mod support;

use baton::raft::NodeId;
use baton::runtime::{Bootstrap, Node, NodeConfig, NodeError};
use baton::transport::{Identity, SessionCredentials};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use support::runtime::{
    assert_exactly_once, converged_values, leader, node_config, propose_values, start_cluster_with,
    TestNode, ValueList,
};
use support::sessions::eventually;

fn addr(text: &str) -> SocketAddr {
    text.parse().expect("a socket address literal")
}

fn unspecified_config(bind: &str) -> NodeConfig {
    node_config(addr(bind), None, None)
}

/// Where the others reach a node bound to the unspecified address, which they dial on
/// loopback: 127.0.0.1 (an IPv4-mapped form, as a `[::]` socket sees it, is recorded as
/// IPv4) at the node's listening port.
fn reached_at(node: &TestNode) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], node.local_addr().port()))
}

/// A cluster whose node `n` binds `binds[n]` (unspecified addresses, without `advertise_addr`).
async fn start_bound_to(binds: &[&str]) -> Vec<TestNode> {
    let (nodes, _) = start_cluster_with(
        binds.len(),
        |n| unspecified_config(binds[n]),
        |_| Identity::generate().expect("an identity"),
    )
    .await;
    nodes
}

async fn address_book(node: &TestNode) -> BTreeMap<NodeId, SocketAddr> {
    node.status().await.expect("a running node").address_book
}

fn assert_dialable(book: &BTreeMap<NodeId, SocketAddr>) {
    for (id, addr) in book {
        assert!(
            !addr.ip().is_unspecified() && addr.port() != 0,
            "node {id:016x} is recorded at {addr}, which nobody can dial; book: {book:?}"
        );
    }
}

/// Waits until every node's book holds `expected` for each of `members`.
async fn wait_for_entries(nodes: &[&TestNode], members: &[(NodeId, SocketAddr)]) {
    eventually("every node to record where the members listen", || async {
        for node in nodes {
            let book = address_book(node).await;
            if members.iter().any(|(id, addr)| book.get(id) != Some(addr)) {
                return false;
            }
        }
        true
    })
    .await;
}

/// Stops the leader among `nodes`, waits for another, and has a batch of proposals commit
/// through it. Returns the survivors and what they acknowledged.
async fn lose_the_leader(nodes: &[TestNode]) -> (Vec<&TestNode>, Vec<String>) {
    let all: Vec<&TestNode> = nodes.iter().collect();
    let old_leader = leader(&all).await.expect("a leader");
    let old = all
        .iter()
        .find(|node| node.id() == old_leader)
        .expect("the leader is one of the nodes");
    old.shutdown().await.expect("the leader stops");
    let survivors: Vec<&TestNode> = all
        .iter()
        .copied()
        .filter(|node| node.id() != old_leader)
        .collect();
    eventually("the survivors to elect a new leader", || async {
        leader(&survivors).await.is_some_and(|id| id != old_leader)
    })
    .await;
    let new_leader = leader(&survivors).await.expect("a new leader");
    let node = survivors
        .iter()
        .find(|node| node.id() == new_leader)
        .expect("the new leader is a survivor");
    // Through the leader itself: anything it proposed on winning (a re-announcement of its
    // own address) is applied before these are answered.
    let acked = propose_values(node, "after", 20).await;
    assert_eq!(acked.len(), 20, "the new leader commits proposals");
    (survivors, acked)
}

async fn unspecified_binds_survive_losing_the_leader(binds: [&str; 3]) {
    support::init_logging();
    let nodes = start_bound_to(&binds).await;
    let all: Vec<&TestNode> = nodes.iter().collect();
    for node in &nodes {
        assert!(node.local_addr().ip().is_unspecified());
    }
    let joiners: Vec<(NodeId, SocketAddr)> = nodes[1..]
        .iter()
        .map(|node| (node.id(), reached_at(node)))
        .collect();
    wait_for_entries(&all, &joiners).await;
    let mut acked = propose_values(&nodes[1], "before", 20).await;
    assert_eq!(acked.len(), 20);
    for node in &nodes {
        let book = address_book(node).await;
        assert_dialable(&book);
        if let Some(founder) = book.get(&nodes[0].id()) {
            assert_eq!(*founder, reached_at(&nodes[0]));
        }
    }

    let (survivors, after) = lose_the_leader(&nodes).await;
    acked.extend(after);
    for node in &survivors {
        let book = address_book(node).await;
        assert_dialable(&book);
        for member in &survivors {
            assert_eq!(
                book.get(&member.id()),
                Some(&reached_at(member)),
                "a member keeps the address others recorded for it, leader or not"
            );
        }
    }
    assert_exactly_once(&converged_values(&survivors).await, &acked);
    for node in survivors {
        node.shutdown().await.expect("a clean stop");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_bound_to_0_0_0_0_record_dialable_addresses_and_survive_losing_the_leader() {
    unspecified_binds_survive_losing_the_leader(["0.0.0.0:0", "0.0.0.0:0", "0.0.0.0:0"]).await;
}

/// A `[::]` socket is dual-stack: it sees IPv4 peers at IPv4-mapped addresses, which
/// IPv4-only peers could not dial. The founder records the joiners from such a socket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dual_stack_node_records_ipv4_peers_as_ipv4() {
    unspecified_binds_survive_losing_the_leader(["[::]:0", "0.0.0.0:0", "[::]:0"]).await;
}

/// The founder leads first and cannot name its own IP; the next leader records it where it
/// reaches it, and when the founder leads again it keeps that entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_founder_that_never_announced_itself_is_recorded_by_the_next_leader() {
    support::init_logging();
    let binds = ["0.0.0.0:0", "[::]:0", "0.0.0.0:0"];
    let nodes = start_bound_to(&binds).await;
    let all: Vec<&TestNode> = nodes.iter().collect();
    let founder = (nodes[0].id(), reached_at(&nodes[0]));

    nodes[0]
        .transfer_leadership(nodes[1].id())
        .await
        .expect("the founder hands over");
    wait_for_entries(&all, &[founder]).await;

    nodes[1]
        .transfer_leadership(nodes[0].id())
        .await
        .expect("leadership comes back to the founder");
    let mut acked = propose_values(&nodes[0], "founder-again", 20).await;
    assert_eq!(acked.len(), 20);
    for node in &nodes {
        let book = address_book(node).await;
        assert_dialable(&book);
        assert_eq!(
            book.get(&founder.0),
            Some(&founder.1),
            "the founder, leading again, keeps the entry the others recorded"
        );
    }

    let (survivors, after) = lose_the_leader(&nodes).await;
    acked.extend(after);
    for node in &survivors {
        assert_dialable(&address_book(node).await);
    }
    assert_exactly_once(&converged_values(&survivors).await, &acked);
    for node in survivors {
        node.shutdown().await.expect("a clean stop");
    }
}

/// A UDP port free right now, so a node can be told its advertised port before it binds.
fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|socket| socket.local_addr())
        .expect("a free port")
        .port()
}

/// Each node listens on every interface and advertises its own 127.0.0.x, which routes to
/// it on loopback while peers' connections arrive from 127.0.0.1: the book must hold the
/// advertised address, not the observed one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_advertised_address_is_what_the_cluster_records_and_dials() {
    support::init_logging();
    let advertised: Vec<SocketAddr> = (0..3u8)
        .map(|n| SocketAddr::from(([127, 0, 0, 2 + n], free_udp_port())))
        .collect();
    let (nodes, _) = start_cluster_with(
        advertised.len(),
        |n| {
            let mut config = unspecified_config(&format!("0.0.0.0:{}", advertised[n].port()));
            config.advertise_addr = Some(advertised[n]);
            config
        },
        |_| Identity::generate().expect("an identity"),
    )
    .await;
    let all: Vec<&TestNode> = nodes.iter().collect();
    for (node, advertised) in nodes.iter().zip(&advertised) {
        assert_eq!(node.advertise_addr(), *advertised);
        assert_eq!(node.invite().addrs, vec![*advertised]);
    }
    let members: Vec<(NodeId, SocketAddr)> = nodes
        .iter()
        .zip(&advertised)
        .map(|(node, advertised)| (node.id(), *advertised))
        .collect();
    wait_for_entries(&all, &members).await;
    let mut acked = propose_values(&nodes[1], "before", 20).await;
    assert_eq!(acked.len(), 20);

    let (survivors, after) = lose_the_leader(&nodes).await;
    acked.extend(after);
    for node in &survivors {
        let book = address_book(node).await;
        for (id, advertised) in &members {
            assert_eq!(book.get(id), Some(advertised), "book: {book:?}");
        }
    }
    assert_exactly_once(&converged_values(&survivors).await, &acked);
    for node in survivors {
        node.shutdown().await.expect("a clean stop");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_advertise_addr_nobody_can_dial_is_refused() {
    for advertised in ["0.0.0.0:7000", "[::]:7000", "127.0.0.1:0"] {
        let mut config = unspecified_config("127.0.0.1:0");
        config.advertise_addr = Some(addr(advertised));
        let started = Node::start(
            config,
            Identity::generate().expect("an identity"),
            SessionCredentials::generate(),
            ValueList::default(),
            Bootstrap::NewCluster,
        )
        .await;
        match started {
            Err(NodeError::AdvertiseAddr(refused)) => assert_eq!(refused, addr(advertised)),
            Err(other) => panic!("{advertised}: wrong error {other}"),
            Ok(_) => panic!("{advertised} was accepted as an advertised address"),
        }
    }
}

/// A node listening on every interface cannot put `0.0.0.0` in its invite (nobody can dial
/// it): the invite names the machine's own interface IPs at the bound port instead. Nothing
/// is dialed here; the IPs are only compared with the machine's interface list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invite_from_a_wildcard_bind_names_this_machines_interfaces_at_the_bound_port() {
    support::init_logging();
    let node = Node::start(
        unspecified_config("0.0.0.0:0"),
        Identity::generate().expect("an identity"),
        SessionCredentials::generate(),
        ValueList::default(),
        Bootstrap::NewCluster,
    )
    .await
    .expect("a node");
    let port = node.local_addr().port();
    let interfaces: Vec<std::net::IpAddr> = if_addrs::get_if_addrs()
        .expect("the interface list")
        .into_iter()
        .map(|interface| interface.ip())
        .collect();
    let invite = node.invite();
    assert!(!invite.addrs.is_empty());
    for addr in &invite.addrs {
        assert!(!addr.ip().is_unspecified(), "{addr} in the invite");
        assert!(
            addr.is_ipv4(),
            "an IPv4 socket is invited to on IPv4: {addr}"
        );
        assert_eq!(addr.port(), port);
        assert!(
            interfaces.contains(&addr.ip()),
            "{addr} is not one of this machine's interfaces {interfaces:?}"
        );
    }
    let decoded: baton::transport::Invite = invite.to_string().parse().expect("the code parses");
    assert_eq!(
        decoded.addrs, invite.addrs,
        "the code carries every address"
    );
    node.shutdown().await.expect("a clean stop");
}
