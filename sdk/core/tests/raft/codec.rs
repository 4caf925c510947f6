//! Messages, persisted state and the sessions table survive the wire codec (bincode 2,
//! as the transport and storage use it).

use crate::harness::Network;
use baton_core::{ClientCheck, ClientTable, ClientTag, Message};

fn round_trip<T: serde::Serialize + serde::de::DeserializeOwned>(value: &T) -> T {
    let config = bincode::config::standard();
    let bytes = bincode::serde::encode_to_vec(value, config).unwrap();
    let (decoded, read) = bincode::serde::decode_from_slice(&bytes, config).unwrap();
    assert_eq!(read, bytes.len());
    decoded
}

#[test]
fn every_message_of_a_busy_cluster_round_trips() {
    let mut net = Network::with_config(&[1, 2, 3], &[4], |c| c.snapshot_chunk_bytes = 4);
    net.elect(1);
    net.isolate(3);
    for i in 0..5 {
        net.propose(1, format!("p{i}").as_bytes());
    }
    net.run(3);
    let applied = net.node(1).applied_index();
    net.raft(1)
        .compact(applied, b"snapshot-bytes".to_vec())
        .unwrap();
    net.heal();
    net.raft(2).read_index(1).unwrap();
    net.raft(1).transfer_leadership(2).unwrap();
    let mut seen = 0;
    let mut kinds = std::collections::BTreeSet::new();
    for _ in 0..30 {
        net.tick_all();
        net.process_all();
        for _ in 0..10_000 {
            let Some(msg) = net.queue.pop_front() else {
                break;
            };
            let decoded: Message = round_trip(&msg);
            assert_eq!(decoded, msg);
            seen += 1;
            kinds.insert(crate::harness::kind(&msg.body));
            if net.link_ok(&decoded) {
                let to = decoded.to;
                net.raft(to).step(decoded).unwrap();
                net.process(to);
            }
        }
    }
    assert!(seen > 50);
    assert!(
        kinds.len() >= 9,
        "most message kinds were exercised: {kinds:?}"
    );
}

#[test]
fn s6_3_sessions_table_round_trips_with_its_decisions() {
    let mut table = ClientTable::with_limit(2);
    table.record(
        ClientTag {
            client_id: 1,
            sequence: 4,
        },
        b"ok".to_vec(),
    );
    table.record(
        ClientTag {
            client_id: 2,
            sequence: 9,
        },
        b"no".to_vec(),
    );
    let decoded: ClientTable = round_trip(&table);
    assert_eq!(decoded, table);
    assert_eq!(
        decoded.check(ClientTag {
            client_id: 1,
            sequence: 4
        }),
        ClientCheck::Duplicate(b"ok")
    );
    assert_eq!(decoded.limit(), 2);
}
