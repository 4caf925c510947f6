//! The runtime's guards on real loopback QUIC: a leadership transfer that stalls pauses
//! proposals only for the core's abandon timeout; forwarded proposals are bound to their
//! authenticated sender; removed members are forgotten; a panic stops the node cleanly.

mod support;

use baton::raft::{
    AppendOutcome, ClientTag, Entry, EntryPayload, Fitness, Message, MessageBody, NodeId, Role,
};
use baton::runtime::{LogCommand, Origin, Wire};
use baton::transport::{Identity, SessionCredentials, Transport, TransportConfig, TransportEvent};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::runtime::{any_port, leader, node_config, start_cluster_with, TestNode, ValueList};
use support::sessions::eventually;

/// Long enough that a proposal waiting for the retry timer is unmistakable.
const RETRY_SLOW: Duration = Duration::from_secs(5);

async fn cluster(size: usize, retry: Duration) -> Vec<TestNode> {
    cluster_and_credentials(size, retry).await.0
}

async fn cluster_and_credentials(
    size: usize,
    retry: Duration,
) -> (Vec<TestNode>, SessionCredentials) {
    start_cluster_with(
        size,
        |_| {
            let mut config = node_config(any_port(), None, None);
            config.proposal_retry_interval = retry;
            config
        },
        |_| Identity::generate().expect("an identity"),
    )
    .await
}

async fn leader_index(nodes: &[TestNode]) -> usize {
    let all: Vec<&TestNode> = nodes.iter().collect();
    for _ in 0..200 {
        if let Some(id) = leader(&all).await {
            return nodes
                .iter()
                .position(|node| node.id() == id)
                .expect("a node");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no leader within 10 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_to_a_dead_target_pauses_proposals_for_the_abandon_timeout_only() {
    support::init_logging();
    let nodes = cluster(3, RETRY_SLOW).await;
    let lead = leader_index(&nodes).await;
    let dead = (lead + 1) % 3;
    let follower = (lead + 2) % 3;
    nodes[lead]
        .propose(b"warm-up".to_vec())
        .await
        .expect("a healthy cluster commits");
    let dead_id = nodes[dead].id();
    nodes[dead].shutdown().await.unwrap();

    let host = nodes[lead].clone();
    let transfer = tokio::spawn(async move { host.transfer_leadership(dead_id).await });
    // Let the transfer start before the proposals arrive, so the core refuses them.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let started = Instant::now();
    let own = nodes[lead].propose(b"from-the-leader".to_vec());
    let forwarded = nodes[follower].propose(b"from-a-follower".to_vec());
    let (own, forwarded) = tokio::join!(own, forwarded);
    let paused = started.elapsed();
    own.expect("the leader's proposal commits once the transfer is abandoned");
    forwarded.expect("the forwarded proposal commits once the transfer is abandoned");
    assert!(
        transfer.await.unwrap().is_err(),
        "the transfer to a dead node fails"
    );
    // The abandon timeout is election_timeout_ticks_min ticks: 150 ms by default. Waiting
    // for the retry timer instead would take RETRY_SLOW.
    assert!(
        paused < RETRY_SLOW / 2,
        "proposals waited {paused:?} for a stalled transfer"
    );
    assert_eq!(nodes[lead].status().await.unwrap().role, Role::Leader);
    for (n, node) in nodes.iter().enumerate() {
        if n != dead {
            node.shutdown().await.unwrap();
        }
    }
}

/// A peer that holds the session secret but runs no node: it speaks `Wire` by hand. As a
/// learner it acknowledges every append, so the leader streams it the log, which it keeps.
struct RawPeer {
    transport: Transport<Wire>,
    id: NodeId,
    log: Arc<Mutex<Vec<Entry>>>,
}

impl RawPeer {
    async fn start(credentials: &SessionCredentials) -> RawPeer {
        let identity = Identity::generate().expect("an identity");
        let id = identity.node_id();
        let (transport, mut inbound) =
            Transport::<Wire>::bind(identity, credentials.clone(), TransportConfig::default())
                .await
                .expect("a transport");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (answer, kept) = (transport.clone(), log.clone());
        tokio::spawn(async move {
            while let Some(event) = inbound.recv().await {
                let TransportEvent::Message {
                    from,
                    msg: Wire::Raft(message),
                } = event
                else {
                    continue;
                };
                let MessageBody::AppendEntries {
                    prev_log_index,
                    entries,
                    ..
                } = message.body
                else {
                    continue;
                };
                let match_index = prev_log_index + entries.len() as u64;
                kept.lock().unwrap().extend(entries);
                let body = MessageBody::AppendEntriesResponse {
                    outcome: AppendOutcome::Accepted { match_index },
                    fitness: Fitness::default(),
                };
                answer.send(
                    from,
                    Wire::Raft(Message {
                        from: message.to,
                        to: from,
                        term: message.term,
                        body,
                    }),
                );
            }
        });
        RawPeer { transport, id, log }
    }

    async fn forward(&self, leader: &TestNode, tag: ClientTag, command: Vec<u8>) {
        let to = self
            .transport
            .connect(leader.local_addr())
            .await
            .expect("the raw peer authenticates");
        assert_eq!(to, leader.id());
        self.transport.send(to, Wire::Forward { tag, command });
    }

    /// The tag of the entry in the log it was streamed that carries `value`.
    fn tag_of(&self, value: &[u8]) -> Option<ClientTag> {
        self.log.lock().unwrap().iter().find_map(|entry| {
            let EntryPayload::Command { tag, data } = &entry.payload else {
                return None;
            };
            let carries = match decode_command(data)? {
                LogCommand::App(bytes) => bytes == value,
                LogCommand::Forwarded { command, .. } => command == value,
                _ => false,
            };
            if carries {
                *tag
            } else {
                None
            }
        })
    }
}

fn encode_command(command: &LogCommand) -> Vec<u8> {
    bincode::serde::encode_to_vec(command, bincode::config::standard()).expect("encodes")
}

fn decode_command(bytes: &[u8]) -> Option<LogCommand> {
    bincode::serde::decode_from_slice(bytes, bincode::config::standard())
        .ok()
        .map(|(command, _)| command)
}

async fn values(node: &TestNode) -> Vec<String> {
    node.read(|list: &ValueList| list.values.clone())
        .await
        .expect("a running node")
}

async fn origins(node: &TestNode) -> Vec<(String, Origin)> {
    node.read(|list: &ValueList| list.origins.clone())
        .await
        .expect("a running node")
}

async fn shutdown_all(nodes: &[TestNode]) {
    for node in nodes {
        node.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forward_from_a_non_member_is_not_proposed() {
    support::init_logging();
    let (nodes, credentials) = cluster_and_credentials(3, Duration::from_millis(400)).await;
    let lead = leader_index(&nodes).await;
    nodes[lead].propose(b"settle".to_vec()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = nodes[lead].status().await.unwrap().last_index;

    let outsider = RawPeer::start(&credentials).await;
    let tag = ClientTag {
        client_id: 7,
        sequence: 1,
    };
    // Both forms: an encoded runtime command (what forwards carried before) and plain bytes.
    let app = encode_command(&LogCommand::App(b"intruder".to_vec()));
    outsider.forward(&nodes[lead], tag, app).await;
    let plain = ClientTag { sequence: 2, ..tag };
    outsider
        .forward(&nodes[lead], plain, b"intruder".to_vec())
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let after = nodes[lead].status().await.unwrap().last_index;
    assert_eq!(after, before, "a non-member's forward appended an entry");
    assert!(!values(&nodes[lead])
        .await
        .iter()
        .any(|v| v.contains("intruder")));
    outsider.transport.shutdown().await;
    shutdown_all(&nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_cannot_forge_runtime_commands_and_its_forwards_apply_as_its_own() {
    support::init_logging();
    let (nodes, credentials) = cluster_and_credentials(3, Duration::from_millis(400)).await;
    let lead = leader_index(&nodes).await;
    let victim = &nodes[(lead + 1) % 3];
    let member = RawPeer::start(&credentials).await;
    nodes[lead]
        .add_learner(member.id, member.transport.local_addr())
        .await
        .expect("the raw peer becomes a learner");
    let victim_addr = nodes[lead].status().await.unwrap().address_book[&victim.id()];

    let forged = [
        LogCommand::SetAddress {
            id: victim.id(),
            addr: "127.0.0.1:9".parse().unwrap(),
        },
        LogCommand::Forwarded {
            proposer: victim.id(),
            command: b"spoof".to_vec(),
        },
    ];
    for (n, command) in forged.iter().enumerate() {
        let tag = ClientTag {
            client_id: 7,
            sequence: n as u64 + 1,
        };
        member
            .forward(&nodes[lead], tag, encode_command(command))
            .await;
    }
    let marker = ClientTag {
        client_id: 7,
        sequence: 3,
    };
    member
        .forward(&nodes[lead], marker, b"marker".to_vec())
        .await;

    let member_id = member.id;
    for node in &nodes {
        eventually("the member's forward to apply as its own", || async {
            origins(node)
                .await
                .contains(&("marker".to_string(), Origin::Member(member_id)))
        })
        .await;
        let status = node.status().await.unwrap();
        assert_eq!(
            status.address_book.get(&victim.id()),
            Some(&victim_addr),
            "a member rewrote another node's address"
        );
        let applied = origins(node).await;
        assert!(
            applied
                .iter()
                .all(|(_, origin)| *origin != Origin::Member(victim.id())),
            "a member passed a command off as another's: {applied:?}"
        );
        assert_eq!(
            applied
                .iter()
                .filter(|(_, origin)| *origin == Origin::Member(member_id))
                .count(),
            3,
            "each forward applies once, as the member's own application command"
        );
    }
    member.transport.shutdown().await;
    shutdown_all(&nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_claiming_another_client_id_cannot_poison_its_exactly_once_window() {
    support::init_logging();
    let (nodes, credentials) = cluster_and_credentials(3, Duration::from_millis(400)).await;
    let lead = leader_index(&nodes).await;
    let victim = &nodes[(lead + 1) % 3];
    let member = RawPeer::start(&credentials).await;
    nodes[lead]
        .add_learner(member.id, member.transport.local_addr())
        .await
        .expect("the raw peer becomes a learner");

    victim.propose(b"victim-1".to_vec()).await.unwrap();
    let mut seen = None;
    for _ in 0..100 {
        seen = member.tag_of(b"victim-1");
        if seen.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seen = seen.expect("the learner was streamed the victim's entry");
    // Take the victim's next sequence numbers under the client id its entries carry.
    for ahead in 1..=4 {
        let tag = ClientTag {
            client_id: seen.client_id,
            sequence: seen.sequence + ahead,
        };
        let command = encode_command(&LogCommand::App(format!("forged-{ahead}").into_bytes()));
        member.forward(&nodes[lead], tag, command).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    for n in 2..=4 {
        victim
            .propose(format!("victim-{n}").into_bytes())
            .await
            .expect("the victim's proposal is answered");
    }
    let applied = values(victim).await;
    for n in 2..=4 {
        assert!(
            applied.contains(&format!("victim-{n}")),
            "victim-{n} was taken for a duplicate of a forged entry: {applied:?}"
        );
    }
    member.transport.shutdown().await;
    shutdown_all(&nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_member_is_forgotten_by_every_node_and_by_later_snapshots() {
    support::init_logging();
    let (mut nodes, credentials) = cluster_and_credentials(3, Duration::from_millis(400)).await;
    let lead = leader_index(&nodes).await;
    let gone = nodes.remove((lead + 1) % 3);
    let gone_id = gone.id();
    let lead = leader_index(&nodes).await;
    nodes[lead]
        .change_membership(baton::raft::MembershipChange::RemoveNode(gone_id), None)
        .await
        .expect("the removal commits");
    gone.shutdown().await.unwrap();

    // Enough entries for every node to compact, so a joiner starts from a snapshot.
    let acked = support::runtime::propose_values(&nodes[lead], "after-removal", 100).await;
    assert_eq!(acked.len(), 100);
    let joiner = baton::runtime::Node::start(
        node_config(any_port(), None, None),
        Identity::generate().unwrap(),
        credentials.clone(),
        ValueList::default(),
        baton::runtime::Bootstrap::Join {
            addrs: vec![nodes[lead].local_addr()],
        },
    )
    .await
    .unwrap();
    let joiner_id = joiner.id();
    nodes.push(joiner);
    let lead_node = nodes[lead].clone();
    eventually("the joiner to be admitted and caught up", || async {
        let status = lead_node.status().await.unwrap();
        status.membership.learners.contains(&joiner_id)
            && status.address_book.contains_key(&joiner_id)
    })
    .await;

    for node in &nodes {
        eventually("every node to forget the removed member", || async {
            let status = node.status().await.unwrap();
            !status.address_book.contains_key(&gone_id)
                && status.dialed_peers.iter().all(|(id, _)| *id != gone_id)
                && status.peer_links.iter().all(|(id, _)| *id != gone_id)
        })
        .await;
    }
    let status = nodes.last().unwrap().status().await.unwrap();
    assert!(
        status.address_book.len() == 3,
        "the joiner's book names the three members: {:?}",
        status.address_book
    );
    shutdown_all(&nodes).await;
}

/// A state machine whose code panics on one command, as a game's might.
#[derive(Default)]
struct PanicsOnBoom(ValueList);

impl baton::runtime::StateMachine for PanicsOnBoom {
    fn apply(&mut self, index: baton::raft::Index, origin: Origin, command: &[u8]) -> Vec<u8> {
        assert_ne!(command, b"boom", "the game's code panicked");
        self.0.apply(index, origin, command)
    }

    fn snapshot(&self) -> Result<Vec<u8>, baton::runtime::StateMachineError> {
        self.0.snapshot()
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), baton::runtime::StateMachineError> {
        self.0.restore(snapshot)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_the_node_task_is_reported_and_stops_the_node_cleanly() {
    support::init_logging();
    let dir = tempfile::tempdir().unwrap();
    let credentials = SessionCredentials::generate();
    let identity_path = dir.path().join("identity");
    let start = |bind: std::net::SocketAddr| {
        let credentials = credentials.clone();
        let identity = Identity::load_or_generate(&identity_path).unwrap();
        let config = node_config(bind, None, Some(dir.path()));
        async move {
            baton::runtime::Node::start(
                config,
                identity,
                credentials,
                PanicsOnBoom::default(),
                baton::runtime::Bootstrap::NewCluster,
            )
            .await
        }
    };
    let node = start(any_port()).await.expect("the node starts");
    let addr = node.local_addr();
    let mut events = node.events();
    node.propose(b"kept".to_vec()).await.expect("commits");

    let outcome = node.propose(b"boom".to_vec()).await;
    assert!(
        matches!(outcome, Err(baton::runtime::NodeError::Stopped)),
        "{outcome:?}"
    );
    let fatal = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match events.recv().await {
                Ok(baton::runtime::NodeEvent::Fatal(reason)) => return Some(reason),
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
    .await
    .expect("the end of the node is reported in time");
    let reason = fatal.expect("a Fatal event, not a silent death");
    assert!(reason.contains("the game's code panicked"), "{reason}");
    assert!(matches!(
        node.status().await,
        Err(baton::runtime::NodeError::Stopped)
    ));
    assert!(matches!(
        node.propose(b"after".to_vec()).await,
        Err(baton::runtime::NodeError::Stopped)
    ));

    // The transport is closed: a node restarts from the same storage on the same address.
    // (It replays "boom" and panics again, which is the game's problem.)
    let mut restarted = None;
    for _ in 0..50 {
        match start(addr).await {
            Ok(node) => {
                restarted = Some(node);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let restarted = restarted.expect("the old node released its address");
    let _ = restarted.shutdown().await;
}
